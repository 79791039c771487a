"""Labels of the operation lane that never overlap: measured, then kept, shortened or dropped.

A label is kept only where its rendered text lies inside its span's bar and clear
of every label placed before it. The longest spans are placed first, so the
operations with the most room keep their names. A name too long for its span is
shortened with an ellipsis when the shortened form still fits, else the label
is dropped; the bar is always drawn. The text is measured with the figure's own
renderer once the layout is final, so what is checked is what is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobmeter.store._plot.data import Operation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox, Transform

ELLIPSIS = "\u2026"
#: Characters kept at least before an ellipsis: fewer tell the reader nothing.
MIN_PREFIX = 3
#: Room between a label and its span's edges, and between two labels, in points.
PAD_POINTS = 2.0


@dataclass(frozen=True)
class LaneLabel:
    """A label of the operation lane, the operation it names and the row of its bar."""

    text: Text
    operation: Operation
    row: int


def _shortened(name: str, keep: int) -> str:
    return name[:keep].rstrip() + ELLIPSIS


def _longest_that_fits(name: str, fits: Callable[[str], bool]) -> str | None:
    """The name, else its longest shortened form that fits, else None.

    A longer prefix only grows the label to the right, so whether it fits is
    monotone in the prefix's length and a binary search finds the longest.
    """
    if fits(name):
        return name
    low, high, best = MIN_PREFIX, len(name) - 1, None
    while low <= high:
        keep = (low + high) // 2
        if fits(_shortened(name, keep)):
            best, low = keep, keep + 1
        else:
            high = keep - 1
    return _shortened(name, best) if best is not None else None


class _Lane:
    """The strip's geometry in data coordinates, and the labels placed so far."""

    def __init__(self, figure: Figure, strip: Axes, renderer: RendererBase) -> None:
        self._renderer = renderer
        self._to_data: Transform = strip.transData.inverted()
        self.x_min, self.x_max = sorted(strip.get_xlim())
        # The padding in seconds: the time axis is linear, so one width serves everywhere.
        pad_pixels = PAD_POINTS * figure.dpi / 72.0
        (left, _), (right, _) = self._to_data.transform([(0.0, 0.0), (pad_pixels, 0.0)])
        self.pad = abs(right - left)
        self.placed: list[Bbox] = []

    def extent(self, text: Text) -> Bbox:
        """The text's rendered box, in data coordinates (seconds, rows)."""
        return text.get_window_extent(self._renderer).transformed(self._to_data)

    def fits(self, box: Bbox, start: float, end: float) -> bool:
        if box.xmin < start or box.xmax > end - self.pad:
            return False
        padded = box.padded(self.pad)
        return not any(padded.overlaps(other) for other in self.placed)


def fit_labels(figure: Figure, strip: Axes, labels: Sequence[LaneLabel]) -> int:
    """Keep, shorten or drop the lane's labels so that none overlaps another or leaves its span.

    Call it once the figure is complete (axes limits, titles): it lays the figure
    out to measure the text. Dropped labels are removed from ``strip``; the kept
    ones stay in the order they were added.

    Args:
        figure: the figure ``strip`` belongs to, with its canvas.
        strip: the axes of the operation lane.
        labels: the lane's labels, one per operation, as `operations_strip` made them.

    Returns:
        How many labels were kept.
    """
    if not labels:
        return 0
    # Constrained layout moves the axes at draw time; the labels are out of the
    # layout, so after this one pass the strip's position and scale are final.
    figure.draw_without_rendering()
    lane = _Lane(figure, strip, figure.canvas.get_renderer())  # type: ignore[attr-defined]
    kept = 0

    def visible_length(label: LaneLabel) -> float:
        op = label.operation
        return min(op.end, lane.x_max) - max(op.start, lane.x_min)

    for label in sorted(labels, key=visible_length, reverse=True):
        op, text = label.operation, label.text
        start, end = max(op.start, lane.x_min), min(op.end, lane.x_max)
        name = op.name.strip()
        if end <= start or not name:
            text.remove()
            continue
        text.set_position((start, label.row))

        def fits(candidate: str, text: Text = text, start: float = start, end: float = end) -> bool:
            text.set_text(candidate)
            return lane.fits(lane.extent(text), start, end)

        chosen = _longest_that_fits(name, fits)
        if chosen is None:
            text.remove()
            continue
        text.set_text(chosen)
        lane.placed.append(lane.extent(text))
        kept += 1
    return kept
