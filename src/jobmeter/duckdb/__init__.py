"""Profiled DuckDB connections: per-query time, rows, bytes, memory and plan phases.

Swap ``duckdb.connect`` for ``jobmeter.duckdb.connect`` and change nothing
else: the connection behaves as DuckDB's own (``execute``, ``sql`` relations,
``fetch*``, ``df``/``arrow``/``pl``, ``cursor()``, context manager), and every
statement is recorded as ``db.client.operation.duration`` (the time DuckDB
spent on it) with ``db.operation.name`` and ``db.query.summary`` (its
operations and tables: ``SELECT orders``), plus DuckDB's own profiler figures
under ``jobmeter.duckdb.*``. SQL text and literals never leave the process.

Example:
    >>> import jobmeter.duckdb
    >>> with jobmeter.duckdb.connect() as con:
    ...     con.execute("SELECT 42").fetchall()
    [(42,)]
"""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter.duckdb._collector import DuckDBCollector, connect, instrument
from jobmeter.duckdb._sampling import ProfileSampling

__all__ = [
    "DuckDBCollector",
    "ProfileSampling",
    "connect",
    "instrument",
]

publish(globals())
