"""Plot a `jobmeter run` directory: CPU, memory, disk I/O and GPU memory over time.

``plot_run(run_dir, output)`` reads ``run.json`` and ``usage.jsonl`` of one run
directory and writes a PNG of stacked panels sharing the time axis (seconds
since the run started):

- CPU: ``cpu_utilization`` in CPUs (1.0 = one CPU busy), the peak annotated,
  and the CPUs the machine let the run use as a dotted line.
- Memory: the tree's PSS and RSS, in KiB, MiB or GiB chosen from the data, the
  PSS peak marked; the headline peak of run.json as a dashed line when it is
  above every sample (a short spike between samples that the kernel saw).
- Disk I/O: read and write rates from the differences of the cumulative
  ``read_bytes``/``write_bytes`` over ``t``. The counters are those of the live
  processes, so they drop when a process ends: a drop counts as no I/O, never
  as a negative rate.
- GPU memory, only when a sample has ``gpu_memory``.

Operation spans come from ``operations.jsonl`` in the run directory when there
is one: one JSON object per finished operation with ``name``, ``start`` and
``end``, either in seconds since the run started or in Unix seconds (values
above 1e9 are taken as Unix seconds). `jobmeter run` does not write that file
yet; the plot is ready for it.

Matplotlib is an optional dependency (``pip install 'jobmeter[plot]'``). Only
its object API and the Agg canvas are used, never pyplot: no display is needed,
no global figure state is touched, and plots can be made from several threads.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_log = logging.getLogger("jobmeter")

MISSING_MATPLOTLIB = "jobmeter plot needs matplotlib: pip install 'jobmeter[plot]'"

WIDTH_INCHES = 12.0
HEIGHT_INCHES = 9.0
DPI = 100

_UNIX_SECONDS = 1e9
_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("B", 1))

# Colours that read apart in print and for the common colour-vision deficiencies.
_CPU = "#1f77b4"
_PSS = "#2ca02c"
_RSS = "#9467bd"
_READ = "#17becf"
_WRITE = "#d62728"
_GPU = "#ff7f0e"
_SPAN = "#7f7f7f"


class PlotDependencyError(ImportError):
    """Matplotlib, needed to plot a run, is not installed."""


@dataclass(frozen=True)
class Operation:
    """One finished operation, in seconds since the run started."""

    name: str
    start: float
    end: float


@dataclass
class RunData:
    """What a plot needs of one run directory."""

    directory: Path
    record: dict[str, Any]
    samples: list[dict[str, Any]]
    operations: list[Operation] = field(default_factory=list)
    skipped_lines: int = 0

    @property
    def start(self) -> float:
        """The run's start in Unix seconds (run.json, else the first sample)."""
        start = self.record.get("start")
        if isinstance(start, int | float):
            return float(start)
        first = _number(self.samples[0].get("t")) if self.samples else None
        return first if first is not None and first > _UNIX_SECONDS else 0.0

    def relative(self, value: float) -> float:
        """Seconds since the start, for a value in Unix seconds or already relative."""
        return value - self.start if value > _UNIX_SECONDS else value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSON-lines file, and how many lines could not be read."""
    records: list[dict[str, Any]] = []
    skipped = 0
    with path.open("rb") as lines:
        for raw in lines:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:  # a truncated last line, or bytes that are not UTF-8
                skipped += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def load_run(run_dir: Path) -> RunData:
    """Read ``run.json``, ``usage.jsonl`` and ``operations.jsonl`` of a run directory.

    Lines that cannot be read (a truncated last line of a run whose wrapper was
    killed) are skipped, and one warning says how many.

    Raises:
        FileNotFoundError: ``run_dir`` has no run.json or no usage.jsonl.
        ValueError: run.json is not a JSON object, or the run has no samples.
    """
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{run_dir / 'run.json'} is not a JSON object")
    samples, skipped = _json_lines(run_dir / "usage.jsonl")
    samples = [s for s in samples if _number(s.get("t")) is not None]
    if not samples:
        raise ValueError(f"run {record.get('id', run_dir.name)} has no samples to plot ({run_dir})")
    samples.sort(key=lambda s: float(s["t"]))
    run = RunData(run_dir, record, samples, skipped_lines=skipped)
    operations_file = run_dir / "operations.jsonl"
    if operations_file.is_file():
        operations, bad = _json_lines(operations_file)
        run.skipped_lines += bad
        for op in operations:
            start, end = _number(op.get("start")), _number(op.get("end"))
            if start is None or end is None:
                run.skipped_lines += 1
                continue
            start, end = run.relative(start), run.relative(end)
            run.operations.append(Operation(str(op.get("name", "")), start, max(start, end)))
    if run.skipped_lines:
        _log.warning(
            "jobmeter plot: skipped %d unreadable line(s) in %s", run.skipped_lines, run_dir
        )
    return run


def _unit(largest: float) -> tuple[str, int]:
    for name, size in _UNITS:
        if largest >= size:
            return name, size
    return _UNITS[-1]


def _size(value: float) -> str:
    name, size = _unit(value)
    scaled = value / size
    return f"{scaled:.0f} {name}" if size == 1 or scaled >= 100 else f"{scaled:.3g} {name}"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.3g} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _series(samples: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [_number(s.get(key)) or 0.0 for s in samples]


def _rates(times: Sequence[float], counters: Sequence[float]) -> list[float]:
    """Bytes per second between samples; a counter that dropped (a process ended) is 0."""
    rates = [0.0]
    for i in range(1, len(times)):
        elapsed = times[i] - times[i - 1]
        grown = counters[i] - counters[i - 1]
        rates.append(grown / elapsed if elapsed > 0 and grown > 0 else 0.0)
    return rates


def _summary(run: RunData) -> dict[str, Any]:
    summary = run.record.get("summary")
    return summary if isinstance(summary, dict) else {}


def _title(run: RunData, times: Sequence[float]) -> str:
    record = run.record
    command = record.get("command")
    name = record.get("name") or (command.get("executable") if isinstance(command, dict) else None)
    run_id = record.get("id") or run.directory.name
    head = f"{name} ({run_id})" if name else str(run_id)
    wall = _number(_summary(run).get("wall_seconds"))
    if wall is None:
        start, end = _number(record.get("start")), _number(record.get("end"))
        wall = end - start if start is not None and end is not None else times[-1] - times[0]
    status = record.get("status", "unknown")
    count = len(run.samples)
    samples = f"{count} sample" + ("" if count == 1 else "s")
    return f"{head}\n{status}, wall time {_duration(wall)}, {samples}"


def _annotate_peak(ax: Axes, x: float, y: float, text: str, colour: str, x_end: float) -> None:
    # Put the label on the side of the peak with more room, so it stays inside.
    left = x > x_end * 0.6
    ax.plot([x], [y], marker="o", color=colour, markersize=5, zorder=5)
    ax.annotate(
        text,
        xy=(x, y),
        xytext=(-10 if left else 10, 0),
        textcoords="offset points",
        ha="right" if left else "left",
        va="center",
        fontsize=9,
        color=colour,
        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "alpha": 0.85},
        gid="peak",
    )


def _cpu_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    cpu = _series(run.samples, "cpu_utilization")
    host = run.record.get("host")
    usable = _number(host.get("jobmeter.host.cpu.usable_count")) if isinstance(host, dict) else None
    label = f"CPU ({usable:g} usable)" if usable is not None else "CPU"
    ax.plot(times, cpu, color=_CPU, linewidth=1.2, drawstyle="steps-pre", label=label)
    ax.fill_between(times, cpu, step="pre", color=_CPU, alpha=0.2, linewidth=0)
    peak = max(cpu)
    at = cpu.index(peak)
    _annotate_peak(ax, times[at], peak, f"peak {peak:.2f} CPUs", _CPU, times[-1])
    top = max(peak, 1.0)
    # The machine's limit as a line only when it is near the data; else it flattens the plot.
    if usable is not None and usable <= max(peak, 1.0) * 1.5:
        ax.axhline(usable, color="black", linestyle=":", linewidth=1)
        ax.text(
            0.0,
            usable,
            f" {usable:g} CPUs usable",
            transform=ax.get_yaxis_transform(),
            va="bottom",
            ha="left",
            fontsize=8,
        )
        top = max(top, usable)
    mean = _number(_summary(run).get("cpu_utilization_mean"))
    if mean is not None:
        ax.axhline(mean, color=_CPU, linestyle="--", linewidth=0.8, label=f"mean {mean:.2f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, top * 1.3)  # room for the legend and the peak's label above the data
    ax.set_ylabel("CPU (CPUs busy)")


def _memory_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    pss = _series(run.samples, "pss")
    rss = _series(run.samples, "rss")
    summary = _summary(run)
    headline = _number(summary.get("peak_memory_bytes")) or 0.0
    sampled = max(max(pss), max(rss))
    show_headline = headline > sampled * 1.02
    unit, size = _unit(max(sampled, headline if show_headline else 0.0, 1.0))
    ax.plot(times, [v / size for v in rss], color=_RSS, linewidth=1, label="RSS (summed)")
    ax.plot(times, [v / size for v in pss], color=_PSS, linewidth=1.4, label="PSS")
    ax.fill_between(times, [v / size for v in pss], color=_PSS, alpha=0.15, linewidth=0)
    peak = max(pss)
    at = pss.index(peak)
    _annotate_peak(ax, times[at], peak / size, f"peak PSS {_size(peak)}", _PSS, times[-1])
    if show_headline:
        source = summary.get("peak_memory_source") or "kernel"
        ax.axhline(
            headline / size,
            color="black",
            linestyle="--",
            linewidth=0.9,
            label=f"peak {_size(headline)} between samples: {source}",
        )
    ax.set_ylim(0, max(sampled, headline if show_headline else 0.0, 1.0) / size * 1.2)
    ax.set_ylabel(f"Memory ({unit})")
    ax.legend(loc="upper left", fontsize=8)


def _io_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    reads = _rates(times, _series(run.samples, "read_bytes"))
    writes = _rates(times, _series(run.samples, "write_bytes"))
    unit, size = _unit(max(*reads, *writes, 1.0))
    summary = _summary(run)
    read_total = _number(summary.get("read_bytes"))
    written_total = _number(summary.get("written_bytes"))
    read_label = "read" + (f" (total {_size(read_total)})" if read_total is not None else "")
    write_label = "write" + (
        f" (total {_size(written_total)})" if written_total is not None else ""
    )
    ax.plot(
        times,
        [v / size for v in reads],
        color=_READ,
        linewidth=1.2,
        drawstyle="steps-pre",
        label=read_label,
    )
    ax.plot(
        times,
        [v / size for v in writes],
        color=_WRITE,
        linewidth=1.2,
        drawstyle="steps-pre",
        label=write_label,
    )
    ax.set_ylim(0, max(*reads, *writes, 1.0) / size * 1.2)
    if max(*reads, *writes) == 0:
        ax.text(
            0.5,
            0.5,
            "no disk I/O seen between samples",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
            color="#606060",
        )
    ax.set_ylabel(f"Disk I/O ({unit}/s)")
    ax.legend(loc="upper left", fontsize=8)


def _gpu_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    gpu = _series(run.samples, "gpu_memory")
    unit, size = _unit(max(max(gpu), 1.0))
    ax.plot(times, [v / size for v in gpu], color=_GPU, linewidth=1.4, label="GPU memory")
    ax.fill_between(times, [v / size for v in gpu], color=_GPU, alpha=0.15, linewidth=0)
    peak = max(gpu)
    at = gpu.index(peak)
    _annotate_peak(ax, times[at], peak / size, f"peak {_size(peak)}", _GPU, times[-1])
    ax.set_ylim(0, max(peak, 1.0) / size * 1.2)
    ax.set_ylabel(f"GPU memory ({unit})")


def _operation_rows(count: int) -> int:
    return min(3, count)


def _operations_strip(strip: Axes, operations: Sequence[Operation]) -> None:
    """A row of labelled bars above the panels; neighbours are staggered on up to 3 rows."""
    rows = _operation_rows(len(operations))
    for index, op in enumerate(operations):
        row = index % rows
        strip.barh(
            row,
            max(op.end - op.start, 0.0),
            left=op.start,
            height=0.8,
            color=_SPAN,
            alpha=0.35,
            linewidth=0,
            gid="operation-bar",
        )
        strip.text(
            op.start,
            row,
            f" {op.name}",
            va="center",
            ha="left",
            fontsize=8,
            color="#202020",
            clip_on=True,
            gid="operation-label",
        )
    strip.set_ylim(rows - 0.5, -0.5)
    strip.set_yticks([])
    strip.set_ylabel("operations", rotation=0, ha="right", va="center", fontsize=9)
    for side in ("top", "right", "left"):
        strip.spines[side].set_visible(False)


def _operation_spans(panels: Sequence[Axes], operations: Sequence[Operation]) -> None:
    for index, op in enumerate(operations):
        # Alternating shades keep back-to-back operations apart.
        alpha = 0.10 if index % 2 == 0 else 0.20
        for ax in panels:
            ax.axvspan(op.start, op.end, color=_SPAN, alpha=alpha, linewidth=0, gid="operation")


def _has_gpu(run: RunData) -> bool:
    return any(_number(s.get("gpu_memory")) is not None for s in run.samples)


def _matplotlib() -> tuple[type[Figure], Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotDependencyError(MISSING_MATPLOTLIB) from error
    return Figure, FigureCanvasAgg


def render(run: RunData) -> Figure:
    """The figure of one run: stacked panels sharing the time axis.

    Panels, top to bottom: the operations (only with ``operations.jsonl``), CPU,
    memory, disk I/O, and GPU memory when a sample has it. The figure has an Agg
    canvas and belongs to no pyplot state.

    Raises:
        PlotDependencyError: matplotlib is not installed.
    """
    figure_class, canvas_class = _matplotlib()
    figure = figure_class(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, layout="constrained")
    canvas_class(figure)
    start = run.start
    times = [run.relative(float(s["t"])) for s in run.samples]
    drawers = [_cpu_panel, _memory_panel, _io_panel]
    if _has_gpu(run):
        drawers.append(_gpu_panel)
    ratios = [1.0] * len(drawers)
    if run.operations:
        ratios.insert(0, 0.1 + 0.12 * _operation_rows(len(run.operations)))
    axes = figure.subplots(len(ratios), 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    panels: list[Axes] = list(axes)
    if run.operations:
        _operations_strip(panels.pop(0), run.operations)
    for draw, ax in zip(drawers, panels, strict=True):
        draw(ax, run, times)
        ax.grid(True, alpha=0.3)
    _operation_spans(panels, run.operations)
    end = _number(run.record.get("end"))
    last = max(times[-1], end - start if end is not None and end > _UNIX_SECONDS else times[-1])
    if run.operations:
        last = max(last, *(op.end for op in run.operations))
    axes[0].set_xlim(min(0.0, times[0]), last if last > 0 else 1.0)
    panels[-1].set_xlabel("seconds since start")
    figure.suptitle(_title(run, times), fontsize=12)
    return figure


def _summary_rows(run: RunData) -> Iterator[tuple[str, str]]:
    for key, value in _summary(run).items():
        if key in {"directory", "run_id"}:
            continue
        number = _number(value)
        if number is not None and key.endswith("_bytes"):
            shown = f"{_size(number)} ({int(number):,} bytes)"
        elif number is not None and key.endswith("_seconds"):
            shown = _duration(number)
        elif number is not None and not isinstance(value, int):
            shown = f"{number:.3g}"
        elif value is None or value == []:
            shown = "-"
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        yield key, shown


def _write_html(run: RunData, png: Path, target: Path) -> None:
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    title = html_lib.escape(str(run.record.get("id") or run.directory.name))
    rows = "\n".join(
        f"<tr><th>{html_lib.escape(key)}</th><td>{html_lib.escape(value)}</td></tr>"
        for key, value in _summary_rows(run)
    )
    status = html_lib.escape(str(run.record.get("status", "unknown")))
    target.write_text(
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jobmeter run {title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left}}th{{font-weight:normal;color:#555}}
img{{max-width:100%}}</style></head>
<body><h1>jobmeter run {title}</h1><p>status: {status}</p>
<img alt="CPU, memory and disk I/O of run {title}" src="data:image/png;base64,{encoded}">
<h2>Summary</h2><table>
{rows}
</table></body></html>
""",
        encoding="utf-8",
    )


def plot_run(run_dir: Path, output: Path, *, html: bool = False) -> Path:
    """Plot a run directory as a PNG; with ``html``, also a self-contained HTML page.

    Args:
        run_dir: a run directory of `jobmeter run` (run.json and usage.jsonl).
        output: the PNG to write; an existing directory gets ``<run id>.png``.
        html: also write the HTML page (the PNG embedded, and the summary as a
            table) next to the PNG, with the suffix ``.html``.

    Returns:
        The path of the PNG written.

    Raises:
        PlotDependencyError: matplotlib is not installed.
        ValueError: the run has no samples.
        FileNotFoundError: ``run_dir`` has no run.json or usage.jsonl.
    """
    _matplotlib()  # the dependency error first, before any file is read
    run = load_run(Path(run_dir))
    output = Path(output)
    if output.is_dir():
        output = output / f"{run.record.get('id') or run.directory.name}.png"
    figure = render(run)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, format="png", dpi=DPI)
    if html:
        _write_html(run, output, output.with_suffix(".html"))
    return output
