"""The SQL fingerprint: no literal survives, one query shape is one text, operations named."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobmeter.duckdb._sql import (
    MAX_SHAPE,
    Fingerprint,
    _cached,
    _fingerprint,
    fingerprint,
    shape_hash,
)
from jobmeter.duckdb._summary import MAX_LENGTH

TPCH = Path(__file__).resolve().parents[2] / "benchmarks" / "tpch"

TPCH_Q1 = """
-- TPC-H Q1, DELTA = 90
SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, count(*) AS count_order
FROM lineitem
WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY
GROUP BY l_returnflag, l_linestatus
ORDER BY l_returnflag, l_linestatus;
"""
TPCH_Q1_SUMMARY = (
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, "
    "sum(l_extendedprice * (? - l_discount) * (? + l_tax)) AS sum_charge, count(*) AS count_order "
    "FROM lineitem WHERE l_shipdate <= DATE ? - INTERVAL ? day "
    "GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"
)
TPCH_Q15 = """
WITH revenue AS (
    SELECT l_suppkey AS supplier_no, sum(l_extendedprice * (1 - l_discount)) AS total_revenue
    FROM lineitem
    WHERE l_shipdate >= DATE '1996-01-01' AND l_shipdate < DATE '1996-01-01' + INTERVAL 3 MONTH
    GROUP BY supplier_no
)
SELECT s_suppkey, s_name, total_revenue
FROM supplier, revenue
WHERE s_suppkey = supplier_no AND total_revenue = (SELECT max(total_revenue) FROM revenue)
ORDER BY s_suppkey
"""
TPCH_Q15_SUMMARY = (
    "WITH revenue AS (SELECT l_suppkey AS supplier_no, "
    "sum(l_extendedprice * (? - l_discount)) AS total_revenue FROM lineitem "
    "WHERE l_shipdate >= DATE ? AND l_shipdate < DATE ? + INTERVAL ? month GROUP BY supplier_no) "
    "SELECT s_suppkey, s_name, total_revenue FROM supplier, revenue WHERE s_suppkey = supplier_no "
    "AND total_revenue = (SELECT max(total_revenue) FROM revenue) ORDER BY s_suppkey"
)
TPCH_Q16_WINDOW = """
select p_brand, p_type, count(distinct ps_suppkey) as cnt,
       rank() over (partition by p_brand order by count(*) desc rows between unbounded preceding
                    and current row) as r,
       case when p_size in (49, 14, 23, 45, 19, 3, 36, 9) then 'listed' else 'other' end as listed
from partsupp join part on p_partkey = ps_partkey
where p_brand <> 'Brand#45' and p_type not like 'MEDIUM POLISHED%'
  and ps_suppkey not in (select s_suppkey from supplier
                         where s_comment like '%Customer%Complaints%')
group by all qualify r <= 10
"""
TPCH_Q16_SUMMARY = (
    "SELECT p_brand, p_type, count(DISTINCT ps_suppkey) AS cnt, rank() OVER (PARTITION BY p_brand "
    "ORDER BY count(*) DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS r, CASE WHEN "
    "p_size IN (?) THEN ? ELSE ? END AS listed FROM partsupp JOIN part ON p_partkey = ps_partkey "
    "WHERE p_brand <> ? AND p_type NOT LIKE ? AND ps_suppkey NOT IN (SELECT s_suppkey FROM "
    "supplier WHERE s_comment LIKE ?) GROUP BY ALL QUALIFY r <= ?"
)


CASES = [
    # Case, whitespace and literals never change the summary.
    (
        "select  G, COUNT(*) from T\n where i>5 and s = 'x'",
        "SELECT g, count(*) FROM t WHERE i > ? AND s = ?",
        "SELECT",
    ),
    (
        "SELECT g, count(*) FROM t WHERE i > 7 AND s = 'yy'",
        "SELECT g, count(*) FROM t WHERE i > ? AND s = ?",
        "SELECT",
    ),
    # Every literal form.
    (
        "SELECT 'it''s', E'a\\'b\\\\', $$x'y$$, $fn$ a $$ b $fn$, X'AB', b'101', 'multi\nline'",
        "SELECT ?, ?, ?, ?, ?, ?, ?",
        "SELECT",
    ),
    (
        'SELECT 42, 3.14, .5, 1e-3, 2.5E+10, 0x1F, 0b101, 1_000_000, t1.col_2, "x1", x2 FROM t1',
        'SELECT ?, ?, ?, ?, ?, ?, ?, ?, t1.col_2, "x1", x2 FROM t1',
        "SELECT",
    ),
    # A sign is part of the literal unless it follows a value.
    (
        "SELECT a - 1, a-1, -1, a * -2.5, b = +3, c=-4",
        "SELECT a - ?, a - ?, ?, a * ?, b = ?, c = ?",
        "SELECT",
    ),
    # Prepared parameters stay.
    (
        "SELECT * FROM t WHERE a = ? AND b = $1 AND c = $name AND d IN (?, ?, ?)",
        "SELECT * FROM t WHERE a = ? AND b = $1 AND c = $name AND d IN (?)",
        "SELECT",
    ),
    # Unterminated quotes and comments mask or drop everything to the end.
    ("SELECT 'abc FROM t WHERE x = 1", "SELECT ?", "SELECT"),
    ("SELECT $$abc FROM t", "SELECT ?", "SELECT"),
    ("SELECT $q$ x $$ y $q FROM t", "SELECT ?", "SELECT"),
    ("SELECT \"abc FROM t WHERE x = 'secret'", "SELECT ?", "SELECT"),
    ("SELECT E'abc\\", "SELECT ?", "SELECT"),
    ("SELECT 1 /* 'secret' alice", "SELECT ?", "SELECT"),
    # Comments go, nested ones included (DuckDB nests them), with what they hide.
    (
        "SELECT a -- WHERE name = 'alice'\nFROM t /* 'hunter2' /* nested */ bob */ WHERE b = 1",
        "SELECT a FROM t WHERE b = ?",
        "SELECT",
    ),
    ("SELECT 1 -- c\r, 2", "SELECT ?, ?", "SELECT"),
    # Lists of any length collapse; subqueries do not.
    (
        "select * from t where a in (1,2,3) and b in ('x', 'y') and c not in (1.5) "
        "and d in (-1, -2)",
        "SELECT * FROM t WHERE a IN (?) AND b IN (?) AND c NOT IN (?) AND d IN (?)",
        "SELECT",
    ),
    (
        "SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4), (5, 6))",
        "SELECT * FROM t WHERE (a, b) IN ((?))",
        "SELECT",
    ),
    (
        "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN (1, 2))",
        "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN (?))",
        "SELECT",
    ),
    (
        "SELECT [1, 2, 3], [[1, 2], [3]], {'a': 1, 'b': 2}, [{'k': 1}, {'k': 2}], m[1]",
        "SELECT [?], [[?]], {?: ?}, [{?: ?}], m[?]",
        "SELECT",
    ),
    # VALUES rows keep their width, identical rows fold.
    ("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');", "INSERT INTO t VALUES (?, ?)", "INSERT"),
    ("insert into t (a, b) values (?, ?)", "INSERT INTO t(a, b) VALUES (?, ?)", "INSERT"),
    ("INSERT INTO t VALUES (1, now()), (2, now())", "INSERT INTO t VALUES (?, now())", "INSERT"),
    ("VALUES (1, 2), (3, 4)", "VALUES (?, ?)", "SELECT"),
    # Operations: CTEs, FROM-first, parenthesized, every statement kind.
    (
        "with x as (select (1 + 2) as a from (select 1) s), y(c) as (select 2) select * from x, y",
        "WITH x AS (SELECT (? + ?) AS a FROM (SELECT ?) s), y(c) AS (SELECT ?) SELECT * FROM x, y",
        "SELECT",
    ),
    (
        "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
        "WITH x AS (SELECT ?) INSERT INTO t SELECT * FROM x",
        "INSERT",
    ),
    (
        "WITH d AS (SELECT 1) DELETE FROM t WHERE id IN (FROM d)",
        "WITH d AS (SELECT ?) DELETE FROM t WHERE id IN (FROM d)",
        "DELETE",
    ),
    (
        "WITH x AS MATERIALIZED (SELECT 1) FROM x",
        "WITH x AS MATERIALIZED (SELECT ?) FROM x",
        "SELECT",
    ),
    (
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) "
        "SELECT sum(n) FROM t",
        "WITH RECURSIVE t(n) AS (SELECT ? UNION ALL SELECT n + ? FROM t WHERE n < ?) "
        "SELECT sum(n) FROM t",
        "SELECT",
    ),
    ("(WITH x AS (SELECT 1) SELECT * FROM x)", "(WITH x AS (SELECT ?) SELECT * FROM x)", "SELECT"),
    ("FROM t SELECT a", "FROM t SELECT a", "SELECT"),
    ("from t", "FROM t", "SELECT"),
    ("TABLE t", "TABLE t", "SELECT"),
    ("(SELECT 1) UNION ALL (SELECT 2)", "(SELECT ?) UNION ALL (SELECT ?)", "SELECT"),
    (
        "COPY (SELECT * FROM t WHERE d > DATE '2024-01-01') TO 'out/file.parquet' (FORMAT parquet)",
        "COPY (SELECT * FROM t WHERE d > DATE ?) TO ? (FORMAT parquet)",
        "COPY",
    ),
    (
        "CREATE OR REPLACE TABLE t2 AS SELECT * FROM read_parquet('data/*.parquet') WHERE x > 10",
        "CREATE OR REPLACE TABLE t2 AS SELECT * FROM read_parquet(?) WHERE x > ?",
        "CREATE",
    ),
    ("UPDATE t SET a = 'x' WHERE id = 7", "UPDATE t SET a = ? WHERE id = ?", "UPDATE"),
    ("DELETE FROM t WHERE id = 7", "DELETE FROM t WHERE id = ?", "DELETE"),
    ("DROP TABLE IF EXISTS t", "DROP TABLE IF EXISTS t", "DROP"),
    ("ATTACH 'file.db' AS f (READ_ONLY)", "ATTACH ? AS f(read_only)", "ATTACH"),
    ("PRAGMA enable_profiling='json'", "PRAGMA enable_profiling = ?", "PRAGMA"),
    ("SET threads TO 4", "SET threads TO ?", "SET"),
    ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE SELECT ?", "EXPLAIN"),
    ("describe t", "DESCRIBE t", "DESCRIBE"),
    ("SUMMARIZE t", "SUMMARIZE t", "SUMMARIZE"),
    ("INSTALL httpfs", "INSTALL httpfs", "INSTALL"),
    ("start transaction", "START TRANSACTION", "BEGIN"),
    ("BEGIN", "BEGIN", "BEGIN"),
    ("commit;", "COMMIT", "COMMIT"),
    ("ABORT", "ABORT", "ROLLBACK"),
    ("CHECKPOINT", "CHECKPOINT", "CHECKPOINT"),
    ("frobnicate the thing", "frobnicate the thing", "FROBNICATE"),
    ("averyveryverylongwordbeyondtwenty x", "averyveryverylongwordbeyondtwenty x", "UNKNOWN"),
    ("123 abc", "? abc", "UNKNOWN"),
    ('"quoted" x', '"quoted" x', "UNKNOWN"),
    ("", "", "UNKNOWN"),
    ("  -- only a comment 'x'\n /* 42 */ ;; ", "", "UNKNOWN"),
    # Names, operators, casts, typed literals, unicode.
    (
        'SELECT t.*, s."Mixed Case", "a""b" FROM db.main.t AS t',
        'SELECT t.*, s."Mixed Case", "a""b" FROM db.main.t AS t',
        "SELECT",
    ),
    (
        "SELECT a||b, j->>'$.x', a<>b, a!=b, a>=1, x::INTEGER, CAST(y AS date), "
        "list_transform(l, x -> x + 1)",
        "SELECT a || b, j ->> ?, a <> b, a != b, a >= ?, x::integer, CAST(y AS DATE), "
        "list_transform(l, x -> x + ?)",
        "SELECT",
    ),
    (
        "SELECT DATE '1998-12-01' - INTERVAL '3' DAY, TIMESTAMP '2024-01-01 00:00:00', "
        "INTERVAL 90 DAY",
        "SELECT DATE ? - INTERVAL ? day, TIMESTAMP ?, INTERVAL ? day",
        "SELECT",
    ),
    ("SELECT 'héllo', naïve, \"Ünï\" FROM tablé", 'SELECT ?, naïve, "Ünï" FROM tablé', "SELECT"),
    ("SELECT\x001\x00FROM t", "SELECT ? FROM t", "SELECT"),
    ('SELECT "a\nb" FROM t', 'SELECT "a b" FROM t', "SELECT"),
    # Several statements: BATCH, with the common operation when there is one.
    ("SET threads = 4; SELECT 1; ", "SET threads = ?; SELECT ?", "BATCH"),
    ("SELECT 1; select ';' ;; SELECT 3", "SELECT ?; SELECT ?; SELECT ?", "BATCH SELECT"),
    # TPC-H: CTEs, window functions, CASE, typed literals, IN lists; kept whole.
    (TPCH_Q1, TPCH_Q1_SUMMARY, "SELECT"),
    (TPCH_Q15, TPCH_Q15_SUMMARY, "SELECT"),
    (TPCH_Q16_WINDOW, TPCH_Q16_SUMMARY, "SELECT"),
]


@pytest.mark.parametrize(("sql", "shape", "operation"), CASES)
def test_shape_and_operation(sql: str, shape: str, operation: str) -> None:
    fp = fingerprint(sql)
    assert (fp.shape, fp.operation) == (shape, operation)
    assert fp.shape_hash == shape_hash(shape)


def test_fingerprint_is_a_frozen_record() -> None:
    fp = fingerprint("SELECT 1")
    assert fp == Fingerprint("SELECT", "SELECT", 1, False, "SELECT ?", shape_hash("SELECT ?"))
    with pytest.raises(AttributeError):
        fp.summary = "x"  # type: ignore[misc]


def test_shape_hash_is_12_hex_digits_of_blake2b() -> None:
    """The documented hash, computed independently: blake2b with a 6-byte digest."""
    import hashlib

    digest = hashlib.blake2b(b"SELECT * FROM t WHERE a = ?", digest_size=6).hexdigest()
    assert fingerprint("select * from T where a = 'x'").shape_hash == digest
    assert re.fullmatch(r"[0-9a-f]{12}", digest)


def test_long_shapes_are_bounded_and_stay_distinct() -> None:
    """A shape past MAX_SHAPE is cut (ending in …); its hash, of the whole, tells it apart."""
    columns = ", ".join(f"column_{i}" for i in range(400))
    first = fingerprint(f"SELECT {columns} FROM t WHERE a = 'secret'")
    second = fingerprint(f"SELECT {columns} FROM u")
    assert len(first.shape) == len(second.shape) == MAX_SHAPE + 1
    assert first.shape == second.shape == f"SELECT {columns}"[:MAX_SHAPE] + "…"
    assert first.shape_hash == shape_hash(f"SELECT {columns} FROM t WHERE a = ?")
    assert first.shape_hash != second.shape_hash
    assert (first.summary, second.summary) == ("SELECT t", "SELECT u")
    whole = "SELECT " + "a, " * 100 + "b"
    assert fingerprint(whole).shape == whole  # not cut


def test_one_shape_is_one_summary() -> None:
    rng = random.Random(7)
    words = ["alice", "O'Brien", "ünïcode ✓", "x\ny", "", "' OR 1=1 --", "$$", "/* */"]

    def literal() -> str:
        if rng.random() < 0.5:
            return (
                str(rng.randint(-(10**12), 10**12))
                if rng.random() < 0.5
                else f"{rng.uniform(-1e6, 1e6)!r}"
            )
        return "'" + rng.choice(words).replace("'", "''") + str(rng.randint(0, 10**6)) + "'"

    summaries = set()
    for _ in range(1000):
        items = ", ".join(literal() for _ in range(rng.randint(1, 40)))
        rows = ", ".join(f"({literal()}, {literal()})" for _ in range(rng.randint(1, 5)))
        space = rng.choice([" ", "  ", "\n", "\t ", " /* c */ ", " -- c\n"])
        select = rng.choice(["SELECT", "select", "Select"])
        sql = (
            f"{select} g,{space}count(*) FROM t WHERE i > {literal()} AND s ={space}{literal()}"
            f" AND k IN ({items}) AND p IN (SELECT * FROM (VALUES {rows}) v)"
            f" GROUP BY g LIMIT {literal()}"
        )
        fp = fingerprint(sql)
        summaries.add((fp.shape, fp.shape_hash, fp.summary))
    shape = (
        "SELECT g, count(*) FROM t WHERE i > ? AND s = ? AND k IN (?) "
        "AND p IN (SELECT * FROM (VALUES (?, ?)) v) GROUP BY g LIMIT ?"
    )
    assert summaries == {(shape, shape_hash(shape), "SELECT t SELECT")}


# Hypothesis: literals rendered as SQL, inserted into templates.
Literal = tuple[str, str, bool]


def _string(text: str, style: int) -> str:
    if style == 1 and "$" not in text:
        return f"$q${text}$q$"
    if style == 2:
        return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + text.replace("'", "''") + "'"


# (SQL text, the literal's own text, whether finding that text in a summary means a
# leak: strings of 3+ characters, numbers of 3+ digits; shorter ones match keywords).
literals = st.one_of(
    st.integers().map(lambda n: (str(n), str(abs(n)), len(str(abs(n))) >= 3)),
    st.floats(allow_nan=False, allow_infinity=False).map(
        lambda f: (repr(f), repr(abs(f)), sum(c.isdigit() for c in repr(f)) >= 3)
    ),
    st.tuples(st.text(), st.integers(0, 2)).map(lambda t: (_string(*t), t[0], len(t[0]) >= 3)),
)
TEMPLATES: list[Callable[[str, str], str]] = [
    lambda a, b: f"SELECT a, b FROM t WHERE x = {a} AND y <> {b}",
    lambda a, b: f"SELECT * FROM t WHERE x IN ({a}, {b}, {a}) OR y = {b}",
    lambda a, b: f"INSERT INTO t VALUES ({a}, {b}), ({b}, {a})",
    lambda a, b: f"UPDATE t SET a = {a} WHERE b = {b}; SELECT [{a}, {b}], {{'k': {a}}}",
    lambda a, b: f"WITH c AS (SELECT {a} AS v) SELECT v * {b} FROM c ORDER BY {a}",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEMPLATES), literals, literals)
def test_literals_never_reach_the_summary_or_the_shape(
    template: Callable[[str, str], str], a: Literal, b: Literal
) -> None:
    reference = fingerprint(template("1", "'x'"))
    fp = fingerprint(template(a[0], b[0]))
    assert (fp.shape, fp.summary, fp.shape_hash) == (
        reference.shape, reference.summary, reference.shape_hash)  # fmt: skip
    for _, raw, revealing in (a, b):
        if revealing and raw not in reference.shape:  # "SEL" would be found in SELECT
            assert raw not in fp.shape
            assert raw not in fp.summary


@settings(max_examples=100)
@given(st.lists(literals, min_size=1, max_size=30))
def test_lists_of_any_length_collapse(items: list[Literal]) -> None:
    listed = ", ".join(sql for sql, _, _ in items)
    fp = fingerprint(f"SELECT * FROM t WHERE k IN ({listed}) AND a = [{listed}]")
    assert fp.shape == "SELECT * FROM t WHERE k IN (?) AND a = [?]"
    assert fp.summary == "SELECT t"


SQLISH = st.text(alphabet="'\"$-/*;()[]{},.:?\\ \n\tabeEqxSELCT0129_é\x00\u2028", max_size=60)


@settings(max_examples=500)
@given(st.one_of(st.text(), SQLISH))
def test_never_raises_and_stays_one_short_line(sql: str) -> None:
    for fp in (_fingerprint(sql), fingerprint(sql)):  # the bare one: the safety net hides nothing
        assert fp.summary.isprintable()  # no newline, no control character
        assert fp.shape.isprintable()
        assert len(fp.summary) <= MAX_LENGTH
        assert len(fp.shape) <= MAX_SHAPE + 1
        assert fp.statements >= 0
        operation = fp.operation.removeprefix("BATCH").strip()
        assert operation == "" or (operation.isalpha() and operation.isupper())


TOKENS = [
    "SELECT", "select", "a", "t1", "42", "1.5e3", "(", ")", ",", "-", "=", "<", ">", "::", ".",
    "[", "]", "?", "$1", "IN", "from", "Where", "*", "||", "$$x$$", "'lit'", '"Q x"',
]  # fmt: skip
SEPARATORS = [" ", "  ", "\n", "\t", "\r\n", " /* c 'x' */ ", " -- c 'x'\n", "/**/ "]


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SEPARATORS)), max_size=30))
def test_whitespace_and_comments_never_change_the_summary(pairs: list[tuple[str, str]]) -> None:
    plain = " ".join(token for token, _ in pairs)
    spaced = "".join(token + separator for token, separator in pairs)
    assert fingerprint(spaced) == fingerprint(plain)


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA enable_profiling='json'",
        "pragma disable_profiling",
        "PRAGMA enable_profile",
        "PRAGMA disable_profile",
        "SET profiling_output = 'x.json'",
        "PRAGMA profile_output='x'",
        "RESET tracked_metrics",
        "SET GLOBAL enable_profiling = 'json'",
        "set session profiling_mode = 'detailed'",
        "SET LOCAL profiling_coverage='ALL'",
        'SET custom_profiling_settings = \'{"CPU_TIME": "true"}\'',
        "set enable_profiling to 'json'",
        "Reset Global Enable_Profiling",
        "SELECT 1; PRAGMA enable_profiling",
    ],
)
def test_touches_profiling(sql: str) -> None:
    assert fingerprint(sql).touches_profiling


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_progress_bar = true",
        "SET threads = 4",
        "SELECT 'enable_profiling'",
        "SELECT * FROM duckdb_settings() WHERE name = 'enable_profiling'",
        "SELECT enable_profiling FROM t",
        "SET enable_profiling_extra = 1",
        "-- SET enable_profiling = 'json'\nSELECT 1",
        "CREATE TABLE profiling_output(a INT)",
        "SELECT 'x; SET enable_profiling'",
    ],
)
def test_does_not_touch_profiling(sql: str) -> None:
    assert not fingerprint(sql).touches_profiling


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("", 0),
        (" ;; -- ; c", 0),
        ("/* ; */", 0),
        ("SELECT 1", 1),
        ("SELECT 1;", 1),
        (";;SELECT 1;;", 1),
        ("SELECT ';'; SELECT 2", 2),
        ("SELECT 1; /* ; */ SELECT 2 -- ;", 2),
        ("SELECT $$;$$", 1),
        ('SELECT ";"', 1),
        ("SELECT 1; SELECT 2; INSERT INTO t VALUES (1)", 3),
    ],
)
def test_statement_count(sql: str, count: int) -> None:
    assert fingerprint(sql).statements == count


@pytest.mark.parametrize("value", [b"SELECT 1", None, 42, ["SELECT 1"]])
def test_non_str_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        fingerprint(value)  # type: ignore[arg-type]


def test_repeated_text_is_a_cache_hit() -> None:
    sql = "SELECT 'cached' FROM t WHERE x = 123456"
    assert fingerprint(sql) is fingerprint(sql)
    assert _cached.cache_info().maxsize == 4096


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "sql",
    [
        "'" * 100_000,
        '"' * 100_001,
        "$a$" * 30_000,
        "(" * 100_000,
        "/*" * 50_000,
        "E'" + "\\" * 100_000,
        "[" * 5000 + "1" + "]" * 5000,
        "SELECT [" + ", ".join(["1"] * 20_000) + "]",
        "INSERT INTO t VALUES " + ", ".join(["(1, 'a', now())"] * 5000),
        "SELECT 1;" * 10_000,
    ],
)
def test_pathological_text_stays_linear(sql: str) -> None:
    fp = fingerprint(sql)  # about 0.1 s here; catastrophic backtracking would hit the timeout
    assert len(fp.summary) <= MAX_LENGTH
    assert len(fp.shape) <= MAX_SHAPE + 1


def test_tpch_queries_keep_no_literal() -> None:
    paths = sorted(TPCH.glob("*.sql"))
    assert len(paths) == 22
    for path in paths:
        sql = path.read_text()
        fp = fingerprint(sql)
        assert (fp.operation, fp.statements) == ("SELECT", 1), path.name
        assert not re.search(r"'|(?<![\w.])\d", fp.shape), path.name
        assert re.fullmatch(r"SELECT( [a-z_]+| SELECT)*", fp.summary), (path.name, fp.summary)
