"""Table and data metrics of DuckDB databases, read at collection time with a bounded cost.

``TableMetrics`` reports every table of each watched database: its rows
(``duckdb_tables().estimated_size``: DuckDB's count of committed rows, free to
read; deleted rows may count until DuckDB compacts the table), its columns
and its estimated bytes; and for the tables in ``profile_tables``, a
data-quality profile per column. ``_quality`` says how size and
profile are read. Only the database a connection opened is reported: not
other attached databases, nor temporary or internal tables, nor views.

Why it is built this way:

* Figures are read when a reader collects, at most once per ``ttl_s``, and a
  refresh is interrupted after ``timeout_s``. A failure or a timeout is one
  warning per database; the last good figures stay; nothing reaches the reader.
* The user's connection is held through a weak reference (DuckDB keeps the
  file locked while any connection lives) and no SQL runs on it: that would
  overwrite the profile the query metrics read. Each refresh opens a
  ``cursor()`` (a new connection to the same instance; safe from another
  thread while the user's thread runs queries) and closes it at once.
* DuckDB refuses ``close()`` of a connection while one of its cursors runs a
  query in another thread (``ResourceInUseException``): ``forget()``
  interrupts and waits for a refresh in flight, so call it before ``close()``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

import duckdb
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import threads
from jobmeter._core.instruments import Instrument, observe
from jobmeter.duckdb import _quality as quality
from jobmeter.duckdb._watched import TableFigures, WatchedDatabase

_log = logging.getLogger("jobmeter")

ROWS: Final = "jobmeter.duckdb.table.rows"
SIZE: Final = "jobmeter.duckdb.table.size"
COLUMNS: Final = "jobmeter.duckdb.table.columns"
# docs/metrics.md lists them.
INSTRUMENTS: Final = (
    Instrument(ROWS, "up_down_counter", "{row}", "Rows of the table (DuckDB's estimate)."),
    Instrument(SIZE, "up_down_counter", "By", "Bytes the table takes (estimate, to the block)."),
    Instrument(COLUMNS, "up_down_counter", "{column}", "Columns of the table."),
    Instrument(quality.NULL_RATIO, "gauge", "1", "Share of the column's rows that are NULL."),
    Instrument(quality.DISTINCT, "gauge", "{value}", "Distinct values of the column (approx.)."),
    Instrument(quality.MIN, "gauge", "1", "Smallest value (numbers; dates as Unix seconds)."),
    Instrument(quality.MAX, "gauge", "1", "Largest value (numbers; dates as Unix seconds)."),
    Instrument(quality.VALUES, "gauge", "{row}", "Rows per value of a column with few values."),
)  # fmt: skip

# The callbacks of one collection run within milliseconds: they share one
# look at the database even with ttl_s=0.
_SHARED_S: Final = 0.2
# A second reader (or a signal handler's export on this thread) does not wait
# for a refresh: it reports the figures there are.
_LOCK_WAIT_S: Final = 0.1
# DuckDB drops an interrupt that lands between two statements: repeat it.
_INTERRUPT_EVERY_S: Final = 0.05

_DATABASE_SQL = """SELECT database_name, coalesce(path, '') FROM duckdb_databases()
WHERE database_name = current_database()"""
_TABLES_SQL = """SELECT schema_name, table_name, estimated_size, column_count FROM duckdb_tables()
WHERE database_name = ? AND NOT internal AND NOT temporary ORDER BY schema_name, table_name"""
_BLOCK_SIZE_SQL = "SELECT block_size FROM pragma_database_size() WHERE database_name = ?"
_COLUMNS_SQL = """SELECT column_name, data_type FROM duckdb_columns()
WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index"""


class _StopError(Exception):
    """Out of time, or the database was forgotten, between two statements of a refresh."""


class TableMetrics:
    """Rows, size and columns of each table of the watched DuckDB databases.

    And opt-in data-quality figures of ``profile_tables``, which export data
    values. See the module docstring for what is read, how, and at what cost.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        attributes: Mapping[str, AttributeValue],
        ttl_s: float = 60.0,
        timeout_s: float = 2.0,
        profile_tables: Collection[str] = (),
        max_values: int = 20,
    ) -> None:
        self._attributes = dict(attributes)
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._profile = {name.lower(): name for name in profile_tables}  # DuckDB: case-blind
        self._max_values = max_values
        self._lock = threading.Lock()
        self._databases: dict[tuple[str, str], WatchedDatabase] = {}  # by namespace and file path
        self._failed = False
        for instrument in INSTRUMENTS:
            observe(meter, instrument, self._callback(instrument.name))

    def watch(self, connection: duckdb.DuckDBPyConnection, namespace: str) -> None:
        """Start reporting the tables of ``connection``'s database (``namespace``: db.namespace).

        Connections to one database (a connection and its cursors) are reported once.
        """
        try:
            cursor = connection.cursor()
            try:
                name, path = cursor.execute(_DATABASE_SQL).fetchall()[0]
            finally:
                cursor.close()
        except duckdb.Error as error:
            _log.warning("jobmeter: DuckDB database %r cannot be watched (%s); its table "
                         "metrics are off", namespace, error)  # fmt: skip
            return
        with self._lock:
            db = self._databases.setdefault((namespace, path), WatchedDatabase(namespace, name))
            db.connections.append(weakref.ref(connection))

    def forget(self, connection: duckdb.DuckDBPyConnection) -> None:
        """Stop reporting through ``connection``; call it before closing the connection.

        A refresh in flight on its database is interrupted and waited for (at
        most ``timeout_s`` and a second): DuckDB would refuse ``close()`` meanwhile.
        """
        with self._lock:
            found = [db for db in self._databases.values()
                     if any(ref() is connection for ref in db.connections)]  # fmt: skip
            for db in found:
                db.connections = [r for r in db.connections if r() is not connection]
            self._prune()
        for db in found:
            db.stopping = True
            deadline = time.monotonic() + self._timeout_s + 1
            while not db.refreshing.acquire(timeout=_INTERRUPT_EVERY_S):
                db.interrupt()
                if time.monotonic() > deadline:
                    break
            else:
                db.refreshing.release()
            db.stopping = False

    def _prune(self) -> None:
        """Drop dead weak references, and databases with no connection left (holds _lock)."""
        for key, db in list(self._databases.items()):
            db.connections = [ref for ref in db.connections if ref() is not None]
            if not db.connections:
                db.tables = {}
                del self._databases[key]

    def _callback(self, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            try:
                with self._lock:
                    self._prune()
                    databases = list(self._databases.values())
                points: list[Observation] = []
                for db in databases:
                    self._update(db)
                    for table in list(db.tables.values()):
                        points += self._points(metric, table)
                return points
            except Exception:  # a bug: once, not an SDK error at every collection
                if not self._failed:
                    self._failed = True
                    _log.warning("jobmeter: DuckDB table metrics failed", exc_info=True)
                return []

        return observe

    def _points(self, metric: str, table: TableFigures) -> list[Observation]:
        if metric == ROWS:
            return [Observation(table.rows, table.attributes)]
        if metric == COLUMNS:
            return [Observation(table.columns, table.attributes)]
        if metric == SIZE:
            return [] if table.size is None else [Observation(table.size, table.attributes)]
        return [Observation(value, {**table.attributes, **labels})
                for name, labels, value in table.profile if name == metric]  # fmt: skip

    def _open_cursor(self, db: WatchedDatabase) -> duckdb.DuckDBPyConnection | None:
        """A new cursor on one of ``db``'s connections; forgets those the user closed."""
        for ref in list(db.connections):
            connection = ref()
            try:
                if connection is not None:
                    return connection.cursor()
            except duckdb.ConnectionException:  # closed
                with self._lock:
                    db.connections = [r for r in db.connections if r is not ref]
            except duckdb.Error:
                continue
        with self._lock:
            self._prune()
        return None

    def _update(self, db: WatchedDatabase) -> None:
        """Refresh ``db`` when its figures are older than ``ttl_s``."""
        now = time.monotonic()
        if now < db.checked_until or not db.refreshing.acquire(timeout=_LOCK_WAIT_S):
            return
        try:
            cursor = self._open_cursor(db)  # also how a closed connection is noticed
            if cursor is not None and now < db.fresh_until:
                cursor.close()
            elif cursor is not None:
                self._refresh(db, cursor)
            db.checked_until = time.monotonic() + _SHARED_S
        finally:
            db.refreshing.release()

    def _refresh(self, db: WatchedDatabase, cursor: duckdb.DuckDBPyConnection) -> None:
        done, expired = threading.Event(), threading.Event()

        def watchdog() -> None:
            expired.set()
            while not done.is_set():
                db.interrupt()
                done.wait(_INTERRUPT_EVERY_S)

        def run(sql: str, parameters: object = ()) -> list[tuple[Any, ...]]:
            if expired.is_set() or db.stopping:
                raise _StopError
            return cursor.execute(sql, parameters).fetchall()

        with db.cursor_lock:
            db.cursor = cursor
        timer = threading.Timer(self._timeout_s, watchdog)
        timer.daemon = True
        threads.start(timer)
        try:
            self._read(db, run)
        except (duckdb.Error, _StopError) as error:
            if db.stopping or isinstance(error, duckdb.ConnectionException):
                return  # forgotten or closed: no warning; the next collection looks again
            if expired.is_set():
                db.warn_once("refresh", "jobmeter: DuckDB table metrics of database %r took "
                             "longer than table_timeout_s=%s and were interrupted; the last "
                             "values are reported. Raise table_timeout_s, or profile fewer or "
                             "smaller tables (profile_tables)", db.namespace,
                             self._timeout_s)  # fmt: skip
            else:
                db.warn_once("refresh", "jobmeter: DuckDB table metrics of database %r failed "
                             "(%s); the last values are reported", db.namespace,
                             error)  # fmt: skip
        finally:
            done.set()
            timer.cancel()
            with db.cursor_lock:
                db.cursor = None
            cursor.close()
        db.fresh_until = time.monotonic() + self._ttl_s

    def _read(self, db: WatchedDatabase, run: quality.Run) -> None:
        """Rows and columns of all tables, then sizes, then profiles: each kept as it comes."""
        tables, identities = {}, {}
        for schema, name, rows, columns in run(_TABLES_SQL, [db.name]):
            shown = name if schema == "main" else f"{schema}.{name}"
            attributes = {**self._attributes, "db.system.name": "duckdb",
                          "db.namespace": db.namespace, "db.collection.name": shown}  # fmt: skip
            tables[shown] = TableFigures(attributes, rows, columns)
            if (kept := db.tables.get(shown)) is not None:  # until this refresh replaces them
                tables[shown].size, tables[shown].profile = kept.size, kept.profile
            identities[shown] = (schema, name, quality.quote_all(db.name, schema, name))
        db.tables = tables
        (block_size,) = (run(_BLOCK_SIZE_SQL, [db.name]) or [(0,)])[0]
        for shown, (_, _, qualified) in identities.items():
            tables[shown].size = quality.size(run, qualified, block_size)
        by_name = {shown.lower(): shown for shown in tables}
        by_name |= {f"main.{s.lower()}": s for s, (schema, *_) in identities.items()
                    if schema == "main"}  # fmt: skip
        for lower, given in self._profile.items():
            if (shown := by_name.get(lower)) is None:
                names = sorted(tables)
                more = f" and {len(names) - 10} more" if len(names) > 10 else ""
                db.warn_once(f"unknown:{lower}", "jobmeter: profile table %r is not in DuckDB "
                             "database %r; its tables: %s%s", given, db.namespace,
                             ", ".join(names[:10]) or "none", more)  # fmt: skip
                continue
            schema, name, qualified = identities[shown]
            columns = run(_COLUMNS_SQL, [db.name, schema, name])
            tables[shown].profile = quality.profile(run, qualified, columns, self._max_values)
