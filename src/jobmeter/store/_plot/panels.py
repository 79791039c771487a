"""The panels of a run's plot, each drawn on the matplotlib axes it is given.

One function a panel: CPU, memory, disk I/O and GPU memory over the samples'
times, the strip of operation bars above them (their labels fitted by
`labels`), and the operations shaded across every panel. `render` lays the
panels out and picks which to draw; the units, rates and summary values come
from `data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobmeter._core.format import byte_unit, format_bytes
from jobmeter.store._plot.data import (
    Operation,
    RunData,
    number_of,
    process_lines,
    rates,
    series,
    summary_of,
)
from jobmeter.store._plot.labels import PAD_POINTS, LaneLabel

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Colours that read apart in print and for the common colour-vision deficiencies.
_CPU = "#1f77b4"
_PSS = "#2ca02c"
_RSS = "#9467bd"
_READ = "#17becf"
_WRITE = "#d62728"
_GPU = "#ff7f0e"
_SPAN = "#7f7f7f"
# The processes' lines, heaviest first (matplotlib's colour-blind-friendly "tab" order).
_PROCESSES = ("#9467bd", "#2ca02c", "#ff7f0e", "#17becf", "#8c564b")


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


def cpu_panel(ax: Axes, run: RunData, times: list[float]) -> None:
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


def memory_panel(ax: Axes, run: RunData, times: list[float]) -> None:
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


def has_processes(run: RunData) -> bool:
    """Whether the samples list more than one process (``top_processes``)."""
    return bool(process_lines(run, top=1))


def processes_panel(ax: Axes, run: RunData, times: list[float]) -> None:
    """The RSS of the heaviest few processes, one line each (a gap where a sample lacks it)."""
    lines = process_lines(run)
    unit, size = byte_unit(max(max(line.peak for line in lines), 1.0))
    for line, colour in zip(lines, _PROCESSES, strict=False):
        label = f"{line.name} {line.pid} (peak {format_bytes(line.peak, significant=3)})"
        ax.plot(times, [v / size for v in line.rss], color=colour, linewidth=1.2,
                marker=".", markersize=3, label=label, gid="process")  # fmt: skip
    ax.set_ylim(0, max(line.peak for line in lines) / size * 1.25)
    ax.set_ylabel(f"RSS by process ({unit})")
    ax.legend(loc="upper left", fontsize=8)


def io_panel(ax: Axes, run: RunData, times: list[float]) -> None:
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


def gpu_panel(ax: Axes, run: RunData, times: list[float]) -> None:
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


def operation_rows(count: int) -> int:
    return min(3, count)


def operations_strip(
    figure: Figure, strip: Axes, operations: Sequence[Operation]
) -> list[LaneLabel]:
    """A row of bars above the panels; neighbours are staggered on up to 3 rows.

    Every operation gets a bar and a candidate label; `labels.fit_labels` later
    keeps only the labels that fit, once the figure's layout is final.

    Args:
        figure: the figure of ``strip``, whose DPI turns the labels' padding into pixels.
        strip: the axes of the operation lane.
        operations: the operations, one bar each.

    Returns:
        The labels, in the order of ``operations``.
    """
    from matplotlib.transforms import offset_copy  # matplotlib is optional: imported late

    rows = operation_rows(len(operations))
    # The label sits a few points right of its bar's start, in data units elsewhere.
    offset = offset_copy(strip.transData, fig=figure, x=PAD_POINTS, units="points")
    labels: list[LaneLabel] = []
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
        text = strip.text(
            op.start,
            row,
            op.name,
            transform=offset,
            va="center",
            ha="left",
            fontsize=8,
            color="#202020",
            clip_on=True,
            gid="operation-label",
        )
        # Out of the layout: dropping or shortening a label must not move the axes.
        text.set_in_layout(False)
        labels.append(LaneLabel(text, op, row))
    strip.set_ylim(rows - 0.5, -0.5)
    strip.set_yticks([])
    strip.set_ylabel("operations", rotation=0, ha="right", va="center", fontsize=9)
    for side in ("top", "right", "left"):
        strip.spines[side].set_visible(False)
    return labels


def operation_spans(panels: Sequence[Axes], operations: Sequence[Operation]) -> None:
    for index, op in enumerate(operations):
        # Alternating shades keep back-to-back operations apart.
        alpha = 0.10 if index % 2 == 0 else 0.20
        for ax in panels:
            ax.axvspan(op.start, op.end, color=_SPAN, alpha=alpha, linewidth=0, gid="operation")


def has_gpu(run: RunData) -> bool:
    return any(number_of(s.get("gpu_memory")) is not None for s in run.samples)
