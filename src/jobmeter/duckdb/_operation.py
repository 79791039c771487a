"""One statement in flight on a profiled DuckDB connection, and what the proxy needs.

``Operation`` is a statement from the call that starts it until its result is
consumed; ``Recorder`` is the collector's side (instruments, attribute sets,
options, warnings), kept as a protocol so the proxy does not import the
public module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import duckdb

from jobmeter.collector import error_type
from jobmeter.duckdb._metrics import QueryInstruments, ShapeAttributes
from jobmeter.duckdb._relation import UNKNOWN
from jobmeter.duckdb._sql import Fingerprint, fingerprint

if TYPE_CHECKING:
    from jobmeter.duckdb._proxy import ProfiledConnection

# Operations whose relation from sql() runs lazily, each time it is read.
READ_OPERATIONS: Final = frozenset(
    {"SELECT", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN", "PIVOT", "UNPIVOT"}
)


class Recorder(Protocol):
    """What the proxies need from their collector."""

    instruments: QueryInstruments
    shapes: ShapeAttributes
    operators: bool

    def wrap(self, connection: duckdb.DuckDBPyConnection) -> ProfiledConnection: ...

    def closed(self, connection: duckdb.DuckDBPyConnection) -> None: ...

    def warn_once(self, what: str) -> None: ...


def duckdb_error_type(exc: BaseException) -> str:
    """``error.type``: DuckDB's public exception name (``duckdb.ParserException``)."""
    name = error_type(type(exc))
    return "duckdb." + name[8:] if name.startswith("_duckdb.") else name


def fingerprint_of(query: object) -> Fingerprint:
    text = query if isinstance(query, str) else getattr(query, "query", None)
    return fingerprint(text) if isinstance(text, str) else UNKNOWN


class Operation:
    """A statement in flight: its shape, start time and the rows fetched so far (-1: none)."""

    __slots__ = ("fingerprint", "rows", "source", "started")

    def __init__(self, fp: Fingerprint, started: float, source: object) -> None:
        self.fingerprint = fp
        self.started = started
        self.source = source
        self.rows = -1

    def fetched(self, rows: int) -> None:
        if rows >= 0:
            self.rows = rows if self.rows < 0 else self.rows + rows
