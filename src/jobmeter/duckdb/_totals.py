"""DuckDB's profiler figures summed per query series, and the instruments that publish them.

With sampled profiling (the default) not every execution is profiled
(``_sampling``: a shape's executions come in blocks with one profiled
execution each). A series' figures are the sums over its profiled
executions, plus, for each execution that was not, the profile of its
block's profiled execution: a stratified estimate, without bias when the
profiled execution's place in its block is as good as random. An execution
whose block's profile is not there (lost with a failed or abandoned
statement, or not run yet when a reader collects) counts as the average of
its shape's profiles instead. Every execution counts once, the sums only
grow (the counters stay monotonic), and a query whose figures do not change
from one execution to the next (rows scanned, bytes read of a deterministic
query) is counted exactly. ``jobmeter.duckdb.operations.profiled`` says how
many executions were profiled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from jobmeter._core.instruments import Instrument
from jobmeter.duckdb._profile import QueryProfile
from jobmeter.duckdb._shapes import Attributes

PHASES: Final = ("planning", "optimizing", "physical_planning", "execution")


class Figures:
    """Sums of profiler figures (floats: scaled estimates are not whole numbers)."""

    __slots__ = (
        "bytes_read", "bytes_written", "cpu_time", "operators", "peak_memory", "phases",
        "row_groups_scanned", "row_groups_to_scan", "rows_scanned",
    )  # fmt: skip

    def __init__(self) -> None:
        self.cpu_time = 0.0
        self.rows_scanned = 0.0
        self.bytes_read = 0.0
        self.bytes_written = 0.0
        self.row_groups_scanned = 0.0
        self.row_groups_to_scan = 0.0
        self.peak_memory: int | None = None
        self.phases = [0.0, 0.0, 0.0, 0.0]
        self.operators: dict[str, float] = {}

    def add(self, profile: QueryProfile, executions: int = 1) -> None:
        """One profiled execution, or ``executions`` that each count as it."""
        self.cpu_time += profile.cpu_time * executions
        self.rows_scanned += profile.rows_scanned * executions
        self.bytes_read += profile.bytes_read * executions
        self.bytes_written += profile.bytes_written * executions
        self.row_groups_scanned += profile.row_groups_scanned * executions
        self.row_groups_to_scan += profile.row_groups_to_scan * executions
        if executions == 1:
            self.peak_memory = profile.peak_buffer_memory
        phases = self.phases
        phases[0] += profile.planning * executions
        phases[1] += profile.optimizing * executions
        phases[2] += profile.physical_planning * executions
        phases[3] += profile.execution * executions
        if profile.operators:
            operators = self.operators
            for kind, seconds in profile.operators.items():
                operators[kind] = operators.get(kind, 0.0) + seconds * executions

    def add_share(self, sums: Figures, executions: int, profiled: int) -> None:
        """``executions`` not profiled, each the average of ``profiled`` ones summed in ``sums``.

        Multiplied before divided: a whole-number average times a count stays exact.
        """
        self.cpu_time += sums.cpu_time * executions / profiled
        self.rows_scanned += sums.rows_scanned * executions / profiled
        self.bytes_read += sums.bytes_read * executions / profiled
        self.bytes_written += sums.bytes_written * executions / profiled
        self.row_groups_scanned += sums.row_groups_scanned * executions / profiled
        self.row_groups_to_scan += sums.row_groups_to_scan * executions / profiled
        phases = self.phases
        for i, seconds in enumerate(sums.phases):
            phases[i] += seconds * executions / profiled
        operators = self.operators
        for kind, seconds in sums.operators.items():
            operators[kind] = operators.get(kind, 0.0) + seconds * executions / profiled


class SeriesTotals(Figures):
    """The figures of one query series (its point attributes), and its profiled executions."""

    __slots__ = ("attributes", "operator_keys", "phase_keys", "profiled")

    def __init__(self, attributes: Attributes) -> None:
        super().__init__()
        self.attributes = attributes
        self.profiled = 0
        self.phase_keys = [{**attributes, "jobmeter.duckdb.phase": p} for p in PHASES]
        self.operator_keys: dict[str, Attributes] = {}

    def operator_points(self) -> list[tuple[float, Attributes]]:
        keys = self.operator_keys
        points = []
        for kind, seconds in self.operators.items():
            key = keys.get(kind)
            if key is None:
                key = keys[kind] = {**self.attributes, "jobmeter.duckdb.operator.type": kind}
            points.append((seconds, key))
        return points


Points = Callable[[SeriesTotals], Iterable[tuple[float, Attributes]]]

_ESTIMATED: Final = " Estimated from the profiled executions (jobmeter.duckdb.operations.profiled)."

# Profiler figures summed per query series: (instrument, its points from one series' totals).
# Counts of rows, row groups and bytes are whole numbers; scaled ones are rounded.
SERIES_METRICS: Final[tuple[tuple[Instrument, Points], ...]] = (
    (Instrument("jobmeter.duckdb.operations.profiled", "counter", "{operation}",
                "Statements whose DuckDB profile was read; the profiler figures of the other "
                "statements of their shape are estimated from these."),
     lambda t: [(t.profiled, t.attributes)]),
    (Instrument("jobmeter.duckdb.cpu.time", "counter", "s",
                "CPU time DuckDB's threads spent on queries." + _ESTIMATED),
     lambda t: [(t.cpu_time, t.attributes)]),
    (Instrument("jobmeter.duckdb.rows.scanned", "counter", "{row}",
                "Rows the queries' table scans read." + _ESTIMATED),
     lambda t: [(round(t.rows_scanned), t.attributes)]),
    (Instrument("jobmeter.duckdb.io", "counter", "By",
                "Bytes DuckDB read and wrote (files, Parquet, spill)." + _ESTIMATED),
     lambda t: [(round(t.bytes_read), {**t.attributes, "disk.io.direction": "read"}),
                (round(t.bytes_written), {**t.attributes, "disk.io.direction": "write"})]),
    (Instrument("jobmeter.duckdb.row_groups.scanned", "counter", "{row_group}",
                "Row groups the queries scanned." + _ESTIMATED),
     lambda t: [(round(t.row_groups_scanned), t.attributes)]),
    (Instrument("jobmeter.duckdb.row_groups.to_scan", "counter", "{row_group}",
                "Row groups the queries had to consider before pruning." + _ESTIMATED),
     lambda t: [(round(t.row_groups_to_scan), t.attributes)]),
    (Instrument("jobmeter.duckdb.phase.time", "counter", "s",
                "Time of the queries per phase: planning, optimizing, physical_planning, "
                "execution." + _ESTIMATED),
     lambda t: zip(t.phases, t.phase_keys, strict=True)),
    (Instrument("jobmeter.duckdb.operator.time", "counter", "s",
                "Time of the queries' operators by operator type (opt-in: operators=True)."
                + _ESTIMATED),
     SeriesTotals.operator_points),
    (Instrument("jobmeter.duckdb.buffer.memory.peak", "gauge", "By",
                "Peak buffer memory of the database instance during the latest profiled query "
                "of this shape (instance-wide: includes what other connections hold)."),
     lambda t: [] if t.peak_memory is None else [(t.peak_memory, t.attributes)]),
)  # fmt: skip
