"""What ``TableMetrics`` keeps per watched DuckDB database, between two collections.

``WatchedDatabase`` is one database: the connections to it (weak
references), the figures last read of each of its tables (``TableFigures``),
and the state of a refresh, with the cursor it runs on so that another thread
can interrupt it. The refresh itself, and what it reads, is ``_tables``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from dataclasses import dataclass, field

import duckdb
from opentelemetry.util.types import AttributeValue

from jobmeter.duckdb import _quality as quality

_log = logging.getLogger("jobmeter")


@dataclass
class TableFigures:
    """One table's figures as last read: rows, columns, bytes and its data-quality profile."""

    attributes: dict[str, AttributeValue]
    rows: int
    columns: int
    size: int | None = None
    profile: list[quality.Point] = field(default_factory=list)


@dataclass(eq=False)
class WatchedDatabase:
    """One database whose tables are reported, and the state of its refresh."""

    namespace: str
    name: str  # DuckDB's name of the database
    connections: list[weakref.ref[duckdb.DuckDBPyConnection]] = field(default_factory=list)
    tables: dict[str, TableFigures] = field(default_factory=dict)  # by db.collection.name
    checked_until: float = 0.0  # time.monotonic()
    fresh_until: float = 0.0
    refreshing: threading.Lock = field(default_factory=threading.Lock)
    cursor_lock: threading.Lock = field(default_factory=threading.Lock)
    cursor: duckdb.DuckDBPyConnection | None = None  # of the refresh in flight
    stopping: bool = False
    warned: set[str] = field(default_factory=set)

    def warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self.warned:
            self.warned.add(key)
            _log.warning(message, *args)

    def interrupt(self) -> None:
        with self.cursor_lock, contextlib.suppress(duckdb.Error):
            if self.cursor is not None:
                self.cursor.interrupt()
