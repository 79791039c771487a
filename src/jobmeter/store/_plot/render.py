"""Plot a `jobmeter run` directory: CPU, memory, disk I/O and GPU memory over time.

``plot_run(run_dir, output)`` reads ``run.json`` and ``usage.jsonl`` of one run
directory and writes a PNG of stacked panels sharing the time axis (seconds
since the run started):

- CPU: ``cpu_utilization`` in CPUs (1.0 = one CPU busy), the peak annotated,
  and the CPUs the machine let the run use as a dotted line.
- Memory: the tree's PSS and RSS, in KiB, MiB, GiB or TiB chosen from the data, the
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

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobmeter._core.format import byte_unit, format_bytes
from jobmeter.store._plot.data import (
    UNIX_SECONDS,
    Operation,
    RunData,
    duration_text,
    number_of,
    rates,
    series,
    summary_of,
)
from jobmeter.store._plot.data import (
    load_run as load_run,
)
from jobmeter.store._plot.page import write_html

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_log = logging.getLogger("jobmeter")

MISSING_MATPLOTLIB = "jobmeter plot needs matplotlib: pip install 'jobmeter[plot]'"

WIDTH_INCHES = 12.0
HEIGHT_INCHES = 9.0
DPI = 100


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


def _title(run: RunData, times: Sequence[float]) -> str:
    record = run.record
    command = record.get("command")
    name = record.get("name") or (command.get("executable") if isinstance(command, dict) else None)
    run_id = record.get("id") or run.directory.name
    head = f"{name} ({run_id})" if name else str(run_id)
    wall = number_of(summary_of(run).get("wall_seconds"))
    if wall is None:
        start, end = number_of(record.get("start")), number_of(record.get("end"))
        wall = end - start if start is not None and end is not None else times[-1] - times[0]
    status = record.get("status", "unknown")
    count = len(run.samples)
    samples = f"{count} sample" + ("" if count == 1 else "s")
    return f"{head}\n{status}, wall time {duration_text(wall)}, {samples}"


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
    cpu = series(run.samples, "cpu_utilization")
    host = run.record.get("host")
    usable = (
        number_of(host.get("jobmeter.host.cpu.usable_count")) if isinstance(host, dict) else None
    )
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
    mean = number_of(summary_of(run).get("cpu_utilization_mean"))
    if mean is not None:
        ax.axhline(mean, color=_CPU, linestyle="--", linewidth=0.8, label=f"mean {mean:.2f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, top * 1.3)  # room for the legend and the peak's label above the data
    ax.set_ylabel("CPU (CPUs busy)")


def _memory_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    pss = series(run.samples, "pss")
    rss = series(run.samples, "rss")
    summary = summary_of(run)
    headline = number_of(summary.get("peak_memory_bytes")) or 0.0
    sampled = max(max(pss), max(rss))
    show_headline = headline > sampled * 1.02
    unit, size = byte_unit(max(sampled, headline if show_headline else 0.0, 1.0))
    ax.plot(times, [v / size for v in rss], color=_RSS, linewidth=1, label="RSS (summed)")
    ax.plot(times, [v / size for v in pss], color=_PSS, linewidth=1.4, label="PSS")
    ax.fill_between(times, [v / size for v in pss], color=_PSS, alpha=0.15, linewidth=0)
    peak = max(pss)
    at = pss.index(peak)
    label = f"peak PSS {format_bytes(peak, significant=3)}"
    _annotate_peak(ax, times[at], peak / size, label, _PSS, times[-1])
    if show_headline:
        source = summary.get("peak_memory_source") or "kernel"
        ax.axhline(
            headline / size,
            color="black",
            linestyle="--",
            linewidth=0.9,
            label=f"peak {format_bytes(headline, significant=3)} between samples: {source}",
        )
    ax.set_ylim(0, max(sampled, headline if show_headline else 0.0, 1.0) / size * 1.2)
    ax.set_ylabel(f"Memory ({unit})")
    ax.legend(loc="upper left", fontsize=8)


def _io_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    reads = rates(times, series(run.samples, "read_bytes"))
    writes = rates(times, series(run.samples, "write_bytes"))
    unit, size = byte_unit(max(*reads, *writes, 1.0))
    summary = summary_of(run)
    read_total = number_of(summary.get("read_bytes"))
    written_total = number_of(summary.get("written_bytes"))
    read_label = "read" + (
        f" (total {format_bytes(read_total, significant=3)})" if read_total is not None else ""
    )
    write_label = "write" + (
        f" (total {format_bytes(written_total, significant=3)})"
        if written_total is not None
        else ""
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
    gpu = series(run.samples, "gpu_memory")
    unit, size = byte_unit(max(max(gpu), 1.0))
    ax.plot(times, [v / size for v in gpu], color=_GPU, linewidth=1.4, label="GPU memory")
    ax.fill_between(times, [v / size for v in gpu], color=_GPU, alpha=0.15, linewidth=0)
    peak = max(gpu)
    at = gpu.index(peak)
    label = f"peak {format_bytes(peak, significant=3)}"
    _annotate_peak(ax, times[at], peak / size, label, _GPU, times[-1])
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
    return any(number_of(s.get("gpu_memory")) is not None for s in run.samples)


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
    end = number_of(run.record.get("end"))
    last = max(times[-1], end - start if end is not None and end > UNIX_SECONDS else times[-1])
    if run.operations:
        last = max(last, *(op.end for op in run.operations))
    axes[0].set_xlim(min(0.0, times[0]), last if last > 0 else 1.0)
    panels[-1].set_xlabel("seconds since start")
    figure.suptitle(_title(run, times), fontsize=12)
    return figure


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
        write_html(run, output, output.with_suffix(".html"))
    return output
