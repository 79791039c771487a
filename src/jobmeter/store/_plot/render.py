"""Plot a `jobmeter run` directory: CPU, memory, disk I/O and GPU memory over time.

``plot_run(run_dir, output)`` reads ``run.json`` and ``usage.jsonl`` of one run
directory and writes a PNG of stacked panels sharing the time axis (seconds
since the run started):

- CPU: ``cpu_utilization`` in CPUs (1.0 = one CPU busy), the peak annotated,
  and the CPUs the machine let the run use as a dotted line.
- Memory: the tree's PSS and RSS, in KiB, MiB, GiB or TiB chosen from the data, the
  PSS peak marked; the headline peak of run.json as a dashed line when it is
  above every sample (a short spike between samples that the kernel saw).
- RSS by process, when the samples list more than one (``top_processes``): the
  heaviest five by peak RSS, one line each, a gap where a sample lacks one.
- Disk I/O: read and write rates from the differences of the cumulative
  ``read_bytes``/``write_bytes`` over ``t``. The counters are those of the live
  processes, so they drop when a process ends: a drop counts as no I/O, never
  as a negative rate.
- GPU memory, only when a sample has ``gpu_memory``.

Operation spans come from ``operations.jsonl`` in the run directory when there
is one: one JSON object per finished operation with ``name``, ``start`` and
``end``, either in seconds since the run started or in Unix seconds (values
above 1e9 are taken as Unix seconds). `jobmeter run` does not write that file
yet; the plot is ready for it. Each span is a bar in the operation lane; its
label is kept only where the rendered text fits inside the bar without touching
another label (the longest spans first), shortened with an ellipsis where that
still fits, and left out otherwise.

Matplotlib is an optional dependency (``pip install 'jobmeter[plot]'``). Only
its object API and the Agg canvas are used, never pyplot: no display is needed,
no global figure state is touched, and plots can be made from several threads.
The panels themselves are drawn in `panels`; this module lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobmeter.store._plot.data import (
    UNIX_SECONDS,
    RunData,
    duration_text,
    number_of,
    summary_of,
)
from jobmeter.store._plot.data import (
    load_run as load_run,
)
from jobmeter.store._plot.labels import LaneLabel, fit_labels
from jobmeter.store._plot.page import write_html
from jobmeter.store._plot.panels import (
    cpu_panel,
    gpu_panel,
    has_gpu,
    has_processes,
    io_panel,
    memory_panel,
    operation_rows,
    operation_spans,
    operations_strip,
    processes_panel,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MISSING_MATPLOTLIB = "jobmeter plot needs matplotlib: pip install 'jobmeter[plot]'"

WIDTH_INCHES = 12.0
HEIGHT_INCHES = 9.0
DPI = 100


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
    memory, RSS by process when the samples list several, disk I/O, and GPU
    memory when a sample has it. The figure has an Agg
    canvas and belongs to no pyplot state.

    Raises:
        PlotDependencyError: matplotlib is not installed.
    """
    figure_class, canvas_class = _matplotlib()
    figure = figure_class(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, layout="constrained")
    canvas_class(figure)
    start = run.start
    times = [run.relative(float(s["t"])) for s in run.samples]
    drawers = [cpu_panel, memory_panel, io_panel]
    if has_processes(run):
        drawers.insert(2, processes_panel)
    if has_gpu(run):
        drawers.append(gpu_panel)
    ratios = [1.0] * len(drawers)
    if run.operations:
        ratios.insert(0, 0.1 + 0.12 * operation_rows(len(run.operations)))
    axes = figure.subplots(len(ratios), 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    panels: list[Axes] = list(axes)
    labels: list[LaneLabel] = []
    if run.operations:
        labels = operations_strip(figure, panels.pop(0), run.operations)
    for draw, ax in zip(drawers, panels, strict=True):
        draw(ax, run, times)
        ax.grid(True, alpha=0.3)
    operation_spans(panels, run.operations)
    end = number_of(run.record.get("end"))
    last = max(times[-1], end - start if end is not None and end > UNIX_SECONDS else times[-1])
    if run.operations:
        last = max(last, *(op.end for op in run.operations))
    axes[0].set_xlim(min(0.0, times[0]), last if last > 0 else 1.0)
    panels[-1].set_xlabel("seconds since start")
    figure.suptitle(_title(run, times), fontsize=12)
    # Last: the labels are measured against the final limits and layout.
    fit_labels(figure, axes[0], labels)
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
