"""The instruments of DuckDB queries, and the per-query recording path.

Two synchronous histograms per query (duration and returned rows, as the
database client semantic conventions define them); everything DuckDB's
profiler adds (CPU time, rows scanned, bytes, row groups, phase times,
operator times, peak buffer memory) is summed per query shape and published
by asynchronous instruments when a reader collects.

A statement costs the job one append: its duration, rows and the profile's
JSON text go to a backlog, which is recorded and parsed in batches of
``BATCH`` statements, or when a reader collects (the asynchronous callbacks
run before the SDK gathers the histograms, so a collection sees every
statement). Done right after each DuckDB call, the same work runs with cold
CPU caches and costs three to four times as much: in a ``SELECT 42`` loop,
two histogram records and a parse took 60 µs interleaved and 16 µs batched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from jobmeter._core.instruments import Instrument, histogram, observe
from jobmeter._rundata import routing, sources
from jobmeter.duckdb._profile import QueryProfile, parse
from jobmeter.duckdb._shapes import Attributes
from jobmeter.duckdb._sql import Fingerprint

_log = logging.getLogger("jobmeter")

# The semantic conventions' advice for returned rows, extended to bulk reads.
ROW_BUCKETS: Final = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
    100_000, 1_000_000, 10_000_000, 100_000_000,
)  # fmt: skip
PHASES: Final = ("planning", "optimizing", "physical_planning", "execution")
# Statements recorded per batch: bounds the backlog (about 150 KB) and the
# pause of one drain in the job's thread (a few milliseconds).
BATCH: Final = 256

# (attributes, seconds, rows or -1, profile JSON or None, operators wanted)
Pending = tuple["Attributes", float, int, str | None, bool]


class _ShapeTotals:
    """Cumulative profiler figures of one query shape."""

    __slots__ = (
        "attributes", "bytes_read", "bytes_written", "cpu_time", "operator_keys", "operators",
        "peak_memory", "phase_keys", "phases", "row_groups_scanned", "row_groups_to_scan",
        "rows_scanned",
    )  # fmt: skip

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = attributes
        self.cpu_time = 0.0
        self.rows_scanned = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.row_groups_scanned = 0
        self.row_groups_to_scan = 0
        self.peak_memory: int | None = None
        self.phases = [0.0, 0.0, 0.0, 0.0]
        self.phase_keys = [{**attributes, "jobmeter.duckdb.phase": p} for p in PHASES]
        self.operators: dict[str, float] = {}
        self.operator_keys: dict[str, Attributes] = {}

    def add(self, profile: QueryProfile) -> None:
        self.cpu_time += profile.cpu_time
        self.rows_scanned += profile.rows_scanned
        self.bytes_read += profile.bytes_read
        self.bytes_written += profile.bytes_written
        self.row_groups_scanned += profile.row_groups_scanned
        self.row_groups_to_scan += profile.row_groups_to_scan
        self.peak_memory = profile.peak_buffer_memory
        phases = self.phases
        phases[0] += profile.planning
        phases[1] += profile.optimizing
        phases[2] += profile.physical_planning
        phases[3] += profile.execution
        if profile.operators:
            for kind, seconds in profile.operators.items():
                self.operators[kind] = self.operators.get(kind, 0.0) + seconds


Points = Callable[[_ShapeTotals], Iterable[tuple[float, Attributes]]]

# Two synchronous histograms per statement, as the database client conventions define them.
DURATION: Final = Instrument(
    "db.client.operation.duration",
    "histogram",
    "s",
    "Time DuckDB spent on each statement: inside the call that runs it and each fetch of its "
    "result.",
)
RETURNED_ROWS: Final = Instrument(
    "db.client.response.returned_rows", "histogram", "{row}", "Rows a DuckDB statement returned."
)
# Profiler figures summed per query shape: (instrument, its points from one shape's totals).
SHAPE_METRICS: Final[tuple[tuple[Instrument, Points], ...]] = (
    (Instrument("jobmeter.duckdb.cpu.time", "counter", "s",
                "CPU time DuckDB's threads spent on queries."),
     lambda t: [(t.cpu_time, t.attributes)]),
    (Instrument("jobmeter.duckdb.rows.scanned", "counter", "{row}",
                "Rows the queries' table scans read."),
     lambda t: [(t.rows_scanned, t.attributes)]),
    (Instrument("jobmeter.duckdb.io", "counter", "By",
                "Bytes DuckDB read and wrote (files, Parquet, spill)."),
     lambda t: [(t.bytes_read, {**t.attributes, "disk.io.direction": "read"}),
                (t.bytes_written, {**t.attributes, "disk.io.direction": "write"})]),
    (Instrument("jobmeter.duckdb.row_groups.scanned", "counter", "{row_group}",
                "Row groups the queries scanned."),
     lambda t: [(t.row_groups_scanned, t.attributes)]),
    (Instrument("jobmeter.duckdb.row_groups.to_scan", "counter", "{row_group}",
                "Row groups the queries had to consider before pruning."),
     lambda t: [(t.row_groups_to_scan, t.attributes)]),
    (Instrument("jobmeter.duckdb.phase.time", "counter", "s",
                "Time of the queries per phase: planning, optimizing, physical_planning, "
                "execution."),
     lambda t: zip(t.phases, t.phase_keys, strict=True)),
    (Instrument("jobmeter.duckdb.operator.time", "counter", "s",
                "Time of the queries' operators by operator type (opt-in: operators=True)."),
     lambda t: [(s, t.operator_keys.get(k) or t.operator_keys.setdefault(
         k, {**t.attributes, "jobmeter.duckdb.operator.type": k}))
         for k, s in t.operators.items()]),
    (Instrument("jobmeter.duckdb.buffer.memory.peak", "gauge", "By",
                "Peak buffer memory of the database instance during the latest query of this "
                "shape (instance-wide: includes what other connections hold)."),
     lambda t: [] if t.peak_memory is None else [(t.peak_memory, t.attributes)]),
)  # fmt: skip


class QueryInstruments:
    """The instruments of one DuckDB collector and the totals behind the asynchronous ones."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        # By the id of a ShapeAttributes dict; the totals hold the dict, so ids stay unique.
        self._shapes: dict[int, _ShapeTotals] = {}
        self._backlog: list[Pending] = []
        self._backlog_lock = threading.Lock()
        self._warned_parse = False
        # While a run records: (attributes, shape, shape hash, seconds, rows or -1) per statement.
        self._run_pending: list[tuple[Attributes, str, str, float, int]] | None = None
        self.duration = histogram(meter, DURATION)
        self.returned_rows = histogram(meter, RETURNED_ROWS, ROW_BUCKETS)
        for instrument, points in SHAPE_METRICS:
            observe(meter, instrument, self._callback(points))
        sources.register(self)

    def _callback(self, points: Points) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            self.flush()  # the histograms too: the SDK gathers them after the callbacks
            with self._lock:
                return [
                    Observation(value, attributes)
                    for totals in self._shapes.values()
                    for value, attributes in points(totals)
                ]

        return callback

    def add(
        self,
        attributes: Attributes,
        fp: Fingerprint,
        seconds: float,
        rows: int,
        profile: str | None,
        operators: bool,
    ) -> None:
        """One finished statement: recorded with the next batch or collection.

        ``seconds`` is the time inside DuckDB's calls for it; ``fp`` gives the
        run store its masked shape (metrics carry only its summary).
        """
        with self._backlog_lock:
            if self._run_pending is not None:
                self._run_pending.append((attributes, fp.shape, fp.shape_hash, seconds, rows))
                if "error.type" in attributes:
                    routing.failure(
                        "duckdb", str(attributes["db.query.summary"]), str(attributes["error.type"])
                    )
            backlog = self._backlog
            backlog.append((attributes, seconds, rows, profile, operators))
            if len(backlog) < BATCH:
                return
            self._backlog = []
        self._record(backlog)

    def flush(self) -> None:
        """Record every statement in the backlog now."""
        with self._backlog_lock:
            backlog, self._backlog = self._backlog, []
        if backlog:
            self._record(backlog)

    def _record(self, backlog: list[Pending]) -> None:
        duration, returned_rows = self.duration.record, self.returned_rows.record
        for attributes, seconds, rows, text, operators in backlog:
            duration(seconds, attributes)
            if rows >= 0:
                returned_rows(rows, attributes)
            if text is None:
                continue
            try:
                profile = parse(text, operators)
            except (ValueError, TypeError, AttributeError):
                self._warn_parse()
                continue
            if profile is not None:
                self.add_profile(attributes, profile)

    def _warn_parse(self) -> None:
        if not self._warned_parse:
            self._warned_parse = True
            _log.warning(
                "jobmeter: a DuckDB profile could not be read; its figures are left out",
                exc_info=True,
            )

    def add_profile(self, attributes: Attributes, profile: QueryProfile) -> None:
        """Add one finished query's profiler figures to its shape's totals."""
        with self._lock:
            totals = self._shapes.get(id(attributes))
            if totals is None:
                totals = self._shapes[id(attributes)] = _ShapeTotals(attributes)
            totals.add(profile)

    def clear(self) -> None:
        """Forget every total (the child of a fork starts from zero)."""
        self._backlog_lock = threading.Lock()
        self._backlog = []
        if self._run_pending is not None:
            self._run_pending = []
        with self._lock:
            self._shapes.clear()

    def recording_started(self) -> None:
        """Keep each statement's figures for the run being recorded."""
        with self._backlog_lock:
            if self._run_pending is None:
                self._run_pending = []

    def recording_stopped(self) -> None:
        """Stop keeping statements for a run."""
        with self._backlog_lock:
            self._run_pending = None

    def drain_into(self, recorder: Any) -> None:
        """Hand the statements since the last drain to the run's recorder."""
        with self._backlog_lock:
            pending = self._run_pending
            if not pending:
                return
            self._run_pending = []
        recorder.add_queries(pending)
