"""TableMetrics: table and data-quality metrics of real DuckDB databases, read at collection.

Every test uses real DuckDB files in tmp_path (or a real in-memory database)
and the real SDK with an in-memory reader. Values are asserted exactly where
DuckDB gives exact numbers (row counts from a fresh table, null ratios,
min/max, value counts of small tables).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.sdk.metrics.export import NumberDataPoint

from jobmeter.duckdb import _tables
from jobmeter.duckdb._tables import TableMetrics
from jobmeter.testing import InMemoryMetrics, in_memory

ROWS = "jobmeter.duckdb.table.rows"
SIZE = "jobmeter.duckdb.table.size"
COLUMNS = "jobmeter.duckdb.table.columns"
NULL_RATIO = "jobmeter.duckdb.column.null.ratio"
DISTINCT = "jobmeter.duckdb.column.distinct"
MIN = "jobmeter.duckdb.column.min"
MAX = "jobmeter.duckdb.column.max"
VALUES = "jobmeter.duckdb.column.values"
ALL = (ROWS, SIZE, COLUMNS, NULL_RATIO, DISTINCT, MIN, MAX, VALUES)
SHARED_S = 0.25  # longer than _tables._SHARED_S: the next collection refreshes


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def table_metrics(recorded: InMemoryMetrics, **options: Any) -> TableMetrics:
    meter = recorded.telemetry.meter_provider.get_meter("test")
    options.setdefault("attributes", {"service.role": "etl"})
    return TableMetrics(meter, **options)


def collect(recorded: InMemoryMetrics) -> dict[str, dict[tuple[Any, ...], float]]:
    """One collection: per metric, value by (table, column, value) attributes."""
    found: dict[str, dict[tuple[Any, ...], float]] = {}
    for _, metric in recorded.metrics():
        if metric.name in ALL:
            for point in metric.data.data_points:
                a = dict(point.attributes or {})
                key = tuple(a[k] for k in ("db.collection.name", "jobmeter.duckdb.column",
                                           "jobmeter.duckdb.value") if k in a)  # fmt: skip
                assert isinstance(point, NumberDataPoint)
                assert key not in found.setdefault(metric.name, {}), f"{metric.name} {key} twice"
                found[metric.name][key] = point.value
    return found


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def opens_read_write(path: Path) -> subprocess.CompletedProcess[str]:
    """Open ``path`` read-write from another process: fails while any connection holds it."""
    code = "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('CREATE TABLE z (i INT)')"
    return subprocess.run([sys.executable, "-c", code, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_rows_columns_and_size_of_each_table(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    """Tables of the connection's database only: no temp, no other attached database."""
    tables = table_metrics(recorded)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("CREATE TABLE orders AS SELECT range AS id, range % 7 AS k, 'x' AS s "
                "FROM range(1234)")  # fmt: skip
    con.execute("CREATE TABLE empty (a INT, b INT)")
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.events AS SELECT range AS id FROM range(50)")
    con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS one")
    con.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
    con.execute("CREATE TABLE other.elsewhere AS SELECT 1 AS one")
    tables.watch(con, "wh")

    found = collect(recorded)

    assert found[ROWS] == {("orders",): 1234, ("empty",): 0, ("staging.events",): 50}
    assert found[COLUMNS] == {("orders",): 3, ("empty",): 2, ("staging.events",): 1}
    assert found[SIZE][("empty",)] == 0
    assert found[SIZE][("orders",)] > found[SIZE][("staging.events",)] > 0
    (point,) = recorded.points(ROWS, {"db.collection.name": "staging.events"})
    assert dict(point.attributes or {}) == {
        "service.role": "etl",
        "db.system.name": "duckdb",
        "db.namespace": "wh",
        "db.collection.name": "staging.events",
    }
    assert {NULL_RATIO, DISTINCT, VALUES}.isdisjoint(found), "profiles are opt-in"


def test_persistent_size_follows_the_file(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    """10x the rows is clearly bigger, and the figure is within 2x of what the file grew."""
    tables = table_metrics(recorded)
    path = tmp_path / "size.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE small AS SELECT random() AS r, range AS i FROM range(100000)")
    con.execute("CHECKPOINT")
    before = path.stat().st_size
    con.execute("CREATE TABLE big AS SELECT random() AS r, range AS i FROM range(1000000)")
    con.execute("CHECKPOINT")
    growth = path.stat().st_size - before
    tables.watch(con, "size")

    size = collect(recorded)[SIZE]

    assert size[("big",)] > 5 * size[("small",)]
    assert growth / 2 <= size[("big",)] <= growth * 2


def test_in_memory_size_follows_duckdb_memory(recorded: InMemoryMetrics) -> None:
    """Tables never checkpointed: within 2x of what DuckDB accounts to in-memory tables."""
    tables = table_metrics(recorded)
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT md5(range::VARCHAR) AS s, range::INT AS i, "
                "range % 3 = 0 AS b FROM range(300000)")  # fmt: skip
    used = con.execute("SELECT memory_usage_bytes FROM duckdb_memory() "
                       "WHERE tag = 'IN_MEMORY_TABLE'").fetchall()[0][0]  # fmt: skip
    con.execute("CREATE TABLE tenth AS SELECT * FROM t LIMIT 30000")
    tables.watch(con, "memory")

    size = collect(recorded)[SIZE]

    assert used / 2 <= size[("t",)] <= used * 2
    assert size[("t",)] > 5 * size[("tenth",)]


def test_figures_are_cached_for_ttl(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    """Within ttl_s the SQL is not run again: new rows show only after it."""
    tables = table_metrics(recorded, ttl_s=60)
    con = duckdb.connect(str(tmp_path / "ttl.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)")
    tables.watch(con, "ttl")
    assert collect(recorded)[ROWS] == {("t",): 10}
    con.execute("INSERT INTO t SELECT range FROM range(5)")
    con.execute("CREATE TABLE u (i INT)")
    time.sleep(SHARED_S)
    assert collect(recorded)[ROWS] == {("t",): 10}


def test_ttl_zero_reads_at_every_collection(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    tables = table_metrics(recorded, ttl_s=0)
    con = duckdb.connect(str(tmp_path / "ttl0.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(10)")
    tables.watch(con, "ttl0")
    assert collect(recorded)[ROWS] == {("t",): 10}
    con.execute("INSERT INTO t SELECT range FROM range(5)")
    con.execute("CREATE TABLE u (i INT)")
    time.sleep(SHARED_S)
    assert collect(recorded)[ROWS] == {("t",): 15, ("u",): 0}


def test_a_slow_profile_is_interrupted_once_and_keeps_last_values(
    recorded: InMemoryMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """timeout_s interrupts the refresh; one warning; the last good profile stays."""
    tables = table_metrics(recorded, ttl_s=0, timeout_s=30, profile_tables=["big"])
    con = duckdb.connect(str(tmp_path / "slow.duckdb"))
    con.execute("CREATE TABLE big AS SELECT range AS i FROM range(3)")
    tables.watch(con, "slow")
    assert collect(recorded)[DISTINCT] == {("big", "i"): 3}
    # The first profile had all the time it needed; from now on, 1 ms (20M rows can take
    # under 50 ms on a fast machine: the budget must be far below any profile's time).
    tables._timeout_s = 0.001
    con.execute("INSERT INTO big SELECT range FROM range(20000000)")
    caplog.set_level(logging.WARNING, logger="jobmeter")

    for _ in range(3):
        time.sleep(SHARED_S)
        found = collect(recorded)  # returns: the refresh was interrupted
        assert found[DISTINCT] == {("big", "i"): 3}
        assert found[MAX] == {("big", "i"): 2}

    (warning,) = warnings(caplog)
    assert "'slow'" in warning
    assert "took longer than table_timeout_s=0.001 and were interrupted" in warning
    assert "profile_tables" in warning


def test_a_failing_refresh_warns_once_and_keeps_last_values(
    recorded: InMemoryMetrics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Figures read before the failure are new; the failed profile keeps its last values."""
    tables = table_metrics(recorded, ttl_s=0, profile_tables=["t"])
    con = duckdb.connect(str(tmp_path / "fail.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(4)")
    tables.watch(con, "fail")
    assert collect(recorded)[DISTINCT] == {("t", "i"): 4}
    monkeypatch.setattr(_tables, "_COLUMNS_SQL", "SELECT no_such_column")
    con.execute("INSERT INTO t VALUES (100)")
    caplog.set_level(logging.WARNING, logger="jobmeter")

    for _ in range(2):
        time.sleep(SHARED_S)
        found = collect(recorded)
        assert found[ROWS] == {("t",): 5}
        assert found[DISTINCT] == {("t", "i"): 4}

    (warning,) = warnings(caplog)
    assert warning.startswith("jobmeter: DuckDB table metrics of database 'fail' failed (")


def test_profile_numbers_are_exact(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    """Null ratio, distinct, min/max (dates and timestamps as Unix seconds), value counts."""
    tables = table_metrics(recorded, profile_tables=["Readings"], max_values=5)
    con = duckdb.connect(str(tmp_path / "q.duckdb"))
    con.execute("""CREATE TABLE readings AS SELECT * FROM (VALUES
        (1,    2.5::DECIMAL(6,2), 'eu', DATE '2024-01-01', TIMESTAMP '2024-01-01 00:00:10', 'a'),
        (2,    NULL,              'eu', DATE '2024-01-03', NULL,                           'b'),
        (NULL, -1.25,             'us', NULL,              TIMESTAMP '1970-01-01 00:01:00', 'c'),
        (4,    7.0,               NULL, DATE '2024-01-02', TIMESTAMP '2024-01-01 00:00:00', 'd')
    ) v(n, price, region, day, seen_at, code)""")  # fmt: skip
    con.execute("CREATE TABLE other AS SELECT 1 AS x")
    tables.watch(con, "q")

    found = collect(recorded)

    columns = ("n", "price", "region", "day", "seen_at", "code")
    assert found[NULL_RATIO] == {("readings", c): 0.0 if c == "code" else 0.25 for c in columns}
    assert found[DISTINCT] == {("readings", "n"): 3, ("readings", "price"): 3,
                               ("readings", "region"): 2, ("readings", "day"): 3,
                               ("readings", "seen_at"): 3, ("readings", "code"): 4}  # fmt: skip
    assert found[MIN] == {("readings", "n"): 1, ("readings", "price"): -1.25,
                          ("readings", "day"): 1704067200, ("readings", "seen_at"): 60}  # fmt: skip
    assert found[MAX] == {("readings", "n"): 4, ("readings", "price"): 7,
                          ("readings", "day"): 1704240000,
                          ("readings", "seen_at"): 1704067210}  # fmt: skip
    assert {k: v for k, v in found[VALUES].items() if k[1] == "region"} == {
        ("readings", "region", "eu"): 2,
        ("readings", "region", "us"): 1,
        ("readings", "region", "null"): 1,
    }
    assert found[VALUES][("readings", "day", "2024-01-03")] == 1
    (point,) = recorded.points(VALUES, {"jobmeter.duckdb.value": "us"})
    assert dict(point.attributes or {}) == {
        "service.role": "etl",
        "db.system.name": "duckdb",
        "db.namespace": "q",
        "db.collection.name": "readings",
        "jobmeter.duckdb.column": "region",
        "jobmeter.duckdb.column.type": "VARCHAR",
        "jobmeter.duckdb.value": "us",
    }
    assert all(key[0] == "readings" for key in found[DISTINCT]), "only profile_tables"


def test_high_cardinality_columns_have_no_value_points(
    recorded: InMemoryMetrics, tmp_path: Path
) -> None:
    """Above max_values distinct values, no per-value series; long values are cut at 64."""
    tables = table_metrics(recorded, profile_tables=["t"], max_values=3)
    con = duckdb.connect(str(tmp_path / "card.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS id, repeat('v', 60 + range % 2 * 40) AS long "
                "FROM range(10)")  # fmt: skip
    tables.watch(con, "card")

    found = collect(recorded)

    assert found[DISTINCT] == {("t", "id"): 10, ("t", "long"): 2}
    assert found[VALUES] == {("t", "long", "v" * 60): 5, ("t", "long", "v" * 64): 5}


def test_quoted_names(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    """Spaces and double quotes in schema, table and column names are quoted, not broken."""
    odd_table, odd_column = 'my "odd" table', 'a "col" x'
    tables = table_metrics(recorded, profile_tables=['s p"c.' + odd_table])
    con = duckdb.connect(str(tmp_path / "quote.duckdb"))
    con.execute('CREATE SCHEMA "s p""c"')
    con.execute('CREATE TABLE "s p""c"."my ""odd"" table" ("a ""col"" x" INT, "b" INT)')
    con.execute('INSERT INTO "s p""c"."my ""odd"" table" VALUES (1, 1), (NULL, 2), (3, 3), (3, 4)')
    tables.watch(con, "quote")
    name = 's p"c.' + odd_table

    found = collect(recorded)

    assert found[ROWS] == {(name,): 4}
    assert found[SIZE][(name,)] > 0
    assert found[NULL_RATIO][(name, odd_column)] == 0.25
    assert found[MAX][(name, odd_column)] == 3
    assert found[VALUES][(name, odd_column, "3")] == 2


def test_unknown_profile_table_warns_once_with_the_tables(
    recorded: InMemoryMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tables = table_metrics(recorded, ttl_s=0, profile_tables=["nope", "t03"])
    con = duckdb.connect(str(tmp_path / "unknown.duckdb"))
    for i in range(12):
        con.execute(f"CREATE TABLE t{i:02d} (i INT)")
    tables.watch(con, "unknown")
    caplog.set_level(logging.WARNING, logger="jobmeter")

    collect(recorded)
    time.sleep(SHARED_S)
    found = collect(recorded)

    assert warnings(caplog) == [
        "jobmeter: profile table 'nope' is not in DuckDB database 'unknown'; its tables: "
        "t00, t01, t02, t03, t04, t05, t06, t07, t08, t09 and 2 more"
    ]
    assert found[DISTINCT] == {("t03", "i"): 0}
    assert len(found[ROWS]) == 12


def test_a_database_is_reported_once_across_its_connections(
    recorded: InMemoryMetrics, tmp_path: Path
) -> None:
    """A connection and its cursor share one instance: one series; either keeps it alive."""
    tables = table_metrics(recorded, ttl_s=0)
    con = duckdb.connect(str(tmp_path / "twice.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 1 AS one")
    cursor = con.cursor()
    tables.watch(con, "twice")
    tables.watch(cursor, "twice")
    assert collect(recorded)[ROWS] == {("t",): 1}  # collect() asserts one point per key
    tables.forget(cursor)
    cursor.close()
    time.sleep(SHARED_S)
    assert collect(recorded)[ROWS] == {("t",): 1}


@pytest.mark.parametrize("how", ["close", "forget-and-close", "delete"])
def test_a_gone_connection_is_dropped_and_unlocks_the_file(
    recorded: InMemoryMetrics, tmp_path: Path, how: str
) -> None:
    """No more points, and another process can open the file read-write at once."""
    tables = table_metrics(recorded, ttl_s=3600, profile_tables=["t"])
    path = tmp_path / "gone.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(3)")
    tables.watch(con, "gone")
    assert collect(recorded)[ROWS] == {("t",): 3}
    assert opens_read_write(path).returncode != 0, "the test's own connection holds the lock"

    if how == "forget-and-close":
        tables.forget(con)
    if how == "delete":
        del con
        gc.collect()
    else:
        con.close()
    time.sleep(SHARED_S)

    assert collect(recorded) == {}
    opened = opens_read_write(path)
    assert opened.returncode == 0, opened.stderr


def test_watch_of_a_closed_connection_warns(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    tables = table_metrics(recorded)
    con = duckdb.connect()
    con.close()
    tables.watch(con, "closed")
    assert collect(recorded) == {}
    (warning,) = warnings(caplog)
    assert warning.startswith("jobmeter: DuckDB database 'closed' cannot be watched (")


def test_no_sql_runs_on_the_users_connection(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    """A collection between the user's execute() and fetch leaves the user's result alone."""
    tables = table_metrics(recorded, profile_tables=["t"])
    con = duckdb.connect(str(tmp_path / "own.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(5)")
    tables.watch(con, "own")
    con.execute("SELECT 42 AS answer")
    assert collect(recorded)[ROWS] == {("t",): 5}
    assert con.fetchall() == [(42,)]


def test_collection_while_the_user_runs_a_long_query(
    recorded: InMemoryMetrics, tmp_path: Path
) -> None:
    """cursor() from the reader's thread while the user's thread is in a query: both work."""
    tables = table_metrics(recorded, ttl_s=0, profile_tables=["t"])
    con = duckdb.connect(str(tmp_path / "busy.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
    tables.watch(con, "busy")
    result: list[Any] = []
    started = threading.Event()

    def user() -> None:
        started.set()
        for _ in range(3):
            result.append(con.execute("SELECT sum(a.i * b.i) FROM range(10000) a(i), "
                                      "range(10000) b(i)").fetchall())  # fmt: skip
            con.execute("INSERT INTO t VALUES (1)")

    thread = threading.Thread(target=user)
    thread.start()
    started.wait()
    seen = [collect(recorded)[ROWS][("t",)]]
    while thread.is_alive():
        time.sleep(SHARED_S)
        seen.append(collect(recorded)[ROWS][("t",)])
    thread.join()

    assert result == [[((9999 * 10000 // 2) ** 2,)]] * 3
    assert all(1000 <= rows <= 1003 for rows in seen)


def test_forget_waits_for_a_refresh_so_close_does_not_fail(
    recorded: InMemoryMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """forget() interrupts a refresh in flight: the user's close() then succeeds, no warning."""
    tables = table_metrics(recorded, timeout_s=60, profile_tables=["big"])
    con = duckdb.connect(str(tmp_path / "inflight.duckdb"))
    con.execute("CREATE TABLE big AS SELECT range AS i, random() AS r FROM range(20000000)")
    tables.watch(con, "inflight")
    reader = threading.Thread(target=recorded.metrics)
    reader.start()
    deadline = time.monotonic() + 30
    while tables._databases and next(iter(tables._databases.values())).cursor is None:
        assert time.monotonic() < deadline, "the refresh never started"
        time.sleep(0.001)
    time.sleep(0.15)  # past the table list and sizes: in the profile's scan

    tables.forget(con)
    con.close()  # would raise ResourceInUseException with the refresh still running
    reader.join()

    assert collect(recorded) == {}
    assert warnings(caplog) == []


def test_duckdb_refuses_close_while_a_cursor_runs() -> None:
    """The upstream behaviour forget() exists for (DuckDB 2.0): pin it, so we notice a change."""
    con = duckdb.connect()
    cursor = con.cursor()
    started = threading.Event()

    def query() -> None:
        started.set()
        with contextlib.suppress(duckdb.Error):  # interrupted at the end of the test
            cursor.execute("SELECT sum(a.i * b.i) FROM range(20000) a(i), range(20000) b(i)")

    thread = threading.Thread(target=query)
    thread.start()
    started.wait()
    time.sleep(0.2)
    try:
        with pytest.raises(duckdb.Error, match="busy"):
            con.close()
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.interrupt()
        thread.join()
