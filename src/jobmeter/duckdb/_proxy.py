"""A stand-in for a DuckDB connection that times and profiles each statement it runs.

A statement is one operation from the call that starts it until its result is
consumed: ``execute()`` of a SELECT returns before DuckDB has run it (the
result streams), so the operation ends in the fetch that drains it, when the
next statement starts, or when the connection closes. Statements that are not
reads (INSERT, COPY, CREATE ...) finish inside the call. DuckDB's profile is
read once per operation, right after it ends and before anything else can
overwrite it.

Everything jobmeter does not need to see is forwarded untouched through
``__getattr__``, and ``__class__`` answers DuckDB's class, so
``isinstance(con, duckdb.DuckDBPyConnection)`` holds.
"""

from __future__ import annotations

import contextlib
import logging
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
    fingerprint_of,
)
from jobmeter.duckdb._relation import (
    CONSUMING,
    STREAMING,
    WARNING_METHODS,
    ProfiledRelation,
    count_rows,
    passing_warnings,
    unwrap_all,
)
from jobmeter.duckdb._sql import Fingerprint, fingerprint

_log = logging.getLogger("jobmeter")


class ProfiledConnection:
    """A DuckDB connection that records every statement it runs."""

    __slots__ = (
        "__weakref__",
        "_collector",
        "_con",
        "_namespace",
        "_pending",
        "_profiled",
        "_user_profiling",
    )  # fmt: skip

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        collector: ProxyCollector[ProfiledConnection],
        namespace: str,
        user_profiling: bool,
        profiled: bool,
    ) -> None:
        self._con = connection
        self._collector = collector
        self._namespace = namespace
        self._pending: Operation | None = None
        self._user_profiling = user_profiling  # the program set profiling up itself
        self._profiled = profiled  # a profile is there to read after each statement

    # -- bookkeeping -------------------------------------------------------------------

    def _record(self, op: Operation, error: BaseException | None) -> None:
        seconds = perf_counter() - op.started
        collector = self._collector
        fp = op.fingerprint
        if error is not None:
            failed = collector.shapes.attributes(
                self._namespace, fp.operation, fp.summary, duckdb_error_type(error)
            )
            collector.instruments.add(failed, seconds, -1, None, False)
            return
        profile = None
        if self._profiled:
            try:  # read now: the next statement replaces it; parsed later, in a batch
                profile = self._con.get_profiling_information("json")
            except Exception:  # a closed connection: never the user's problem
                collector.warn_once("reading DuckDB's profile failed")
        attributes = collector.shapes.attributes(self._namespace, fp.operation, fp.summary, None)
        collector.instruments.add(attributes, seconds, op.rows, profile, collector.operators)

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
        op = Operation(fp, perf_counter(), source)
        self._pending = op
        return op

    def _after_run(self, op: Operation) -> None:
        """After the call that ran ``op``: end it now unless its result streams."""
        fp = op.fingerprint
        if fp.touches_profiling:
            self._profiled = _profile.enabled(self._con)
        elif fp.operation == "USE":
            with contextlib.suppress(duckdb.Error):  # keep the last one known
                self._namespace = current_database(self._con)
        if fp.operation not in READ_OPERATIONS and self._pending is op:
            self._finish()

    def _step_back(self) -> None:
        """The user takes profiling over: put our settings back, then stay out of the way."""
        if self._user_profiling:
            return
        self._user_profiling = True
        if not self._profiled:  # profiler=False: we changed nothing
            return
        try:
            self._con.execute(_profile.RESTORE_STATEMENT)
        except duckdb.Error:
            self._collector.warn_once("restoring DuckDB's profiling settings failed")

    def _run(self, fp: Fingerprint, call: Callable[[], Any], source: object) -> Any:
        op = self._start(fp, source)
        try:
            result = call()
        except BaseException as exc:
            self._fail(op, exc)
            raise
        self._after_run(op)
        return result

    def _consume(self, call: Callable[[], Any], warns: bool = False) -> Any:
        """A fetch that drains the pending result, then ends its operation."""
        op = self._pending
        try:
            result = passing_warnings(call, 4) if warns else call()
        except BaseException as exc:
            if op is not None:
                self._fail(op, exc)
            raise
        if op is not None:
            op.fetched(count_rows(result))
            self._pending = None
            self._record(op, None)
        return result

    def _wrap(self, result: Any, fp: Fingerprint | None = None) -> Any:
        if isinstance(result, duckdb.DuckDBPyRelation):
            return ProfiledRelation(result, self, fp)
        if result is self._con:
            return self
        return result

    # -- running statements ------------------------------------------------------------

    def execute(self, query: Any, parameters: object | None = None) -> ProfiledConnection:
        # The hot path, written out: a loop of small queries pays for every call here.
        if self._pending is not None:
            self._finish()
        fp = fingerprint(query) if type(query) is str else fingerprint_of(query)
        if fp.touches_profiling:
            self._step_back()
        op = self._pending = Operation(fp, perf_counter(), self)
        try:
            self._con.execute(query, parameters)
        except BaseException as exc:
            self._fail(op, exc)
            raise
        if fp.operation not in READ_OPERATIONS or fp.touches_profiling:
            self._after_run(op)
        return self

    def executemany(self, query: Any, parameters: object | None = None) -> ProfiledConnection:
        fp = fingerprint_of(query)
        if fp.statements == 1:
            fp = Fingerprint(fp.summary, "BATCH " + fp.operation, 1, fp.touches_profiling)
        self._run(fp, lambda: self._con.executemany(query, parameters), self)
        self._finish()  # the batch has run; only the last execution's result is left
        return self

    def sql(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        fp = fingerprint_of(query)
        result = self._run(fp, lambda: self._con.sql(query, *args, **kwargs), self)
        if fp.operation in READ_OPERATIONS:
            # Nothing ran yet: the relation runs the query each time it is read.
            self._pending = None
            return self._wrap(result, fp)
        return result  # a relation over what the statement returned, already recorded

    query = sql

    # -- fetching ----------------------------------------------------------------------

    def fetchall(self) -> list[Any]:
        op = self._pending
        try:
            rows = self._con.fetchall()
        except BaseException as exc:
            if op is not None:
                self._fail(op, exc)
            raise
        if op is not None:
            op.fetched(len(rows))
            self._pending = None
            self._record(op, None)
        return rows

    def fetchone(self) -> Any:
        row = self._hand_out(self._con.fetchone)
        self._fetched(0 if row is None else 1, drained=row is None)
        return row

    def fetchmany(self, size: int = 1) -> list[Any]:
        rows: list[Any] = self._hand_out(lambda: self._con.fetchmany(size))
        self._fetched(len(rows), drained=len(rows) < size)
        return rows

    def fetch_df_chunk(self, *args: Any, **kwargs: Any) -> Any:
        frame = self._hand_out(lambda: self._con.fetch_df_chunk(*args, **kwargs))
        self._fetched(len(frame), drained=len(frame) == 0)
        return frame

    def _hand_out(self, call: Callable[[], Any], warns: bool = False) -> Any:
        """A call on the pending result (a reader, a part of it): its operation goes on."""
        op = self._pending
        try:
            return passing_warnings(call, 4) if warns else call()
        except BaseException as exc:
            if op is not None:
                self._fail(op, exc)
            raise

    def _fetched(self, rows: int, *, drained: bool) -> None:
        """Count what a partial fetch returned; the operation ends once the result is drained."""
        op = self._pending
        if op is not None:
            op.fetched(rows)
            if drained:
                self._finish()

    def enable_profiling(self) -> None:
        self._user_profiling_call(self._con.enable_profiling)

    def disable_profiling(self) -> None:
        self._user_profiling_call(self._con.disable_profiling)

    def _user_profiling_call(self, call: Callable[[], None]) -> None:
        """DuckDB's own profiling switches: the program takes profiling over."""
        self._finish()
        self._step_back()
        call()
        self._profiled = _profile.enabled(self._con)

    def cursor(self) -> ProfiledConnection:
        self._finish()
        return self._collector.wrap(self._con.cursor())

    def duplicate(self) -> ProfiledConnection:
        self._finish()
        return self._collector.wrap(self._con.duplicate())

    def close(self) -> None:
        self._finish()
        self._collector.closed(self._con)
        self._con.close()

    def __enter__(self) -> ProfiledConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- everything else ---------------------------------------------------------------

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._con)

    def __repr__(self) -> str:
        return repr(self._con)

    @property
    def _jobmeter_wrapped(self) -> duckdb.DuckDBPyConnection:
        """What this stands for, when it is passed back into DuckDB."""
        return self._con

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._con, name)
        if not callable(attribute):
            return attribute
        warns = name in WARNING_METHODS
        if name in CONSUMING:
            return lambda *args, **kwargs: self._consume(lambda: attribute(*args, **kwargs), warns)
        if name in STREAMING:
            return lambda *args, **kwargs: self._hand_out(lambda: attribute(*args, **kwargs), warns)

        def forwarded(*args: Any, **kwargs: Any) -> Any:
            self._finish()  # it may run a statement, which would overwrite the profile
            return self._wrap(unwrap_all(attribute, args, kwargs))

        return forwarded


# DuckDB resolves `SELECT * FROM my_frame` by looking for `my_frame` in the first
# Python frame whose module is not `duckdb` or `duckdb.*`. Naming the module's
# globals (not its classes) into DuckDB's namespace makes that frame the caller's.
__name__ = "duckdb._jobmeter_proxy"
