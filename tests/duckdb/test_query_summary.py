"""``db.query.summary`` as the database semantic conventions define it, and never a literal.

The conventions' own examples first, then each statement kind jobmeter names
(docs/duckdb.md), then a cross-check against DuckDB's own parse tree
(``json_serialize_sql``: the tables and table functions of a SELECT, in the
order of the text), then property tests: whatever literals and names a query
holds, its summary is its operations and names, and no literal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics.export import HistogramDataPoint

import jobmeter.duckdb
from jobmeter.duckdb._shapes import MAX_SHAPES, OTHER_SHAPES
from jobmeter.duckdb._sql import fingerprint
from jobmeter.duckdb._summary import MAX_LENGTH
from jobmeter.testing import in_memory

TPCH = Path(__file__).resolve().parents[2] / "benchmarks" / "tpch"

# The examples of "Generating a summary of the query" (semantic conventions 1.44), verbatim.
CONVENTION_EXAMPLES = [
    ("SELECT *\nFROM wuser_table\nWHERE username = ?", "SELECT wuser_table"),
    ("INSERT INTO shipping_details\n (order_id,\n address)\nSELECT order_id,\n address\n"
     "FROM orders\nWHERE order_id = ?", "INSERT shipping_details SELECT orders"),
    ("SELECT *\nFROM songs,\n artists\nWHERE songs.artist_id == artists.id",
     "SELECT songs artists"),
    ("SELECT order_date\nFROM (SELECT *\n FROM orders o\n JOIN customers c\n"
     " ON o.customer_id = c.customer_id)", "SELECT SELECT orders customers"),
]  # fmt: skip

CASES = [
    # Literals and parameters never change a summary.
    ("SELECT * FROM orders WHERE id = 42 AND email = 'a@b.c'", "SELECT orders"),
    ("SELECT * FROM orders WHERE id = $1 AND day = $day", "SELECT orders"),
    # Names as written, quoted ones with their quotes, qualified ones whole.
    ('SELECT * FROM "song list", Artists, db.main.t', 'SELECT "song list" Artists db.main.t'),
    ("select * from orders", "SELECT orders"),
    # Joins of every kind, in the order of the text.
    ("SELECT * FROM a LEFT JOIN b USING (id) ASOF JOIN c ON a.t >= c.t, d NATURAL JOIN e",
     "SELECT a b c d e"),
    ("SELECT * FROM t1 POSITIONAL JOIN t2", "SELECT t1 t2"),
    # Subqueries: in FROM, in WHERE, scalar in the select list, EXISTS, set operations.
    ("SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN (1, 2))", "SELECT t SELECT u"),
    ("SELECT (SELECT max(x) FROM u) AS m FROM t", "SELECT SELECT u t"),
    ("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", "SELECT t SELECT u"),
    ("SELECT a FROM t UNION ALL SELECT a FROM u EXCEPT SELECT a FROM v",
     "SELECT t SELECT u SELECT v"),
    ("(SELECT 1) UNION (SELECT 2)", "SELECT SELECT"),
    # CTEs: their bodies' operations and tables; their names are not targets.
    ("WITH big AS (SELECT * FROM orders WHERE amount > 100) SELECT * FROM big, regions",
     "SELECT orders SELECT regions"),
    ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) "
     "SELECT sum(i) FROM n", "SELECT SELECT SELECT"),
    ("WITH x AS MATERIALIZED (SELECT * FROM s) INSERT INTO t SELECT * FROM x",
     "SELECT s INSERT t SELECT"),
    # DuckDB's FROM-first, TABLE and VALUES are SELECTs.
    ("FROM orders SELECT region", "SELECT orders"),
    ("FROM orders", "SELECT orders"),
    ("TABLE orders", "SELECT orders"),
    ("VALUES (1, 'a'), (2, 'b')", "SELECT"),
    # A table function is its name; a file read by its path has none.
    ("SELECT * FROM read_parquet('/data/2024/secret-customer.parquet') p",
     "SELECT read_parquet"),
    ("SELECT * FROM read_csv(['a.csv', 'b.csv'], header = true) JOIN t USING (id)",
     "SELECT read_csv t"),
    ("SELECT * FROM '/home/alice/export.csv'", "SELECT"),
    ("SELECT * FROM range(10) r, generate_series(1, 3)", "SELECT range generate_series"),
    # FROM inside a function reads no table.
    ("SELECT extract(year FROM day), substring(s FROM 2) FROM t", "SELECT t"),
    # Writes.
    ("INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT t"),
    ("INSERT OR REPLACE INTO t BY NAME SELECT * FROM s", "INSERT t SELECT s"),
    ("UPDATE t SET a = 'x', b = 2 FROM s WHERE t.id = s.id", "UPDATE t s"),
    ("DELETE FROM t USING s WHERE t.id = s.id", "DELETE t s"),
    ("DELETE FROM t WHERE id IN (SELECT id FROM gone)", "DELETE t SELECT gone"),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1, b = 2 "
     "WHEN NOT MATCHED THEN INSERT VALUES (1)", "MERGE t s"),
    # COPY: the table or the query; the file is a literal.
    ("COPY orders TO 'orders.parquet' (FORMAT parquet)", "COPY orders"),
    ("COPY (SELECT * FROM orders WHERE day > DATE '2024-01-01') TO 's3://b/k.parquet'",
     "COPY SELECT orders"),
    ("COPY orders FROM 'incoming/2024-11-05.csv' (HEADER)", "COPY orders"),
    ("COPY FROM DATABASE a TO b", "COPY a b"),
    # DDL names its object; CREATE TABLE ... AS and CREATE VIEW name their query too.
    ("CREATE OR REPLACE TABLE t2 AS SELECT * FROM read_parquet('data/*.parquet') WHERE x > 10",
     "CREATE TABLE t2 SELECT read_parquet"),
    ("CREATE TABLE t AS FROM s", "CREATE TABLE t SELECT s"),
    ("CREATE TEMP TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, r INTEGER REFERENCES u(id))",
     "CREATE TABLE t"),
    ("CREATE VIEW per_region AS SELECT region, count(*) FROM orders GROUP BY region",
     "CREATE VIEW per_region SELECT orders"),
    ("CREATE UNIQUE INDEX idx ON t (c)", "CREATE INDEX idx"),
    ("ALTER TABLE orders ADD COLUMN note VARCHAR", "ALTER TABLE orders"),
    ("DROP TABLE IF EXISTS a, b", "DROP TABLE a b"),
    ("CREATE SECRET s3secret (TYPE s3, KEY_ID 'AKIA123', SECRET 'hunter2')",
     "CREATE SECRET s3secret"),
    # Other statements: the operation and what it acts on.
    ("DESCRIBE orders", "DESCRIBE orders"),
    ("SUMMARIZE SELECT id FROM orders", "SUMMARIZE SELECT orders"),
    ("EXPLAIN ANALYZE SELECT * FROM orders", "EXPLAIN SELECT orders"),
    ("PIVOT orders ON region, kind USING sum(amount)", "PIVOT orders"),
    ("PRAGMA table_info('orders')", "PRAGMA table_info"),
    ("SET threads TO 4", "SET threads"),
    ("CALL pragma_version()", "CALL pragma_version"),
    ("ATTACH 'file.db' AS f (READ_ONLY)", "ATTACH f"),
    ("ATTACH '/secret/path.db'", "ATTACH"),
    ("USE f.main", "USE f.main"),
    ("INSTALL httpfs", "INSTALL httpfs"),
    ("PREPARE q AS SELECT * FROM t WHERE id = $1", "PREPARE q SELECT t"),
    ("start transaction", "BEGIN"),
    ("COMMIT", "COMMIT"),
    # Several statements: BATCH, with their summary when they share one.
    ("SELECT 1; SELECT 2", "BATCH SELECT"),
    ("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", "BATCH INSERT t"),
    ("SET threads = 4; SELECT * FROM t", "BATCH"),
    ("", ""),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "summary"), CONVENTION_EXAMPLES)
def test_the_conventions_examples(sql: str, summary: str) -> None:
    assert fingerprint(sql).summary == summary


@pytest.mark.parametrize(("sql", "summary"), CASES)
def test_summary(sql: str, summary: str) -> None:
    assert fingerprint(sql).summary == summary


def test_operations_match_db_operation_name() -> None:
    """The summary starts with db.operation.name (FROM-first, TABLE, START TRANSACTION ...)."""
    for sql, _ in CASES + CONVENTION_EXAMPLES:
        fp = fingerprint(sql)
        if fp.statements == 1 and not sql.startswith("WITH"):
            assert fp.summary.split(" ")[0] == fp.operation, sql


def test_long_summaries_end_on_a_whole_name() -> None:
    """At most 255 characters, cut before a name that does not fit, never inside one."""
    names = [f"table_number_{i:03d}_with_a_long_name" for i in range(20)]
    summary = fingerprint("SELECT * FROM " + ", ".join(names)).summary
    expected = "SELECT"
    for name in names:
        if len(expected) + 1 + len(name) > MAX_LENGTH:
            break
        expected += " " + name
    assert summary == expected
    assert len(summary) <= MAX_LENGTH < len(summary) + 1 + len(names[0])


# -- DuckDB's own parse: the tables of a SELECT, in the order of the text ----------------------


def _duckdb_parse(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, list[str]]:
    """SELECT nodes and the tables and table functions DuckDB's parser finds, in text order."""
    row = connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    assert row is not None
    tree = json.loads(row[0])
    assert not tree["error"], tree
    selects, ctes, found = 0, set(), []

    def walk(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for node in walk(tree):
        kind = node.get("type")
        selects += kind == "SELECT_NODE"
        for entry in (node.get("cte_map") or {}).get("map", []):
            ctes.add(entry["key"])
        if kind == "BASE_TABLE":
            name = ".".join(p for p in (node["catalog_name"], node["schema_name"],
                                        node["table_name"]) if p)  # fmt: skip
            found.append((node["query_location"], name))
        elif kind == "TABLE_FUNCTION":
            found.append((node["query_location"], node["function"]["function_name"]))
    tables = [name for _, name in sorted(found) if name not in ctes]
    return selects, tables


PARSED = [
    *[c[0] for c in CONVENTION_EXAMPLES if "?" not in c[0] and "==" not in c[0]],
    "SELECT * FROM a LEFT JOIN b USING (id) ASOF JOIN c ON a.t >= c.t, d NATURAL JOIN e",
    "SELECT (SELECT max(x) FROM u) AS m FROM t WHERE EXISTS (SELECT 1 FROM v)",
    "WITH big AS (SELECT * FROM orders) SELECT * FROM big, regions, read_parquet('x.parquet')",
    "SELECT * FROM ORders o JOIN db.main.Customers c ON o.id = c.id",
    "FROM orders SELECT region UNION ALL FROM archive",
]


@pytest.mark.parametrize(
    "sql", PARSED + [p.read_text() for p in sorted(TPCH.glob("*.sql"))],
    ids=[f"case{i}" for i in range(len(PARSED))] + [p.stem for p in sorted(TPCH.glob("*.sql"))],
)  # fmt: skip
def test_targets_are_the_tables_duckdb_parses(sql: str) -> None:
    """Each SELECT and each table of DuckDB's own tree, in the order of the text."""
    with duckdb.connect() as connection:
        selects, tables = _duckdb_parse(connection, sql)
    items = fingerprint(sql).summary.split(" ")
    assert items.count("SELECT") == selects
    assert [item for item in items if item != "SELECT"] == tables


# -- properties --------------------------------------------------------------------------------

with duckdb.connect() as _keywords:
    KEYWORDS = {r[0] for r in _keywords.execute("FROM duckdb_keywords()").fetchall()}

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n.lower() not in KEYWORDS and n.lower() != "c"  # c: the templates' CTE
)
# Printable: a control character in a name becomes a space (no newline in a label).
quoted_names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1,
                       max_size=20).filter(str.isprintable).map(
    lambda t: '"' + t.replace('"', '""') + '"')  # fmt: skip


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# (SQL text, the literal's own text): numbers of 3+ digits and strings of 3+ characters,
# prefixed so that they can be no keyword or name of ours.
literals = st.one_of(
    st.integers(min_value=100, max_value=10**15).map(lambda n: (str(n), str(n))),
    st.text(min_size=1, max_size=30).map(lambda t: (_string("zq" + t), "zq" + t)),
)
TEMPLATES = [
    ("SELECT a FROM {t} WHERE x = {a} AND y <> {b}", "SELECT {t}"),
    ("INSERT INTO {t} SELECT * FROM {u} WHERE y IN ({a}, {b})", "INSERT {t} SELECT {u}"),
    ("SELECT * FROM read_parquet({a}) JOIN {t} USING (id) WHERE z = {b}",
     "SELECT read_parquet {t}"),
    ("COPY (SELECT * FROM {t} WHERE d > {a}) TO {b} (FORMAT parquet)", "COPY SELECT {t}"),
    ("WITH c AS (SELECT * FROM {t} WHERE v = {a}) SELECT * FROM c, {u} LIMIT {b}",
     "SELECT {t} SELECT {u}"),
    ("UPDATE {t} SET a = {a} FROM {u} WHERE {u}.k = {b}", "UPDATE {t} {u}"),
    ("SELECT * FROM {a} WHERE k = {b}", "SELECT"),
    ("CREATE TABLE {t} AS SELECT {a} AS v FROM {u} WHERE w = {b}", "CREATE TABLE {t} SELECT {u}"),
]  # fmt: skip


@settings(max_examples=400)
@given(st.sampled_from(TEMPLATES), st.one_of(names, quoted_names), names, literals, literals)
def test_a_summary_is_operations_and_names_never_literals(
    template: tuple[str, str], t: str, u: str, a: tuple[str, str], b: tuple[str, str]
) -> None:
    sql, expected = template
    fp = fingerprint(sql.format(t=t, u=u, a=a[0], b=b[0]))
    assert fp.summary == expected.format(t=t, u=u)
    for _, raw in (a, b):
        assert raw not in fp.summary
        assert raw not in fp.shape


@settings(max_examples=200)
@given(literals)
def test_a_table_functions_path_never_reaches_the_summary(path: tuple[str, str]) -> None:
    """read_parquet('<path>'), read_csv([...]), FROM '<path>': the function's name at most."""
    sql_path, raw = path
    for sql, summary in (
        (f"SELECT * FROM read_parquet({sql_path})", "SELECT read_parquet"),
        (f"SELECT * FROM read_csv([{sql_path}, {sql_path}], header = true)", "SELECT read_csv"),
        (f"SELECT * FROM {sql_path}", "SELECT"),
        (f"COPY t TO {sql_path}", "COPY t"),
        (f"ATTACH {sql_path} AS db", "ATTACH db"),
    ):
        fp = fingerprint(sql)
        assert (fp.summary, raw in fp.shape) == (summary, False)


# -- on a real connection ----------------------------------------------------------------------


def test_executemany_is_a_batch_of_its_summary() -> None:
    """executemany(INSERT ...): BATCH INSERT t, as the conventions ask of batches."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect()
        con.execute("CREATE TABLE t (id INTEGER, note VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(50)])
        [point] = recorded.points("db.client.operation.duration", {"db.query.summary":
                                                                   "BATCH INSERT t"})  # fmt: skip
        assert isinstance(point, HistogramDataPoint)
        assert point.count == 1
        assert point.attributes is not None
        assert point.attributes["db.operation.name"] == "BATCH INSERT"
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(50,)]
        con.close()


def test_distinct_shapes_of_one_summary_are_one_series(tmp_path: Path) -> None:
    """WHERE id = ? and WHERE region = ? on orders: both `SELECT orders`, one series."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(tmp_path / "shop.duckdb"))
        con.execute(
            "CREATE TABLE orders AS SELECT range AS id, range % 4 AS region FROM range(100)"
        )
        for i in range(10):
            con.execute(f"SELECT * FROM orders WHERE id = {i}").fetchall()
            con.execute(f"SELECT * FROM orders WHERE region = {i % 4}").fetchall()
        points = recorded.points("db.client.operation.duration", {"db.query.summary":
                                                                  "SELECT orders"})  # fmt: skip
        assert [(p.count, p.attributes) for p in points if isinstance(p, HistogramDataPoint)] == [
            (20, {"db.system.name": "duckdb", "db.namespace": "shop", "db.operation.name": "SELECT",
                  "db.query.summary": "SELECT orders"})]  # fmt: skip
        con.close()


def test_the_cap_counts_summaries(caplog: pytest.LogCaptureFixture) -> None:
    """Past MAX_SHAPES distinct summaries (a table per day, say), the rest share (other)."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.DuckDBCollector("capped", table_metrics=False).connect()
        for day in range(MAX_SHAPES + 5):
            with pytest.raises(duckdb.CatalogException):
                con.execute(f"SELECT * FROM events_{day}")  # no such table: still recorded
        summaries = {
            p.attributes["db.query.summary"]
            for p in recorded.points("db.client.operation.duration")
            if p.attributes is not None
        }
        assert len(summaries) == MAX_SHAPES + 1
        assert OTHER_SHAPES in summaries
        assert "SELECT events_0" in summaries
        assert f"SELECT events_{MAX_SHAPES}" not in summaries
        [other] = recorded.points("db.client.operation.duration",
                                  {"db.query.summary": OTHER_SHAPES})  # fmt: skip
        assert isinstance(other, HistogramDataPoint)
        assert other.count == 5
        con.close()
    assert sum("query shapes" in r.getMessage() for r in caplog.records) == 1
