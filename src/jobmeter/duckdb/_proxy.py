"""A stand-in for a DuckDB connection that times and profiles each statement it runs.

A statement is one operation from the call that starts it until its result is
consumed: ``execute()`` of a SELECT returns before DuckDB has run it (the
result streams), so the operation ends in the fetch that drains it, when the
next statement starts, or when the connection closes. Statements that are not
reads (INSERT, COPY, CREATE ...) finish inside the call. Its duration is the
time inside DuckDB's calls for it, not the time until it ends (``_statements``).

Everything jobmeter does not need to see is forwarded untouched through
``__getattr__``, and ``__class__`` answers DuckDB's class, so
``isinstance(con, duckdb.DuckDBPyConnection)`` holds.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import duckdb

from jobmeter.duckdb import _profile
from jobmeter.duckdb._operation import READ_OPERATIONS, Operation, fingerprint_of
from jobmeter.duckdb._relation import CONSUMING, STREAMING, WARNING_METHODS, unwrap_all
from jobmeter.duckdb._sql import batched, fingerprint
from jobmeter.duckdb._statements import StatementTracker


class ProfiledConnection(StatementTracker):
    """A DuckDB connection that records every statement it runs."""

    __slots__ = ()

    # -- running statements ------------------------------------------------------------

    def execute(self, query: Any, parameters: object | None = None) -> ProfiledConnection:
        # The hot path, written out: a loop of small queries pays for every call here.
        if self._pending is not None:
            self._finish()
        fp = fingerprint(query) if type(query) is str else fingerprint_of(query)
        if fp.touches_profiling:
            self._step_back()
        op = self._pending = Operation(fp, self, self._profiled)
        shapes = self._samples
        if shapes is not None:
            samples = shapes.get(fp.shape_hash)
            if (
                samples is not None
                and samples.left > 0
                and samples.countdown != 1
                and not self._profiler_on
            ):  # samples.decide() of an execution not profiled, the profiler already off
                samples.left -= 1
                samples.countdown -= 1
                op.samples = samples
                op.block = samples.block
                op.profiled = False
            else:
                self._sample(op, shapes)
        started = perf_counter()
        try:
            self._con.execute(query, parameters)
        except BaseException as exc:
            op.elapsed = perf_counter() - started
            self._fail(op, exc)
            raise
        op.elapsed = perf_counter() - started
        if fp.operation not in READ_OPERATIONS or fp.touches_profiling:
            self._after_run(op)
        return self

    def executemany(self, query: Any, parameters: object | None = None) -> ProfiledConnection:
        fp = fingerprint_of(query)
        if fp.statements == 1:
            fp = batched(fp)
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
        # The hot path, written out: _consume() of a list.
        op = self._pending
        started = perf_counter()
        try:
            rows: list[Any] = self._con.fetchall()
        except BaseException as exc:
            if op is not None:
                op.elapsed += perf_counter() - started
                self._fail(op, exc)
            raise
        if op is not None:
            op.elapsed += perf_counter() - started
            op.rows = len(rows) if op.rows < 0 else op.rows + len(rows)
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
        wrapped: ProfiledConnection = self._collector.wrap(self._con.cursor())
        return wrapped

    def duplicate(self) -> ProfiledConnection:
        self._finish()
        wrapped: ProfiledConnection = self._collector.wrap(self._con.duplicate())
        return wrapped

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
            return lambda *args, **kwargs: self._stream(lambda: attribute(*args, **kwargs), warns)

        def forwarded(*args: Any, **kwargs: Any) -> Any:
            self._finish()  # it may run a statement, which would overwrite the profile
            return self._wrap(unwrap_all(attribute, args, kwargs))

        return forwarded


# DuckDB resolves `SELECT * FROM my_frame` by looking for `my_frame` in the first
# Python frame whose module is not `duckdb` or `duckdb.*`. Naming the module's
# globals (not its classes) into DuckDB's namespace makes that frame the caller's.
__name__ = "duckdb._jobmeter_proxy"
