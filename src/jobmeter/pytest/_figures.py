"""The tests of a recorded run, their regressions against a baseline, and the end's text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from jobmeter._core.format import format_bytes, format_joules
from jobmeter.pytest._tests import COLLECTOR

#: Growth below these never counts as a regression: timer and allocator noise.
WALL_FLOOR_SECONDS: Final = 0.1
PEAK_FLOOR_BYTES: Final = 16 * 2**20


@dataclass(frozen=True)
class TestFigures:
    """One test as the run recorded it (several calls of one node id are added up)."""

    __test__ = False

    nodeid: str
    count: int
    errors: int
    wall_seconds: float
    cpu_seconds: float | None
    peak_rss_bytes: int | None
    read_bytes: int | None
    written_bytes: int | None
    energy_joules: float | None

    @property
    def mean_wall_seconds(self) -> float:
        """Wall time per call (reruns call a test more than once)."""
        return self.wall_seconds / self.count if self.count else 0.0


def tests_of(operations: Iterable[Mapping[str, Any]]) -> dict[str, TestFigures]:
    """The tests among a run report's operations, by node id."""
    return {
        op["operation"]: TestFigures(
            nodeid=op["operation"],
            count=op["count"],
            errors=op["errors"],
            wall_seconds=op["duration_total_seconds"] or 0.0,
            cpu_seconds=op.get("cpu_total_seconds"),
            peak_rss_bytes=op.get("peak_memory_max_bytes"),
            read_bytes=op.get("io_read_total_bytes"),
            written_bytes=op.get("io_write_total_bytes"),
            energy_joules=op.get("energy_total_joules"),
        )
        for op in operations
        if op.get("collector") == COLLECTOR
    }


@dataclass(frozen=True)
class Regression:
    """A test that grew past the threshold in one figure."""

    nodeid: str
    figure: str  # "wall" or "peak memory"
    before: float
    after: float

    @property
    def growth(self) -> float:
        """After over before, less one: 0.5 is 50 % more."""
        return self.after / self.before - 1.0 if self.before else float("inf")

    def text(self) -> str:
        """``wall 0.50 s -> 1.50 s (+200 %)  tests/test_a.py::test_slow``."""
        show = _seconds if self.figure == "wall" else format_bytes
        return (f"{self.figure} {show(self.before)} -> {show(self.after)} "
                f"(+{self.growth * 100:.0f} %)  {self.nodeid}")  # fmt: skip


def regressions(
    now: Mapping[str, TestFigures], baseline: Mapping[str, TestFigures], threshold: float
) -> list[Regression]:
    """Tests of both runs whose wall time per call or peak memory grew by more than
    ``threshold`` (a fraction) and by more than the noise floors; largest growth first."""
    found = []
    for nodeid, test in now.items():
        base = baseline.get(nodeid)
        if base is None:
            continue
        before, after = base.mean_wall_seconds, test.mean_wall_seconds
        if after - before > WALL_FLOOR_SECONDS and after > before * (1 + threshold):
            found.append(Regression(nodeid, "wall", before, after))
        if base.peak_rss_bytes is not None and test.peak_rss_bytes is not None:
            low, high = base.peak_rss_bytes, test.peak_rss_bytes
            if high - low > PEAK_FLOOR_BYTES and high > low * (1 + threshold):
                found.append(Regression(nodeid, "peak memory", low, high))
    return sorted(found, key=lambda r: (-r.growth, r.nodeid, r.figure))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def table(tests: Sequence[TestFigures], outcomes: Mapping[str, str]) -> list[str]:
    """Rows of figures, the node id last so that long ids do not break the columns."""
    energy = any(t.energy_joules is not None for t in tests)
    header = ["wall", "CPU", "peak mem", "read", "written", *(["energy"] if energy else []),
              "outcome"]  # fmt: skip
    rows = [header]
    rows.extend(
        [
            _seconds(t.wall_seconds), _seconds(t.cpu_seconds), format_bytes(t.peak_rss_bytes),
            format_bytes(t.read_bytes), format_bytes(t.written_bytes),
            *([format_joules(t.energy_joules)] if energy else []),
            outcomes.get(t.nodeid, "failed" if t.errors else "passed"),
        ]
        for t in tests
    )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row, test in zip(rows, [None, *tests], strict=True):
        cells = [cell.rjust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        cells.append(row[-1].ljust(widths[-1]))
        lines.append("  ".join(cells) + "  " + ("test" if test is None else test.nodeid))
    return lines


def slowest(tests: Iterable[TestFigures], top: int) -> list[TestFigures]:
    """The ``top`` tests by wall time."""
    return sorted(tests, key=lambda t: (-t.wall_seconds, t.nodeid))[:top]


def heaviest(tests: Iterable[TestFigures], top: int) -> list[TestFigures]:
    """The ``top`` tests by peak memory."""
    known = [t for t in tests if t.peak_rss_bytes is not None]
    return sorted(known, key=lambda t: (-(t.peak_rss_bytes or 0), t.nodeid))[:top]
