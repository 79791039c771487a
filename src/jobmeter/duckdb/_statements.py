"""The statement in flight on a profiled connection: its start, its time in DuckDB, its end.

A statement's duration is the time spent inside DuckDB's calls for it: the
call that runs it (``execute()``, a relation's read) and each fetch of its
result (``fetchone``, ``fetchmany``, ``df``, a batch of an Arrow reader ...).
What the program does between two fetches is not DuckDB's time: a
``fetchone()`` followed by a second of the program's own work records the
microseconds of the two calls, not the second. A streamed result (a
``fetchmany`` loop) stays one statement, with the sum of its calls.

The statement ends when its result is drained, when the next statement
starts, or on ``close()``; DuckDB's profile is read then, before anything else
can overwrite it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from time import perf_counter
from typing import Any

import duckdb

from jobmeter.duckdb import _profile
from jobmeter.duckdb._operation import (
    READ_OPERATIONS,
    Operation,
    ProxyCollector,
    current_database,
    duckdb_error_type,
)
from jobmeter.duckdb._relation import ProfiledRelation, count_rows, passing_warnings, timed_reader
from jobmeter.duckdb._sampling import ShapeSamples
from jobmeter.duckdb._sql import Fingerprint

Shapes = dict[str, ShapeSamples]


class StatementTracker:
    """The bookkeeping side of ``ProfiledConnection``: one statement at a time."""

    __slots__ = (
        "__weakref__",
        "_collector",
        "_con",
        "_namespace",
        "_pending",
        "_profiled",
        "_profiler_on",
        "_samples",
        "_user_profiling",
    )  # fmt: skip

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        collector: ProxyCollector[Any],
        namespace: str,
        user_profiling: bool,
        profiled: bool,
        samples: Shapes | None = None,
    ) -> None:
        self._con = connection
        self._collector = collector
        self._namespace = namespace
        self._pending: Operation | None = None
        self._user_profiling = user_profiling  # the program set profiling up itself
        self._profiled = profiled  # a profile is there to read after each statement
        # Sampled profiling: the sampling states of the database's shapes; the profiler
        # is then on only for the statements chosen (on after install_statement).
        self._samples = samples
        self._profiler_on = True

    def _wrap(self, result: Any, fp: Fingerprint | None = None) -> Any:
        """DuckDB's relations as profiled ones; the connection itself as this stand-in."""
        if isinstance(result, duckdb.DuckDBPyRelation):
            return ProfiledRelation(result, self, fp)
        if result is self._con:
            return self
        return result

    def _record(self, op: Operation, error: BaseException | None) -> None:
        collector = self._collector
        fp = op.fingerprint
        if error is not None:
            failed = collector.shapes.attributes(
                self._namespace, fp.operation, fp.summary, duckdb_error_type(error)
            )
            collector.instruments.add(failed, fp, op.elapsed, -1, None, False)
            return
        profile = None
        if op.profiled and self._profiled:
            try:  # read now: the next statement replaces it; parsed later, in a batch
                profile = self._con.get_profiling_information("json")
            except Exception:  # a closed connection: never the user's problem
                collector.warn_once("reading DuckDB's profile failed")
        attributes = collector.shapes.attributes(self._namespace, fp.operation, fp.summary, None)
        samples = op.samples
        collector.instruments.add(
            attributes, fp, op.elapsed, op.rows, profile, collector.operators, samples, op.block
        )
        if samples is not None:  # what the shape costs: how often to profile it
            samples.executions += 1
            samples.seconds += op.elapsed

    def _finish(self) -> None:
        """End the operation in flight, if any (its result is consumed or abandoned)."""
        op = self._pending
        if op is not None:
            self._pending = None
            self._record(op, None)

    def _fail(self, op: Operation, error: BaseException) -> None:
        if self._pending is op:
            self._pending = None
        self._record(op, error)

    def _start(self, fp: Fingerprint, source: object) -> Operation:
        self._finish()
        if fp.touches_profiling:
            self._step_back()
        op = Operation(fp, source, self._profiled)
        shapes = self._samples
        if shapes is not None:
            self._sample(op, shapes)
        self._pending = op
        return op

    def _sample(self, op: Operation, shapes: Shapes) -> None:
        """Sampled profiling: whether ``op`` is profiled; DuckDB's profiler switched to match."""
        key = op.fingerprint.shape_hash
        samples = shapes.get(key)
        if samples is None:
            policy = self._collector.sampling
            if policy is None:
                return
            samples = policy.new(shapes, key)
        op.samples = samples
        profiled = op.profiled = samples.decide()
        op.block = samples.block
        if profiled is not self._profiler_on:
            # Client settings set directly, no statement run: 0.07 µs (a SET: 110 µs).
            try:
                if profiled:
                    self._con.enable_profiling()
                else:
                    self._con.disable_profiling()
            except duckdb.Error:  # a closed connection: the statement itself will say so
                return
            self._profiler_on = profiled

    def _after_run(self, op: Operation) -> None:
        """After the call that ran ``op``: end it now unless its result streams."""
        fp = op.fingerprint
        if fp.touches_profiling:
            self._profiled = _profile.enabled(self._con)
        elif fp.operation == "USE":
            with contextlib.suppress(duckdb.Error):  # keep the last one known
                self._namespace = current_database(self._con)
                policy = self._collector.sampling
                if self._samples is not None and policy is not None:
                    self._samples = policy.shapes_of(self._namespace)
        if fp.operation not in READ_OPERATIONS and self._pending is op:
            self._finish()

    def _step_back(self) -> None:
        """The user takes profiling over: put our settings back, then stay out of the way."""
        if self._user_profiling:
            return
        self._user_profiling = True
        self._samples = None  # the program's settings decide from now on
        if not self._profiled:  # profiler=False: we changed nothing
            return
        try:
            self._con.execute(_profile.RESTORE_STATEMENT)
        except duckdb.Error:
            self._collector.warn_once("restoring DuckDB's profiling settings failed")

    def _run(self, fp: Fingerprint, call: Callable[[], Any], source: object) -> Any:
        op = self._start(fp, source)
        started = perf_counter()
        try:
            result = call()
        except BaseException as exc:
            op.elapsed += perf_counter() - started
            self._fail(op, exc)
            raise
        op.elapsed += perf_counter() - started
        self._after_run(op)
        return result

    def _consume(self, call: Callable[[], Any], warns: bool = False) -> Any:
        """A fetch that drains the pending result, then ends its operation."""
        op = self._pending
        result = self._hand_out(call, warns, 5)
        if op is not None:
            op.fetched(count_rows(result))
            self._pending = None
            self._record(op, None)
        return result

    def _hand_out(self, call: Callable[[], Any], warns: bool = False, stacklevel: int = 4) -> Any:
        """A call on the pending result (a part of it, or a reader): its operation goes on."""
        op = self._pending
        started = perf_counter()
        try:
            result = passing_warnings(call, stacklevel) if warns else call()
        except BaseException as exc:
            if op is not None:
                op.elapsed += perf_counter() - started
                self._fail(op, exc)
            raise
        if op is not None:
            op.elapsed += perf_counter() - started
        return result

    def _fetched(self, rows: int, *, drained: bool) -> None:
        """Count what a partial fetch returned; the operation ends once the result is drained."""
        op = self._pending
        if op is not None:
            op.fetched(rows)
            if drained:
                self._finish()

    def _stream(self, call: Callable[[], Any], warns: bool = False) -> Any:
        """A call that hands out an Arrow reader: its batches are timed as they are read."""
        op = self._pending
        result = self._hand_out(call, warns, 5)
        return result if op is None else timed_reader(result, self, op)


# DuckDB resolves `SELECT * FROM my_frame` by looking for `my_frame` in the first
# Python frame whose module is not `duckdb` or `duckdb.*`; see _proxy.
__name__ = "duckdb._jobmeter_statements"
