"""The instruments of DuckDB queries, and the per-query recording path.

Two synchronous histograms per query (duration and returned rows, as the
database client semantic conventions define them); everything DuckDB's
profiler adds (CPU time, rows scanned, bytes, row groups, phase times,
operator times, peak buffer memory) is summed per query series and published
by asynchronous instruments when a reader collects (``_totals``: with sampled
profiling, the executions not profiled count as their shape's average).

A statement costs the job one append: its duration, rows and the profile's
JSON text (when it was profiled) go to a backlog, which is recorded and
parsed in batches of ``BATCH`` statements, or when a reader collects (the
asynchronous callbacks run before the SDK gathers the histograms, so a
collection sees every statement). Done right after each DuckDB call, the same
work runs with cold CPU caches and costs three to four times as much: in a
``SELECT 42`` loop, two histogram records and a parse took 60 µs interleaved
and 16 µs batched. The two histograms are recorded through bindings to each
series' aggregations (``BoundHistogram``): 1.4 µs a record instead of the
SDK's 7.5 µs, which copies, cleans and hashes the attributes every time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from jobmeter._core.bound_histogram import BoundHistogram
from jobmeter._core.instruments import Instrument, histogram, observe
from jobmeter._rundata import routing, sources
from jobmeter.duckdb._profile import QueryProfile, parse
from jobmeter.duckdb._sampling import ShapeSamples
from jobmeter.duckdb._shapes import Attributes
from jobmeter.duckdb._sql import Fingerprint
from jobmeter.duckdb._totals import SERIES_METRICS, Points, SeriesTotals

_log = logging.getLogger("jobmeter")

# The semantic conventions' advice for returned rows, extended to bulk reads.
ROW_BUCKETS: Final = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000,
    100_000, 1_000_000, 10_000_000, 100_000_000,
)  # fmt: skip
# Statements recorded per batch: bounds the backlog (about 150 KB) and the
# pause of one drain in the job's thread (a few milliseconds).
BATCH: Final = 256

# (attributes, seconds, rows or -1, profile JSON or None, operators wanted, the shape's
# sampling state (None where every execution is profiled, or none is), its block)
Pending = tuple["Attributes", float, int, str | None, bool, ShapeSamples | None, int]
# Executions not profiled, by the ids of their attributes and sampling state and their
# block: [attributes, samples, block, count] (held in the value, so the ids stay unique).
Unsettled = dict[tuple[int, int, int], list[Any]]

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


class QueryInstruments:
    """The instruments of one DuckDB collector and the totals behind the asynchronous ones."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        # By the id of a ShapeAttributes dict; the totals hold the dict, so ids stay unique.
        self._shapes: dict[int, SeriesTotals] = {}
        # Executions not profiled whose block's profile is not there yet.
        self._unsettled: Unsettled = {}
        # The two histograms bound to each series, by the id of its attributes (held).
        self._bound: dict[int, tuple[BoundHistogram, BoundHistogram, Attributes]] = {}
        self._backlog: list[Pending] = []
        self._backlog_lock = threading.Lock()
        self._warned_parse = False
        # While a run records: (attributes, shape, shape hash, seconds, rows or -1) per statement.
        self._run_pending: list[tuple[Attributes, str, str, float, int]] | None = None
        self.duration = histogram(meter, DURATION)
        self.returned_rows = histogram(meter, RETURNED_ROWS, ROW_BUCKETS)
        for instrument, points in SERIES_METRICS:
            observe(meter, instrument, self._callback(points))
        sources.register(self)

    def _callback(self, points: Points) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            self.flush(collecting=True)  # the histograms too: the SDK gathers them after
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
        samples: ShapeSamples | None = None,
        block: int = 0,
    ) -> None:
        """One finished statement: recorded with the next batch or collection.

        ``seconds`` is the time inside DuckDB's calls for it; ``fp`` gives the
        run store its masked shape (metrics carry only its summary). With
        ``samples`` (sampled profiling), a statement without a profile counts
        as the profiled execution of its ``block``.
        """
        with self._backlog_lock:
            if self._run_pending is not None:
                self._run_pending.append((attributes, fp.shape, fp.shape_hash, seconds, rows))
                if "error.type" in attributes:
                    routing.failure(
                        "duckdb", str(attributes["db.query.summary"]), str(attributes["error.type"])
                    )
            backlog = self._backlog
            backlog.append((attributes, seconds, rows, profile, operators, samples, block))
            if len(backlog) < BATCH:
                return
            self._backlog = []
        self._record(backlog)

    def flush(self, collecting: bool = False) -> None:
        """Record every statement in the backlog now.

        When a reader collects, executions waiting for their block's profile
        count as their shape's average (the counters must not lag behind).
        """
        with self._backlog_lock:
            backlog, self._backlog = self._backlog, []
        if backlog:
            self._record(backlog, collecting)
        elif collecting and self._unsettled:
            with self._lock:
                self._settle({}, collecting)

    def _record(self, backlog: list[Pending], collecting: bool = False) -> None:
        bindings = self._bound
        profiled: list[tuple[Attributes, QueryProfile, ShapeSamples | None, int]] = []
        unprofiled: Unsettled = {}
        for attributes, seconds, rows, text, operators, samples, block in backlog:
            bound = bindings.get(id(attributes))
            if bound is None:
                bound = bindings[id(attributes)] = (
                    BoundHistogram(self.duration, attributes),
                    BoundHistogram(self.returned_rows, attributes),
                    attributes,
                )
            bound[0].record(seconds)
            if rows >= 0:
                bound[1].record(rows)
            profile = None
            if text is not None:
                try:
                    profile = parse(text, operators)
                except (ValueError, TypeError, AttributeError):
                    self._warn_parse()
            if profile is not None:
                profiled.append((attributes, profile, samples, block))
            elif samples is not None:  # not profiled, or its result abandoned unfinished
                key = (id(attributes), id(samples), block)
                found = unprofiled.get(key)
                if found is None:
                    unprofiled[key] = [attributes, samples, block, 1]
                else:
                    found[3] += 1
        if profiled or unprofiled or (collecting and self._unsettled):
            with self._lock:
                for attributes, profile, samples, block in profiled:
                    totals = self._totals(attributes)
                    totals.add(profile)
                    totals.profiled += 1
                    if samples is not None:
                        samples.add(block, profile)
                self._settle(unprofiled, collecting)

    def _totals(self, attributes: Attributes) -> SeriesTotals:
        totals = self._shapes.get(id(attributes))
        if totals is None:
            totals = self._shapes[id(attributes)] = SeriesTotals(attributes)
        return totals

    def _settle(self, unprofiled: Unsettled, collecting: bool) -> None:
        """Count executions not profiled as their block's profiled one (under the lock).

        Without it: as their shape's average once a later block has a profile
        (theirs is lost) or a reader collects; before their shape has any
        profile, they wait.
        """
        waiting = self._unsettled
        for key, entry in unprofiled.items():
            found = waiting.get(key)
            if found is None:
                waiting[key] = entry
            else:
                found[3] += entry[3]
        for key, (attributes, samples, block, count) in list(waiting.items()):
            profile = samples.blocks.get(block)
            if profile is not None:
                self._totals(attributes).add(profile, count)
            elif samples.profiled and (collecting or samples.latest > block):
                self._totals(attributes).add_share(samples.figures, count, samples.profiled)
            elif collecting and block >= 0:  # no profile at all yet: one entry waits per shape
                merged = waiting.setdefault((key[0], key[1], -1), [attributes, samples, -1, 0])
                merged[3] += count
            else:
                continue
            del waiting[key]

    def _warn_parse(self) -> None:
        if not self._warned_parse:
            self._warned_parse = True
            _log.warning(
                "jobmeter: a DuckDB profile could not be read; its figures are left out",
                exc_info=True,
            )

    def clear(self) -> None:
        """Forget every total (the child of a fork starts from zero)."""
        self._backlog_lock = threading.Lock()
        self._backlog = []
        if self._run_pending is not None:
            self._run_pending = []
        self._bound = {}
        with self._lock:
            self._shapes.clear()
            self._unsettled.clear()

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
