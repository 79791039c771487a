"""DuckDB's own profiler: switch it on quietly, read what one query cost.

DuckDB 2.0 profiles per connection. With ``enable_profiling='no_output'`` it
prints nothing and keeps the figures of the last statement, which
``get_profiling_information(format='json')`` returns. ``tracked_metrics``
limits what it gathers: a SELECT 42 profile shrinks from 3.5 KB of JSON (all
40 optimizer passes) to a few hundred bytes, and reading it from 40 µs to
about 7 µs. ``profiling_coverage='ALL'`` makes INSERT, COPY and DDL profiled
too (the default covers SELECT only).

A streaming result (a SELECT run by ``execute()``) is still running when
``execute()`` returns: its profile has no ``query`` section until the result
is consumed, so a profile without one means "not finished yet".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import duckdb

# Only with operators=True: the operator tree makes a TPC-H profile 1 to 23 KB
# of JSON instead of 0.5 KB.
OPERATOR_METRICS: Final = ("operator.type", "operator.timing")
_BASE_METRICS: Final = (
    "query.total_time",
    "query.cpu_time",
    "query.total_rows_scanned",
    "query.total_row_groups_scanned",
    "query.total_row_groups_to_scan",
    "io.total_bytes_read",
    "io.total_bytes_written",
    "system.peak_buffer_memory",
    "planner.total_time",
    "optimizer.total_time",
    "physical_planner.total_time",
)
# Every setting we change, to put back when the user takes profiling over.
OUR_SETTINGS: Final = ("enable_profiling", "profiling_coverage", "tracked_metrics")


def _sql_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def install_statement(operators: bool) -> str:
    """The SET statements that turn the quiet, lean profiler on."""
    tracked = _BASE_METRICS + (OPERATOR_METRICS if operators else ())
    return (
        "SET enable_profiling = 'no_output'; SET profiling_coverage = 'ALL'; "
        f"SET tracked_metrics = {_sql_list(tracked)}"
    )


RESTORE_STATEMENT: Final = "; ".join(f"RESET {name}" for name in OUR_SETTINGS)


@dataclass(slots=True)
class QueryProfile:
    """The figures of one finished query, in seconds, bytes and rows."""

    total_time: float
    cpu_time: float
    rows_scanned: int
    row_groups_scanned: int
    row_groups_to_scan: int
    bytes_read: int
    bytes_written: int
    peak_buffer_memory: int
    planning: float
    optimizing: float
    physical_planning: float
    operators: dict[str, float] | None

    @property
    def execution(self) -> float:
        """Total time less the three planning phases (DuckDB gives no execution figure)."""
        return max(0.0, self.total_time - self.planning - self.optimizing - self.physical_planning)


def _number(section: dict[str, Any], key: str) -> Any:
    value = section.get(key)
    return value if isinstance(value, int | float) else 0


def _operator_times(operators: list[Any]) -> dict[str, float]:
    """Seconds per operator type, summed over the tree (threads' time adds up)."""
    times: dict[str, float] = {}
    stack = list(operators)
    while stack:
        node = stack.pop()
        kind = node.get("type")
        timing = node.get("timing")
        if isinstance(kind, str) and isinstance(timing, int | float):
            times[kind] = times.get(kind, 0.0) + timing
        stack.extend(node.get("children") or ())
    return times


def parse(text: str, operators: bool) -> QueryProfile | None:
    """A finished query's profile from DuckDB's JSON, or None when it has not finished."""
    if '"query"' not in text:  # cheap check before parsing: still streaming, or no profile
        return None
    data = json.loads(text)
    query = data.get("query")
    if not isinstance(query, dict):
        return None
    io = data.get("io") or {}
    tree = data.get("operator")
    return QueryProfile(
        total_time=_number(query, "total_time"),
        cpu_time=_number(query, "cpu_time"),
        rows_scanned=_number(query, "total_rows_scanned"),
        row_groups_scanned=_number(query, "total_row_groups_scanned"),
        row_groups_to_scan=_number(query, "total_row_groups_to_scan"),
        bytes_read=_number(io, "total_bytes_read"),
        bytes_written=_number(io, "total_bytes_written"),
        peak_buffer_memory=_number(data.get("system") or {}, "peak_buffer_memory"),
        planning=_number(data.get("planner") or {}, "total_time"),
        optimizing=_number(data.get("optimizer") or {}, "total_time"),
        physical_planning=_number(data.get("physical_planner") or {}, "total_time"),
        operators=_operator_times(tree) if operators and isinstance(tree, list) else None,
    )


def enabled(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection profiles its statements (ours, or the program's own settings).

    False when DuckDB cannot say (a closed connection): never the user's problem.
    """
    try:
        return '"disabled"' not in connection.get_profiling_information(format="json")
    except duckdb.Error:
        return False


def read(connection: duckdb.DuckDBPyConnection, operators: bool) -> QueryProfile | None:
    """The last query's profile on ``connection``, or None (unfinished, or profiling off)."""
    return parse(connection.get_profiling_information(format="json"), operators)
