"""Swapping ``duckdb.connect`` for ``jobmeter.duckdb.connect`` changes nothing a program sees.

Every scenario is a function of a connection and of that connection's own
directory. It runs on a plain DuckDB connection and on an instrumented one
(from ``connect()``, and from ``instrument()`` of a plain connection), each on
its own database file prepared the same way, and both must give the same
outcome: equal rows, DataFrames, Arrow tables, arrays and descriptions; or an
exception of the same type with the same message; and the same warnings. The
instrumented run must also be recorded: a ``db.client.operation.duration``
point for the scenario's operation, with ``error.type`` =
``duckdb.<ExceptionClassName>`` for a failure. Further tests check that the
objects are DuckDB's (isinstance, every public method), that DuckDB's warnings
point at the caller's line, and that the user's own profiling settings stand.

A difference is a bug of the proxy: no scenario here is skipped or marked xfail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import gc
import io
import json
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pandas.testing as pdt
import polars as pl
import polars.testing as pl_testing
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jobmeter.duckdb
from jobmeter.testing import InMemoryMetrics, in_memory

DURATION = "db.client.operation.duration"
DB_FILE = "shop.duckdb"  # the same name in both directories: current_database() is "shop"
SETUP = """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    region VARCHAR NOT NULL,
    amount DECIMAL(10, 2),
    placed TIMESTAMP,
    note VARCHAR,
    tags VARCHAR[]
);
INSERT INTO orders
SELECT i, 'r' || (i % 4), (i * 1.25)::DECIMAL(10, 2),
       TIMESTAMP '2024-01-01' + INTERVAL (i) HOUR,
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'note ' || i END,
       ['t' || (i % 3), 't' || (i % 2)]
FROM range(1, 201) r(i);
CREATE TABLE regions (region VARCHAR PRIMARY KEY, label VARCHAR);
INSERT INTO regions VALUES ('r0', 'north'), ('r1', 'east'), ('r2', 'south');
CREATE VIEW per_region AS SELECT region, count(*) AS n FROM orders GROUP BY region;
COPY (SELECT id, region, amount FROM orders ORDER BY id) TO '{dir}/orders.parquet' (FORMAT parquet);
"""

Run = Callable[[duckdb.DuckDBPyConnection, Path], object]


@dataclass(frozen=True)
class Raised:
    """An exception as the program sees it: its class and its message."""

    type: type[BaseException]
    message: str

    @classmethod
    def of(cls, error: BaseException) -> Raised:
        return cls(type(error), str(error))


@dataclass(frozen=True)
class Outcome:
    """What a scenario gave back (or raised), and the warnings it emitted."""

    result: object
    warned: tuple[tuple[str, str], ...]  # category, message


@dataclass(frozen=True)
class Scenario:
    """One thing a program does with its connection."""

    name: str
    run: Run
    operation: str | None = "SELECT"  # db.operation.name recorded; ANY; None: not checked
    error: type[duckdb.Error] | None = None  # the exception the scenario ends with


SCENARIOS: list[Scenario] = []
ANY = "*"  # recorded, under whichever db.operation.name


def scenario(
    operation: str | None = "SELECT", error: type[duckdb.Error] | None = None
) -> Callable[[Run], Run]:
    """Register a function as a scenario named after it."""

    def register(run: Run) -> Run:
        SCENARIOS.append(Scenario(run.__name__, run, operation, error))
        return run

    return register


def attempt(call: Callable[[], object]) -> object:
    """The call's result, or the exception it raised as a value (to go on after it)."""
    try:
        return call()
    except Exception as error:
        return Raised.of(error)


def outcome(run: Run, con: duckdb.DuckDBPyConnection, where: Path) -> Outcome:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = attempt(lambda: run(con, where))
    warned = tuple((w.category.__name__, str(w.message)) for w in caught)
    return Outcome(result, warned)


def assert_same(expected: object, got: object, where: str = "result") -> None:
    """Equal values, compared the way each kind of result compares."""
    if isinstance(expected, pd.DataFrame):
        assert isinstance(got, pd.DataFrame), where
        pdt.assert_frame_equal(got, expected, obj=where)
    elif isinstance(expected, pd.Series):
        assert isinstance(got, pd.Series), where
        pdt.assert_series_equal(got, expected, obj=where)
    elif isinstance(expected, pl.DataFrame):
        assert isinstance(got, pl.DataFrame), where
        pl_testing.assert_frame_equal(got, expected)
    elif isinstance(expected, pa.Table | pa.RecordBatch):
        assert isinstance(got, type(expected)), where
        assert got.schema.equals(expected.schema, check_metadata=True), where
        assert got.equals(expected), where
    elif isinstance(expected, np.ma.MaskedArray):
        assert isinstance(got, np.ma.MaskedArray), where
        assert got.dtype == expected.dtype, where
        np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(expected))
        np.testing.assert_array_equal(got.compressed(), expected.compressed())
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), where
        assert got.dtype == expected.dtype, where
        if expected.dtype == object:  # lists, structs: arrays of arrays
            assert_same(expected.tolist(), got.tolist(), where)
        else:
            np.testing.assert_array_equal(got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict), where
        assert list(got) == list(expected), where
        for key, value in expected.items():
            assert_same(value, got[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple) and not isinstance(expected, Outcome):
        assert type(got) is type(expected), f"{where}: {got!r} != {expected!r}"
        assert len(got) == len(expected), f"{where}: {got!r} != {expected!r}"
        for index, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, f"{where}[{index}]")
    elif isinstance(expected, Outcome):
        assert isinstance(got, Outcome)
        assert_same(expected.result, got.result, where)
        assert got.warned == expected.warned, f"{where}: warnings"
    else:
        assert type(got) is type(expected), f"{where}: {got!r} != {expected!r}"
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def _prepare(directory: Path) -> Path:
    directory.mkdir()
    with duckdb.connect(str(directory / DB_FILE)) as con:
        con.execute(SETUP.format(dir=directory))
    return directory


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Two directories, each with the same database file and Parquet file in it."""
    return _prepare(tmp_path / "plain"), _prepare(tmp_path / "instrumented")


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    """jobmeter configured with an in-memory reader (reset afterwards)."""
    with in_memory() as metrics:
        yield metrics


def _open(plain_dir: Path, instrumented_dir: Path, opened_by: str = "connect") -> tuple[Any, Any]:
    """A plain connection, and an instrumented one from connect() or from instrument()."""
    plain = duckdb.connect(str(plain_dir / DB_FILE))
    path = str(instrumented_dir / DB_FILE)
    if opened_by == "connect":
        return plain, jobmeter.duckdb.connect(path)
    return plain, jobmeter.duckdb.instrument(duckdb.connect(path))


# -- SQL run by execute() and read with fetchall() --------------------------------------------

SQL_CASES: list[tuple[str, str, object, str]] = [
    ("select_ordered", "SELECT * FROM orders ORDER BY id", None, "SELECT"),
    ("inner_join", "SELECT o.id, r.label FROM orders o JOIN regions r USING (region) "
     "WHERE o.id < 12 ORDER BY o.id", None, "SELECT"),
    ("left_join_nulls", "SELECT o.id, r.label FROM orders o LEFT JOIN regions r "
     "ON o.region = r.region WHERE o.id BETWEEN 1 AND 8 ORDER BY o.id", None, "SELECT"),
    ("group_by_having", "SELECT region, count(*), sum(amount), min(placed), max(note) "
     "FROM orders GROUP BY region HAVING count(*) > 10 ORDER BY region", None, "SELECT"),
    ("window_functions", "SELECT id, region, row_number() OVER w, sum(amount) OVER w, "
     "lag(id) OVER w FROM orders WINDOW w AS (PARTITION BY region ORDER BY id) "
     "ORDER BY id LIMIT 30", None, "SELECT"),
    ("cte", "WITH big AS (SELECT * FROM orders WHERE amount > 100), "
     "per AS (SELECT region, avg(amount) AS a FROM big GROUP BY ALL) "
     "SELECT * FROM per ORDER BY region", None, "SELECT"),
    ("recursive_cte", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
     "WHERE i < 10) SELECT sum(i) FROM n", None, "SELECT"),
    ("view", "SELECT * FROM per_region ORDER BY region", None, "SELECT"),
    ("nested_types", "SELECT id, tags, {'a': id, 'b': note} AS s, MAP {'k': id} AS m "
     "FROM orders ORDER BY id LIMIT 5", None, "SELECT"),
    ("params_qmark", "SELECT id, note FROM orders WHERE id BETWEEN ? AND ? ORDER BY id",
     [10, 15], "SELECT"),
    ("params_dollar_numbered", "SELECT $2::VARCHAR || id, $1 FROM orders "
     "WHERE id <= $1 ORDER BY id", [3, "x"], "SELECT"),
    ("params_named", "SELECT id FROM orders WHERE id >= $lo AND id < $hi AND region = $r "
     "ORDER BY id", {"lo": 10, "hi": 40, "r": "r1"}, "SELECT"),
    ("params_python_types", "SELECT ?, ?, ?, ?, ?, ?", [dt.date(2024, 2, 29),
     decimal.Decimal("1.50"), None, [1, 2], b"\x00\x01", dt.datetime(2024, 1, 1, 12)],
     "SELECT"),
    ("from_first", "FROM orders SELECT region, count(*) GROUP BY region ORDER BY region",
     None, "SELECT"),
    ("values_list", "VALUES (1, 'a'), (2, 'b')", None, "SELECT"),
    ("describe", "DESCRIBE orders", None, "DESCRIBE"),
    ("show_tables", "SHOW TABLES", None, "SHOW"),
    ("summarize", "SUMMARIZE SELECT id, region FROM orders", None, "SUMMARIZE"),
    ("explain", "EXPLAIN SELECT region, count(*) FROM orders GROUP BY region", None, "EXPLAIN"),
    ("pivot", "PIVOT (SELECT region, id % 2 AS odd, amount FROM orders) ON odd "
     "USING sum(amount) GROUP BY region ORDER BY region", None, "PIVOT"),
    ("create_table_as", "CREATE TABLE big AS SELECT * FROM orders WHERE amount > 200",
     None, "CREATE"),
    ("insert_returning", "INSERT INTO regions VALUES ('r3', 'west'), ('r4', 'up') "
     "RETURNING *", None, "INSERT"),
    ("update_count", "UPDATE orders SET note = 'changed' WHERE id % 7 = 0", None, "UPDATE"),
    ("delete_count", "DELETE FROM orders WHERE id > 190", None, "DELETE"),
    ("multiple_statements", "CREATE TEMP TABLE x AS SELECT 1 AS a; INSERT INTO x VALUES (2), "
     "(3); SELECT sum(a), count(*) FROM x", None, "BATCH"),
    ("pragma_table_info", "PRAGMA table_info('orders')", None, "PRAGMA"),
    ("current_database", "SELECT current_database(), current_schema()", None, "SELECT"),
]  # fmt: skip

ERROR_CASES: list[tuple[str, str, object, type[duckdb.Error], str]] = [
    ("syntax_error", "SELEC 1", None, duckdb.ParserException, ANY),
    ("constraint_primary_key", "INSERT INTO orders (id, region) VALUES (1, 'r0')", None,
     duckdb.ConstraintException, "INSERT"),
    ("constraint_not_null", "INSERT INTO orders (id, region) VALUES (999, NULL)", None,
     duckdb.ConstraintException, "INSERT"),
    ("conversion_error", "SELECT 'abc'::INTEGER", None, duckdb.ConversionException, "SELECT"),
    ("binder_unknown_column", "SELECT nope FROM orders", None, duckdb.BinderException,
     "SELECT"),
    ("catalog_unknown_table", "SELECT * FROM nope", None, duckdb.CatalogException, "SELECT"),
    ("missing_parameter", "SELECT ?, ?", [1], duckdb.InvalidInputException, "SELECT"),
    ("unknown_named_parameter", "SELECT $a", {"b": 1}, duckdb.InvalidInputException,
     "SELECT"),
    ("error_in_second_statement", "SELECT 1; SELECT * FROM nope", None,
     duckdb.CatalogException, ANY),
    ("out_of_range", "SELECT 2147483647::INTEGER + 1", None, duckdb.OutOfRangeException,
     "SELECT"),
    ("error_function", "SELECT error('custom failure')", None, duckdb.InvalidInputException,
     "SELECT"),
]  # fmt: skip


def _fetchall(text: str, params: object) -> Run:
    def run(con: duckdb.DuckDBPyConnection, where: Path) -> object:
        if params is None:
            return con.execute(text).fetchall()
        return con.execute(text, params).fetchall()

    return run


SCENARIOS += [Scenario(name, _fetchall(text, p), op) for name, text, p, op in SQL_CASES]
SCENARIOS += [Scenario(name, _fetchall(text, p), op, err) for name, text, p, err, op in ERROR_CASES]


# -- DB-API fetching -------------------------------------------------------------------------

QUERY = "SELECT id, region, amount, placed, note FROM orders ORDER BY id"


@scenario()
def fetchone_until_none(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetchone() streams the rows one at a time, then None."""
    con.execute(QUERY)
    rows = []
    while (row := con.fetchone()) is not None:
        rows.append(row)
    return rows, con.fetchone()


@scenario()
def fetchmany_batches(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetchmany(n) hands out batches of n until an empty one."""
    con.execute(QUERY)
    batches = []
    while batch := con.fetchmany(37):
        batches.append(batch)
    return batches, con.fetchmany(5)


@scenario()
def fetch_mixed_then_all(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetchone, fetchmany and fetchall share one position in the result."""
    cur = con.execute(QUERY)
    return cur.fetchone(), cur.fetchmany(3), len(cur.fetchall()), cur.fetchall()


@scenario()
def fetchmany_default_size(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetchmany() without a size reads one row."""
    return con.execute(QUERY).fetchmany(), con.fetchmany()


@scenario()
def fetch_df_chunk_loop(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetch_df_chunk() reads the result a chunk at a time, then an empty frame."""
    con.execute("SELECT range AS i, range % 7 AS m FROM range(5000) ORDER BY i")
    chunks = []
    while len(chunk := con.fetch_df_chunk()) > 0:
        chunks.append(chunk)
    return [len(c) for c in chunks], pd.concat(chunks, ignore_index=True), chunk


@scenario()
def fetch_df_chunk_vectors(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetch_df_chunk(vectors_per_chunk) sizes the chunks."""
    con.execute("SELECT range AS i FROM range(10000)")
    return con.fetch_df_chunk(2), con.fetch_df_chunk(vectors_per_chunk=1), len(con.fetchall())


@scenario()
def df_fetchdf_fetch_df(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """df(), fetchdf() and fetch_df() give the same DataFrame as plain DuckDB."""
    return con.execute(QUERY).df(), con.execute(QUERY).fetchdf(), con.execute(QUERY).fetch_df()


@scenario()
def df_date_as_object(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """df(date_as_object=True) keeps the keyword argument."""
    return con.execute("SELECT DATE '2024-01-02' AS d, 1 AS x").df(date_as_object=True)


@scenario()
def fetchnumpy_arrays(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetchnumpy() gives the same (masked) arrays."""
    return con.execute(QUERY).fetchnumpy()


@scenario()
def connection_to_arrow_table(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """to_arrow_table() on the connection: same table, same warning at the caller's line."""
    return con.execute(QUERY).to_arrow_table()


@scenario()
def connection_to_arrow_reader(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """to_arrow_reader(batch_size) on the connection: same batches."""
    reader = con.execute(QUERY).to_arrow_reader(50)
    return [batch.num_rows for batch in reader] if reader is not None else None


@scenario()
def description_and_rowcount(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """description and rowcount after a SELECT and after an UPDATE."""
    con.execute("SELECT id, region, amount, placed, tags FROM orders LIMIT 1")
    selected = [tuple(str(part) for part in column) for column in con.description or []]
    first = (selected, con.rowcount)
    con.execute("UPDATE orders SET note = 'x' WHERE id < 5")
    return first, con.description, con.rowcount, con.fetchall()


@scenario()
def abandoned_result(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A result never fetched is replaced by the next statement's."""
    con.execute(QUERY)
    con.fetchmany(3)
    return con.execute("SELECT 42").fetchall()


@scenario()
def fetch_without_result(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetchall() after a statement without rows, and after a consumed result."""
    con.execute("CREATE TABLE empty_one (a INTEGER)")
    first = attempt(con.fetchall)
    con.execute("SELECT 1").fetchall()
    return first, attempt(con.fetchall), attempt(con.fetchone)


@scenario(error=duckdb.InvalidInputException)
def runtime_error_during_fetch(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A streaming result that fails after its first rows: the rows, then the same error."""
    con.execute(
        "SELECT i, CASE WHEN i < 150000 THEN i ELSE error('late failure ' || i) END AS v "
        "FROM range(300000) t(i) ORDER BY i"
    )
    first = con.fetchmany(3)
    try:
        con.fetchall()
    except duckdb.Error as error:
        raise type(error)(f"after {first}: {error}") from error
    return first


@scenario(error=duckdb.InvalidInputException)
def runtime_error_during_fetchone_stream(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """An error raised in fetchone() while streaming, on both connections alike."""
    con.execute("SELECT CASE WHEN i < 5000 THEN i ELSE error('late') END FROM range(100000) t(i)")
    while con.fetchone() is not None:
        pass
    return None


@scenario()
def error_then_connection_still_works(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """After a failed statement the connection runs the next one."""
    failed = attempt(lambda: con.execute("SELECT * FROM nope"))
    return failed, con.execute("SELECT count(*) FROM orders").fetchall()


# -- executemany, register, Python objects ----------------------------------------------------


@scenario(operation="BATCH INSERT")
def executemany_insert(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """executemany() inserts every parameter set."""
    rows = [(1000 + i, f"r{i % 2}", decimal.Decimal(i)) for i in range(50)]
    con.executemany("INSERT INTO orders (id, region, amount) VALUES (?, ?, ?)", rows)
    return con.execute("SELECT count(*), sum(amount) FROM orders WHERE id >= 1000").fetchall()


@scenario(operation="BATCH INSERT")
def executemany_named(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """executemany() with named parameters."""
    rows = [{"id": 2000 + i, "r": "r9"} for i in range(5)]
    con.executemany("INSERT INTO orders (id, region) VALUES ($id, $r)", rows)
    return con.execute("SELECT id FROM orders WHERE region = 'r9' ORDER BY id").fetchall()


@scenario(operation="BATCH SELECT")
def executemany_select_keeps_last(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """executemany() of a SELECT leaves the last execution's rows to fetch."""
    return con.executemany("SELECT ?::INTEGER * 2", [[1], [2], [3]]).fetchall()


@scenario(operation="BATCH INSERT", error=duckdb.ConstraintException)
def executemany_constraint_violation(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A duplicate key in the middle of executemany() raises the same error."""
    return con.executemany("INSERT INTO regions VALUES (?, ?)", [("z1", "a"), ("r0", "dup")])


@scenario()
def register_dataframe(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """register() of a pandas DataFrame, then queries on it, then unregister()."""
    frame = pd.DataFrame({"k": [1, 2, 3], "v": ["a", "b", None]})
    con.register("frame_view", frame)
    rows = con.execute("SELECT k, v FROM frame_view WHERE k > 1 ORDER BY k").fetchall()
    joined = con.execute(
        "SELECT f.k, count(o.id) FROM frame_view f JOIN orders o ON o.id % 3 = f.k - 1 "
        "GROUP BY f.k ORDER BY f.k"
    ).fetchall()
    con.unregister("frame_view")
    return rows, joined, attempt(lambda: con.execute("SELECT * FROM frame_view").fetchall())


@scenario()
def register_arrow_table(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """register() of an Arrow table."""
    con.register("arrow_view", pa.table({"x": [1, 2, 3]}))
    return con.execute("SELECT sum(x) FROM arrow_view").fetchall()


@scenario()
def execute_reads_local_dataframe(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """execute() finds a pandas DataFrame by its Python variable name."""
    local_frame = pd.DataFrame({"a": [1, 2, 3]})
    assert len(local_frame) == 3
    return con.execute("SELECT sum(a) FROM local_frame").fetchall()


@scenario()
def sql_reads_local_dataframe(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql() finds a pandas DataFrame by its Python variable name."""
    local_frame = pd.DataFrame({"a": [1, 2, 3]})
    assert len(local_frame) == 3
    return con.sql("SELECT sum(a) FROM local_frame").fetchall()


@scenario()
def sql_reads_local_arrow_and_polars(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql() finds Arrow tables and polars DataFrames by their variable names."""
    arrow_table = pa.table({"a": [1, 2]})
    polars_frame = pl.DataFrame({"a": [10, 20]})
    assert arrow_table.num_rows == polars_frame.height
    return con.sql("SELECT * FROM arrow_table UNION ALL SELECT * FROM polars_frame").fetchall()


@scenario()
def sql_reads_local_relation(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql() finds a relation by its Python variable name."""
    big = con.sql("SELECT * FROM orders WHERE amount > 240")
    return con.sql("SELECT count(*) FROM big").fetchall(), big.aggregate("count(*)").fetchall()


@scenario()
def from_df_and_from_arrow(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """from_df() and from_arrow() relations."""
    frame = pd.DataFrame({"a": [3, 1, 2]})
    return (
        con.from_df(frame).order("a").fetchall(),
        con.from_arrow(pa.table({"b": ["x", "y"]})).fetchall(),
        con.values([1, "one"]).fetchall(),
    )


@scenario()
def execute_extracted_statements(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """execute() of the Statement objects extract_statements() gives."""
    statements = con.extract_statements("SELECT 1 AS a; SELECT count(*) FROM orders")
    return [str(s.type) for s in statements], [con.execute(s).fetchall() for s in statements]


@scenario()
def python_function(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """create_function(): a Python UDF used in a query, then remove_function()."""

    def shout(text: str) -> str:
        return text.upper() + "!"

    con.create_function("shout", shout, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"))
    rows = con.execute("SELECT shout(region) FROM orders ORDER BY id LIMIT 3").fetchall()
    con.remove_function("shout")
    return rows, attempt(lambda: con.execute("SELECT shout('x')").fetchall())


@scenario(error=duckdb.InvalidInputException)
def python_function_raises(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A UDF that raises fails the query with the same error."""

    def broken(value: int) -> int:
        raise ValueError(f"bad {value}")

    con.create_function("broken", broken, [duckdb.sqltype("INTEGER")], duckdb.sqltype("INTEGER"))
    return con.execute("SELECT broken(id) FROM orders").fetchall()


@scenario(operation=None)
def append_and_table_names(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """append() of a DataFrame; get_table_names() of a query."""
    con.append("regions", pd.DataFrame({"region": ["r8"], "label": ["appended"]}))
    return (
        con.execute("SELECT * FROM regions ORDER BY region").fetchall(),
        sorted(con.get_table_names("SELECT * FROM orders JOIN regions USING (region)")),
    )


@scenario()
def read_json_relation(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """read_json() of a file."""
    path = where / "rows.json"
    path.write_text(json.dumps([{"a": 1, "b": "x"}, {"a": 2, "b": None}]))
    return con.read_json(str(path)).order("a").fetchall()


# -- COPY and Parquet -------------------------------------------------------------------------


@scenario(operation="COPY")
def copy_to_parquet(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """COPY ... TO a Parquet file writes the same rows."""
    target = where / "out.parquet"
    copied = con.execute(f"COPY (SELECT * FROM orders WHERE id < 50) TO '{target}' "
                         "(FORMAT parquet)").fetchall()  # fmt: skip
    return copied, pq.read_table(target)


@scenario(operation="COPY")
def copy_from_parquet(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """COPY ... FROM a Parquet file loads the same rows."""
    con.execute("CREATE TABLE loaded (id INTEGER, region VARCHAR, amount DECIMAL(10, 2))")
    copied = con.execute(f"COPY loaded FROM '{where / 'orders.parquet'}' (FORMAT parquet)")
    return copied.fetchall(), con.execute("SELECT * FROM loaded ORDER BY id").fetchall()


@scenario(operation="COPY")
def copy_csv_round_trip(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """COPY to CSV and read_csv() back."""
    target = where / "out.csv"
    con.execute(f"COPY (SELECT id, note FROM orders WHERE id < 20) TO '{target}' (HEADER)")
    return target.read_text(), con.read_csv(str(target)).fetchall()


@scenario()
def select_from_parquet(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """SELECT over read_parquet() in SQL."""
    path = where / "orders.parquet"
    return con.execute(f"SELECT region, sum(amount) FROM read_parquet('{path}') GROUP BY 1 "
                       "ORDER BY 1").fetchall()  # fmt: skip


# -- relations --------------------------------------------------------------------------------


@scenario()
def relation_chain(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql().filter().aggregate().order() reads the same rows."""
    rel = con.sql("SELECT * FROM orders")
    return (
        rel.filter("amount > 50")
        .aggregate("region, sum(amount) AS s", "region")
        .order("region")
        .fetchall()
    )


@scenario(operation=None)
def relation_project_and_columns(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """project(), columns, types, dtypes, description, alias and type (nothing runs)."""
    rel = con.table("orders").project("id, region, amount * 2 AS double")
    return (
        rel.columns,
        [str(t) for t in rel.types],
        [str(t) for t in rel.dtypes],
        [tuple(str(p) for p in d) for d in rel.description],
        rel.alias,
        rel.type,
        rel.sql_query(),
    )


@scenario()
def relation_len_and_shape(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """len(rel) and rel.shape count the rows with a query: the same count, recorded."""
    rel = con.table("orders").filter("id > 20")
    return len(rel), rel.shape


@scenario()
def table_relation(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """table() reads a table; limit(n, offset) pages it."""
    rel = con.table("orders")
    return rel.order("id").limit(5).fetchall(), rel.order("id").limit(3, offset=10).fetchall()


@scenario()
def view_relation(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """view() reads a view."""
    return con.view("per_region").order("region").fetchall()


@scenario()
def read_parquet_relation(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """read_parquet() then filter and aggregate."""
    rel = con.read_parquet(str(where / "orders.parquet"))
    return rel.filter("id % 2 = 0").aggregate("count(*), sum(amount)").fetchall()


@scenario()
def relation_join(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A join of two relations, with aliases and a condition."""
    orders = con.table("orders").set_alias("o")
    regions = con.table("regions").set_alias("r")
    joined = orders.join(regions, "o.region = r.region", how="left")
    using = con.table("orders").join(con.table("regions"), "region")
    return (
        joined.project("o.id, r.label").filter("id < 10").order("id").fetchall(),
        using.aggregate("label, count(*)", "label").order("label").fetchall(),
    )


@scenario()
def relation_set_operations(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """union, except_ and intersect of relations."""
    a = con.sql("SELECT id FROM orders WHERE id < 10")
    b = con.sql("SELECT id FROM orders WHERE id BETWEEN 5 AND 15")
    return (
        a.union(b).order("id").fetchall(),
        a.except_(b).order("id").fetchall(),
        a.intersect(b).order("id").fetchall(),
    )


@scenario()
def relation_to_table(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """to_table() creates a table with the relation's rows."""
    con.table("orders").filter("id < 30").to_table("orders_copy")
    return con.execute("SELECT count(*), sum(id) FROM orders_copy").fetchall()


@scenario()
def relation_create_and_insert_into(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """create(), insert_into() and insert() of relations."""
    con.sql("SELECT id, region FROM orders WHERE id < 5").create("small")
    con.sql("SELECT id, region FROM orders WHERE id BETWEEN 5 AND 7").insert_into("small")
    con.table("small").insert([100, "r9"])
    return con.table("small").order("id").fetchall()


@scenario()
def relation_write_parquet(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """write_parquet() writes the same file content; read back with read_parquet()."""
    target = where / "rel.parquet"
    con.table("orders").filter("id <= 25").write_parquet(str(target))
    return pq.read_table(target), con.read_parquet(str(target)).order("id").fetchall()


@scenario()
def relation_write_csv(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """write_csv() writes the same text."""
    target = where / "rel.csv"
    con.table("orders").filter("id <= 5").project("id, note").write_csv(str(target))
    return target.read_text()


@scenario()
def relation_iter_rows(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """iter_rows() yields the same rows; an abandoned iterator leaves the connection usable."""
    rows = list(con.table("orders").order("id").iter_rows())
    partial = con.table("orders").order("id").iter_rows()
    head = [next(partial), next(partial)]
    return rows, head, con.execute("SELECT 1").fetchall()


@scenario()
def relation_to_arrow_reader(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """to_arrow_reader(batch_size) and arrow() stream the same batches."""
    rel = con.table("orders").order("id")
    return (
        [b.num_rows for b in rel.to_arrow_reader(64)],
        rel.to_arrow_reader().read_all(),
        rel.arrow().read_all(),
    )


@scenario()
def relation_arrow_tables(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """to_arrow_table(), fetch_arrow_table() (deprecated: same warning, same line)."""
    rel = con.table("orders").order("id")
    return rel.to_arrow_table(), rel.fetch_arrow_table()


@scenario()
def relation_deprecated_readers(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """fetch_record_batch() and fetch_arrow_reader(): same batches, same warnings."""
    rel = con.table("orders").order("id")
    return rel.fetch_record_batch(100).read_all(), rel.fetch_arrow_reader().read_all()


@scenario()
def relation_df_pl_numpy(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """df(), fetchdf(), to_df(), pl() and fetchnumpy() of a relation."""
    rel = con.table("orders").order("id")
    return rel.df(), rel.fetchdf(), rel.to_df(), rel.pl(), rel.fetchnumpy()


@scenario()
def relation_to_dicts(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """to_dicts() of a relation."""
    return con.table("regions").order("region").to_dicts()


@scenario()
def relation_column_access(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """rel.column, rel["column"] and "column" in rel."""
    rel = con.table("orders").order("id").limit(3)
    return rel.region.fetchall(), rel["amount"].fetchall(), "note" in rel, "nope" in rel


@scenario()
def relation_consumed_by_dataframe_libraries(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """pyarrow and polars read a relation through the Arrow C stream interface."""
    rel = con.table("orders").order("id").project("id, region")
    return pa.table(rel), pl.DataFrame(rel)


@scenario()
def relation_show_and_str(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """show() prints and str() renders the same preview."""
    rel = con.table("regions").order("region")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rel.show()
    return printed.getvalue(), str(rel)


@scenario(operation="INSERT")
def sql_of_a_write_runs_now(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql() of an INSERT ... RETURNING or of DDL runs at once, once."""
    returning = con.sql("INSERT INTO regions VALUES ('r7', 'x') RETURNING region")
    assert returning is not None
    created = con.sql("CREATE TABLE made (a INTEGER)")
    return (
        returning.fetchall(),
        returning.fetchall(),
        None if created is None else (type(created), created.fetchall()),
        con.sql("SELECT count(*) FROM regions").fetchall(),
    )


@scenario()
def sql_with_params(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql(params=...) with positional and named parameters."""
    return (
        con.sql("SELECT id FROM orders WHERE id < ? ORDER BY id", params=[4]).fetchall(),
        con.sql("SELECT $x + 1", params={"x": 41}).fetchall(),
        con.query("SELECT 7").fetchall(),
    )


@scenario()
def relation_runs_again_on_each_read(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A lazy relation sees rows inserted after it was built."""
    rel = con.sql("SELECT count(*) FROM orders")
    before = rel.fetchall()
    con.execute("INSERT INTO orders (id, region) VALUES (5000, 'r0')")
    return before, rel.fetchall()


@scenario(operation=None, error=duckdb.BinderException)
def relation_filter_unknown_column(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A filter on an unknown column raises the same binder error."""
    return con.table("orders").filter("nope > 1").fetchall()


@scenario(operation=ANY, error=duckdb.ParserException)
def sql_syntax_error(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """sql() of bad SQL raises the same parser error."""
    return con.sql("SELEC * FROM orders")


@scenario(error=duckdb.ConversionException)
def relation_runtime_error(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A relation that fails while it runs raises the same error in fetchall()."""
    return con.sql("SELECT note::INTEGER FROM orders").fetchall()


@scenario(operation=None)
def module_functions_with_connection(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """duckdb.sql/table/read_parquet(..., connection=con) give DuckDB's results.

    Their reads go through DuckDB's private plumbing, not the connection's
    methods, so they are not recorded (docs/duckdb.md, "Limits").
    """
    counted = duckdb.sql("SELECT count(*) FROM orders", connection=con)
    assert counted is not None
    return (
        counted.fetchall(),
        duckdb.table("regions", connection=con).order("region").fetchall(),
        duckdb.read_parquet(str(where / "orders.parquet"), connection=con).shape,
    )


def test_module_execute_needs_duckdbs_own_connection(tmp_path: Path) -> None:
    """duckdb.execute(..., connection=con) type-checks in C++: the documented limit, pinned.

    If a DuckDB release accepts the stand-in, this fails and the limit can go
    from docs/duckdb.md.
    """
    con = jobmeter.duckdb.connect(str(tmp_path / "x.duckdb"))
    with pytest.raises(TypeError, match="incompatible function arguments"):
        duckdb.execute("SELECT 1", connection=con)
    assert con.execute("SELECT 1").fetchall() == [(1,)]
    con.close()


# -- transactions, cursors, lifecycle ---------------------------------------------------------


@scenario(operation="INSERT")
def transaction_rollback(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """begin() ... rollback() undoes the statements."""
    con.begin()
    con.execute("INSERT INTO regions VALUES ('t1', 'tx')")
    inside = con.execute("SELECT count(*) FROM regions").fetchall()
    con.rollback()
    return inside, con.execute("SELECT count(*) FROM regions").fetchall()


@scenario(operation="INSERT")
def transaction_commit(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """begin() ... commit() keeps the statements; a cursor sees them only after commit."""
    con.begin()
    con.execute("INSERT INTO regions VALUES ('t2', 'tx')")
    other = con.cursor()
    before = other.execute("SELECT count(*) FROM regions").fetchall()
    con.commit()
    after = other.execute("SELECT count(*) FROM regions").fetchall()
    other.close()
    return before, after


@scenario(operation="BEGIN")
def transaction_in_sql(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """BEGIN / COMMIT / ROLLBACK as SQL statements."""
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM regions")
    con.execute("ROLLBACK")
    return con.execute("SELECT count(*) FROM regions").fetchall()


@scenario(error=duckdb.TransactionException)
def transaction_aborted_by_error(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """After an error inside a transaction, the next statement fails the same way."""
    con.begin()
    first = attempt(lambda: con.execute("INSERT INTO regions VALUES ('r0', 'dup')"))
    assert isinstance(first, Raised)
    con.execute("SELECT 1").fetchall()
    return first


@scenario(operation=None)
def commit_and_rollback_without_transaction(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """commit() and rollback() with no transaction behave the same."""
    return attempt(con.commit) is con, attempt(con.rollback) is con


@scenario(operation=None, error=duckdb.TransactionException)
def begin_twice(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """begin() inside a transaction raises the same error."""
    con.begin()
    con.begin()
    return None


@scenario(operation="USE")
def use_another_database(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """USE switches the current database; what follows runs there."""
    con.execute("ATTACH ':memory:' AS scratch")
    con.execute("USE scratch")
    current = con.sql("SELECT current_database()").fetchall()
    con.execute("CREATE TABLE s AS SELECT 1 AS a")
    tables = con.table("s").fetchall()
    con.execute("USE shop")
    return current, tables, con.execute("SELECT current_database()").fetchall()


@scenario()
def cursors_from_threads(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """cursor() per thread: each runs its own queries, in parallel."""
    results: dict[int, object] = {}

    def work(n: int) -> None:
        cur = con.cursor()
        try:
            query = "SELECT count(*) FROM orders WHERE id % ? = ?"
            results[n] = [cur.execute(query, [n + 2, i % (n + 2)]).fetchall() for i in range(5)]
        finally:
            cur.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[n] for n in range(4)]


@scenario()
def cursor_and_duplicate(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """cursor() and duplicate() give connections to the same database."""
    cur, dup = con.cursor(), con.duplicate()
    try:
        return (
            cur.execute("SELECT count(*) FROM orders").fetchall(),
            dup.sql("SELECT current_database()").fetchall(),
            isinstance(cur, duckdb.DuckDBPyConnection),
            isinstance(dup, duckdb.DuckDBPyConnection),
        )
    finally:
        cur.close()
        dup.close()


@scenario()
def execute_returns_the_connection(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """execute() and executemany() return the connection they were called on."""
    return (
        con.execute("SELECT 1") is con,
        con.executemany("SELECT ?", [[1]]) is con,
        con.begin() is con,
        con.rollback() is con,
    )


@scenario()
def context_manager(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """with con: the block's queries run; the connection is closed after it."""
    with con as entered:
        inside = entered.execute("SELECT count(*) FROM orders").fetchall()
        same = entered is con
    return inside, same, attempt(lambda: con.execute("SELECT 1"))


@scenario()
def context_manager_on_error(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """An exception leaving the with block is the program's own, unchanged."""
    with contextlib.suppress(KeyError), con:
        con.execute("SELECT 1")
        raise KeyError("mine")
    return attempt(lambda: con.execute("SELECT 1"))


Use = Callable[[duckdb.DuckDBPyConnection, Path], object]
CLOSED = duckdb.ConnectionException
NO_RESULT = duckdb.InvalidInputException
# name: (what the program does after close(), what it raises, the operation recorded)
CLOSED_USES: dict[str, tuple[Use, type[duckdb.Error] | None, str | None]] = {
    "execute": (lambda c, w: c.execute("SELECT 1"), CLOSED, "SELECT"),
    "executemany": (lambda c, w: c.executemany("SELECT ?", [[1]]), CLOSED,
                    "BATCH SELECT"),
    "sql": (lambda c, w: c.sql("SELECT 1"), CLOSED, "SELECT"),
    "table": (lambda c, w: c.table("orders"), CLOSED, None),
    "read_parquet": (lambda c, w: c.read_parquet(str(w / "orders.parquet")), CLOSED,
                     None),
    "fetchall": (lambda c, w: c.fetchall(), NO_RESULT, None),
    "fetchone": (lambda c, w: c.fetchone(), NO_RESULT, None),
    "fetchmany": (lambda c, w: c.fetchmany(2), NO_RESULT, None),
    "df": (lambda c, w: c.df(), NO_RESULT, None),
    "cursor": (lambda c, w: c.cursor(), CLOSED, None),
    "begin": (lambda c, w: c.begin(), CLOSED, None),
    "register": (lambda c, w: c.register("x", pd.DataFrame({"a": [1]})), CLOSED, None),
    "description": (lambda c, w: c.description, None, None),
    "close_again": (lambda c, w: c.close(), None, None),
}  # fmt: skip


def _closed_then(use: Use) -> Run:
    def run(con: duckdb.DuckDBPyConnection, where: Path) -> object:
        con.execute("SELECT 1").fetchall()
        con.close()
        return use(con, where)

    return run


SCENARIOS += [
    Scenario(f"closed_then_{name}", _closed_then(use), operation, error)
    for name, (use, error, operation) in CLOSED_USES.items()
]


@scenario()
def relation_after_close(con: duckdb.DuckDBPyConnection, where: Path) -> object:
    """A relation of a closed connection raises the same error when read."""
    rel = con.table("orders")
    con.close()
    return attempt(rel.fetchall), attempt(lambda: rel.filter("id < 3"))


# -- the scenarios, on both connections -------------------------------------------------------


@pytest.mark.parametrize("case", SCENARIOS, ids=[case.name for case in SCENARIOS])
@pytest.mark.parametrize("opened_by", ["connect", "instrument"])
def test_scenario_matches_plain_duckdb(
    case: Scenario, opened_by: str, dirs: tuple[Path, Path], recorded: InMemoryMetrics
) -> None:
    """Same results, exceptions and warnings as plain DuckDB; the statement is recorded."""
    plain_dir, instrumented_dir = dirs
    plain, instrumented = _open(plain_dir, instrumented_dir, opened_by)
    try:
        expected = outcome(case.run, plain, plain_dir)
        got = outcome(case.run, instrumented, instrumented_dir)
    finally:
        plain.close()
        instrumented.close()  # ends an operation still in flight
    if case.error is not None:  # the scenario does fail as written
        assert isinstance(expected.result, Raised), expected
        assert expected.result.type is case.error, expected
    assert_same(expected, got)
    if case.operation is None:
        return
    attributes = {} if case.operation == ANY else {"db.operation.name": case.operation}
    if case.error is not None:
        assert getattr(duckdb, case.error.__name__) is case.error  # a public name
        attributes["error.type"] = f"duckdb.{case.error.__name__}"
    assert recorded.count(DURATION, attributes) >= 1, [
        dict(p.attributes or {}) for p in recorded.points(DURATION)
    ]


def test_scenario_names_are_unique() -> None:
    """Each scenario is its own test id."""
    names = [case.name for case in SCENARIOS]
    assert len(names) == len(set(names))


# -- what the objects are ---------------------------------------------------------------------


def _public(obj: object) -> list[str]:
    return sorted(name for name in dir(obj) if not name.startswith("_"))


RELATIONS: dict[str, Callable[[duckdb.DuckDBPyConnection, Path], Any]] = {
    "sql": lambda c, w: c.sql("SELECT * FROM orders"),
    "query": lambda c, w: c.query("SELECT 1 AS x"),
    "table": lambda c, w: c.table("orders"),
    "view": lambda c, w: c.view("per_region"),
    "read_parquet": lambda c, w: c.read_parquet(str(w / "orders.parquet")),
    "from_df": lambda c, w: c.from_df(pd.DataFrame({"a": [1]})),
    "values": lambda c, w: c.values([1, 2]),
    "filter": lambda c, w: c.table("orders").filter("id < 3"),
    "aggregate": lambda c, w: c.table("orders").aggregate("count(*)"),
    "join": lambda c, w: c.table("orders").join(c.table("regions"), "region"),
    "limit": lambda c, w: c.table("orders").limit(2),
    "column": lambda c, w: c.table("orders").region,
    "insert_returning": lambda c, w: c.sql("INSERT INTO regions VALUES ('q', 'q') RETURNING *"),
}


def test_connections_are_duckdb_connections(dirs: tuple[Path, Path]) -> None:
    """isinstance(con, duckdb.DuckDBPyConnection) for the connection, cursors and results."""
    with in_memory():
        con = jobmeter.duckdb.connect(str(dirs[1] / DB_FILE))
        cur = con.cursor()
        try:
            for obj in (con, cur, con.duplicate(), con.execute("SELECT 1"), con.begin()):
                assert isinstance(obj, duckdb.DuckDBPyConnection)
            con.rollback()
            wrapped = jobmeter.duckdb.instrument(duckdb.connect())
            assert isinstance(wrapped, duckdb.DuckDBPyConnection)
            wrapped.close()
        finally:
            cur.close()
            con.close()


@pytest.mark.parametrize("made_by", list(RELATIONS))
def test_relations_are_duckdb_relations(made_by: str, dirs: tuple[Path, Path]) -> None:
    """Relations of an instrumented connection pass isinstance(rel, duckdb.DuckDBPyRelation)."""
    with in_memory():
        con = jobmeter.duckdb.connect(str(dirs[1] / DB_FILE))
        try:
            rel = RELATIONS[made_by](con, dirs[1])
            assert isinstance(rel, duckdb.DuckDBPyRelation)
        finally:
            con.close()


def test_connection_has_every_duckdb_method(dirs: tuple[Path, Path]) -> None:
    """Every public attribute of a DuckDB connection is on the instrumented one, alike."""
    plain, instrumented = _open(*dirs)
    try:
        for name in _public(plain):
            assert hasattr(instrumented, name), name
            assert callable(getattr(instrumented, name)) == callable(getattr(plain, name)), name
    finally:
        plain.close()
        instrumented.close()


@pytest.mark.parametrize("made_by", list(RELATIONS))
def test_relation_has_every_duckdb_method(made_by: str, dirs: tuple[Path, Path]) -> None:
    """Every public attribute of a DuckDB relation is on the instrumented one, alike."""
    plain, instrumented = _open(*dirs)
    try:
        expected = RELATIONS[made_by](plain, dirs[0])
        got = RELATIONS[made_by](instrumented, dirs[1])
        for name in _public(expected):
            assert hasattr(got, name), name
            assert callable(getattr(got, name)) == callable(getattr(expected, name)), name
    finally:
        plain.close()
        instrumented.close()


def test_dir_lists_duckdb_methods(dirs: tuple[Path, Path]) -> None:
    """dir() (tab completion) lists DuckDB's methods on the connection and its relations."""
    plain, instrumented = _open(*dirs)
    try:
        assert set(_public(plain)) <= set(dir(instrumented))
        assert set(_public(plain.table("orders"))) <= set(dir(instrumented.table("orders")))
    finally:
        plain.close()
        instrumented.close()


CONNECT_ARGUMENTS: dict[str, dict[str, Any]] = {
    "read_only": {"read_only": True},
    "config_threads": {"config": {"threads": 1}},
    "config_and_read_only": {"read_only": True, "config": {"memory_limit": "512MB"}},
}


@pytest.mark.parametrize("arguments", list(CONNECT_ARGUMENTS))
def test_connect_takes_duckdbs_arguments(
    arguments: str, dirs: tuple[Path, Path], recorded: InMemoryMetrics
) -> None:
    """connect(path, read_only=..., config=...) opens the database as duckdb.connect does."""
    kwargs = CONNECT_ARGUMENTS[arguments]
    settings = "SELECT current_setting('threads'), current_setting('memory_limit')"
    found = []
    for connect, where in ((duckdb.connect, dirs[0]), (jobmeter.duckdb.connect, dirs[1])):
        with connect(str(where / DB_FILE), **kwargs) as con:
            read = con.execute(f"{settings}, (SELECT count(*) FROM orders)").fetchall()
            write = attempt(lambda: con.execute("INSERT INTO regions VALUES ('w', 'w')").fetchall())
            found.append((read, write))
    assert_same(found[0], found[1])


def test_memory_database_by_default(recorded: InMemoryMetrics) -> None:
    """connect() with no argument is an in-memory database, as duckdb.connect() is."""
    with duckdb.connect() as plain, jobmeter.duckdb.connect() as instrumented:
        query = "SELECT current_database(), 42"
        assert instrumented.execute(query).fetchall() == plain.execute(query).fetchall()


@pytest.mark.parametrize("connect", [duckdb.connect, jobmeter.duckdb.connect])
def test_dropped_connection_releases_the_file(
    connect: Callable[[str], duckdb.DuckDBPyConnection], tmp_path: Path
) -> None:
    """A connection dropped without close() lets the file be opened again, as plain DuckDB."""
    path = str(_prepare(tmp_path / "db") / DB_FILE)
    with in_memory():
        con = connect(path)
        con.execute("SELECT count(*) FROM orders").fetchall()
        del con
        gc.collect()
        with duckdb.connect(path, read_only=True) as other:  # another configuration
            assert other.execute("SELECT count(*) FROM orders").fetchall() == [(200,)]


WARNING_CALLS: dict[str, Callable[[Any], object]] = {  # Any: relations' Optional in the stubs
    "connection_to_arrow_table": lambda c: c.execute("SELECT 1").to_arrow_table(),
    "connection_to_arrow_reader": lambda c: c.execute("SELECT 1").to_arrow_reader().read_all(),
    "relation_fetch_arrow_table": lambda c: c.sql("SELECT 1").fetch_arrow_table(),
    "relation_fetch_record_batch": lambda c: c.sql("SELECT 1").fetch_record_batch().read_all(),
    "relation_fetch_arrow_reader": lambda c: c.sql("SELECT 1").fetch_arrow_reader().read_all(),
}


@pytest.mark.parametrize("call", list(WARNING_CALLS))
def test_warnings_point_at_the_callers_line(call: str, dirs: tuple[Path, Path]) -> None:
    """DuckDB's warnings name the program's own file and line, as on a plain connection."""
    plain, instrumented = _open(*dirs)
    found = []
    try:
        for con in (plain, instrumented):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                WARNING_CALLS[call](con)
            found.append([(w.category, str(w.message), w.filename, w.lineno) for w in caught])
    finally:
        plain.close()
        instrumented.close()
    assert found[0], "DuckDB warns about this call"
    assert found[0][0][2] == __file__
    assert found[1] == found[0]


# -- the user's own profiling -----------------------------------------------------------------

SETTINGS = (
    "SELECT current_setting('enable_profiling'), current_setting('profiling_output'), "
    "current_setting('tracked_metrics'), current_setting('profiling_coverage')"
)
PROFILED_QUERY = "SELECT region, sum(amount) FROM orders GROUP BY region ORDER BY region"


def _settings(con: duckdb.DuckDBPyConnection) -> tuple[object, ...]:
    row = con.execute(SETTINGS).fetchone()
    assert row is not None
    mode, output, tracked, coverage = row
    return mode, Path(output).name if output else output, tracked, coverage


def _profile_shape(text: str) -> dict[str, object]:
    """Each section of a JSON profile with its keys (the figures themselves vary)."""
    profile = json.loads(text)
    assert isinstance(profile, dict)
    shape: dict[str, object] = {}
    for section, value in profile.items():
        if isinstance(value, dict):
            shape[section] = sorted(value)
        elif isinstance(value, list):
            shape[section] = sorted({key for node in value for key in node})
        else:
            shape[section] = type(value).__name__
    return shape


ENABLE_WAYS: dict[str, list[str]] = {
    "pragma_then_output": ["PRAGMA enable_profiling = 'json'", "SET profiling_output = '{out}'"],
    "set_statements": ["SET enable_profiling = 'json'", "SET profiling_output = '{out}'"],
    "one_execute": ["SET enable_profiling = 'json'; SET profiling_output = '{out}'"],
    "with_coverage": [
        "PRAGMA enable_profiling = 'json'",
        "SET profiling_output = '{out}'",
        "SET profiling_coverage = 'ALL'",
    ],
}


@pytest.mark.parametrize("way", list(ENABLE_WAYS))
def test_user_json_profiling_to_file_is_kept(
    way: str, dirs: tuple[Path, Path], recorded: InMemoryMetrics
) -> None:
    """The user's JSON profile file has the sections and metrics a plain connection writes."""
    plain, instrumented = _open(*dirs)
    shapes, settings, results = [], [], []
    try:
        for con, where in ((plain, dirs[0]), (instrumented, dirs[1])):
            out = where / "prof.json"
            for statement in ENABLE_WAYS[way]:
                con.execute(statement.format(out=out))
            results.append(con.execute(PROFILED_QUERY).fetchall())
            text = out.read_text()
            assert "sql" in json.loads(text)["query"], text
            assert json.loads(text)["query"]["sql"] == PROFILED_QUERY
            shapes.append(_profile_shape(text))
            settings.append(_settings(con))
    finally:
        plain.close()
        instrumented.close()
    assert results[1] == results[0]
    assert shapes[1] == shapes[0]
    assert settings[1] == settings[0]
    assert recorded.count(DURATION, {"db.operation.name": "SELECT"}) >= 1


def test_user_enable_profiling_method_is_kept(
    dirs: tuple[Path, Path], recorded: InMemoryMetrics
) -> None:
    """con.enable_profiling() gives the user the profile a plain connection gives."""
    plain, instrumented = _open(*dirs)
    found: list[dict[str, object]] = []
    try:
        for con in (plain, instrumented):
            seen: dict[str, object] = {}
            con.enable_profiling()
            seen["settings when enabled"] = _settings(con)
            seen["result"] = con.execute(PROFILED_QUERY).fetchall()
            seen["profile"] = _profile_shape(con.get_profiling_information(format="json"))
            con.disable_profiling()
            seen["settings when disabled"] = _settings(con)
            found.append(seen)
    finally:
        plain.close()
        instrumented.close()
    expected, got = found
    for key, value in expected.items():
        assert got[key] == value, key
    assert recorded.count(DURATION, {"db.operation.name": "SELECT"}) >= 1


def test_instrument_keeps_profiling_the_user_enabled(
    dirs: tuple[Path, Path], recorded: InMemoryMetrics
) -> None:
    """instrument() of a connection profiling to a file changes none of its settings."""
    plain = duckdb.connect(str(dirs[0] / DB_FILE))
    user = duckdb.connect(str(dirs[1] / DB_FILE))
    try:
        for con, where in ((plain, dirs[0]), (user, dirs[1])):
            con.execute("PRAGMA enable_profiling = 'json'")
            con.execute(f"SET profiling_output = '{where / 'prof.json'}'")
        before = _settings(user)
        con = jobmeter.duckdb.instrument(user)
        assert _settings(con) == before == _settings(plain)
        assert con.execute(PROFILED_QUERY).fetchall() == plain.execute(PROFILED_QUERY).fetchall()
        written = [(where / "prof.json").read_text() for where in dirs]
        assert json.loads(written[1])["query"]["sql"] == PROFILED_QUERY
        assert _profile_shape(written[1]) == _profile_shape(written[0])
        assert _settings(con) == before
        assert recorded.count(DURATION, {"db.operation.name": "SELECT"}) >= 1
    finally:
        plain.close()
        user.close()


DISABLE_WAYS: dict[str, Callable[[duckdb.DuckDBPyConnection], object]] = {
    "pragma": lambda c: c.execute("PRAGMA disable_profiling"),
    "reset": lambda c: c.execute("RESET enable_profiling"),
    "method": lambda c: c.disable_profiling(),
}


@pytest.mark.parametrize("way", list(DISABLE_WAYS))
def test_user_disable_profiling_is_kept(
    way: str, dirs: tuple[Path, Path], recorded: InMemoryMetrics
) -> None:
    """After the user disables profiling it is off like on a plain connection; still counted."""
    plain, instrumented = _open(*dirs)
    try:
        found = []
        for con in (plain, instrumented):
            DISABLE_WAYS[way](con)
            found.append((_settings(con)[0], con.execute(PROFILED_QUERY).fetchall()))
        assert found[1] == found[0]
        assert found[0][0] is None
        selects = {"db.operation.name": "SELECT", "db.query.summary": "SELECT orders"}
        assert recorded.count(DURATION, selects) == 1
        instrumented.execute(PROFILED_QUERY).fetchall()
        assert recorded.count(DURATION, selects) == 2
    finally:
        plain.close()
        instrumented.close()
