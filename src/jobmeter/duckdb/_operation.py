"""One statement in flight on a profiled DuckDB connection, and what a relation needs of it.

``Operation`` is a statement from the call that starts it until its result is
consumed, with the time spent inside DuckDB's calls for it (``elapsed``: the
call that ran it and each fetch, not the program's own work in between).
``ProxyCollector`` is what the proxy needs from its collector, and
``StatementOwner`` the side of the proxy a relation's reads use: protocols, so
that the modules below the proxy never import it.
"""

from __future__ import annotations

from typing import Any, Final, Protocol, TypeVar

import duckdb

from jobmeter.collector import error_type
from jobmeter.duckdb._metrics import QueryInstruments
from jobmeter.duckdb._sampling import SamplingPolicy, ShapeSamples
from jobmeter.duckdb._shapes import ShapeAttributes
from jobmeter.duckdb._sql import Fingerprint, fingerprint, shape_hash

C = TypeVar("C", covariant=True)

#: The shape of a statement whose text is not known.
UNKNOWN: Final = Fingerprint("", "UNKNOWN", 0, False, "", shape_hash(""))

# Operations whose relation from sql() runs lazily, each time it is read.
READ_OPERATIONS: Final = frozenset(
    {"SELECT", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN", "PIVOT", "UNPIVOT"}
)


def duckdb_error_type(exc: BaseException) -> str:
    """``error.type``: DuckDB's public exception name (``duckdb.ParserException``)."""
    name = error_type(type(exc))
    return "duckdb." + name[8:] if name.startswith("_duckdb.") else name


def current_database(connection: duckdb.DuckDBPyConnection) -> str:
    """The connection's current database (``db.namespace``); fetchall(): no result left open."""
    rows = connection.execute("SELECT current_database()").fetchall()
    return str(rows[0][0]) if rows else ""


def fingerprint_of(query: object) -> Fingerprint:
    text = query if isinstance(query, str) else getattr(query, "query", None)
    return fingerprint(text) if isinstance(text, str) else UNKNOWN


class Operation:
    """A statement in flight: its shape, seconds inside DuckDB so far, rows fetched (-1: none).

    ``profiled``: its profile is read when it ends; ``samples`` and ``block``:
    its shape's sampling state and its block of executions, with sampled profiling.
    """

    __slots__ = ("block", "elapsed", "fingerprint", "profiled", "rows", "samples", "source")

    def __init__(self, fp: Fingerprint, source: object, profiled: bool) -> None:
        self.fingerprint = fp
        self.source = source
        self.elapsed = 0.0
        self.rows = -1
        self.profiled = profiled
        self.samples: ShapeSamples | None = None
        self.block = 0

    def fetched(self, rows: int) -> None:
        if rows >= 0:
            self.rows = rows if self.rows < 0 else self.rows + rows


class ProxyCollector(Protocol[C]):
    """What a proxy of type ``C`` needs from its collector (``DuckDBCollector``)."""

    instruments: QueryInstruments
    shapes: ShapeAttributes
    operators: bool
    sampling: SamplingPolicy | None

    def wrap(self, connection: duckdb.DuckDBPyConnection) -> C: ...

    def closed(self, connection: duckdb.DuckDBPyConnection) -> None: ...

    def warn_once(self, what: str) -> None: ...


class StatementOwner(Protocol):
    """The connection a relation's reads are statements of."""

    _pending: Operation | None

    def _start(self, fp: Fingerprint, source: object) -> Operation: ...

    def _fail(self, op: Operation, error: BaseException) -> None: ...

    def _finish(self) -> None: ...

    def _wrap(self, result: Any, fp: Fingerprint | None = None) -> Any: ...
