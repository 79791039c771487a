"""What a profiled DuckDB connection records: exact figures, one series per shape, no literal."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics.export import HistogramDataPoint
from prometheus_client.parser import text_string_to_metric_families

import jobmeter
import jobmeter.duckdb
from _support.prometheus import PrometheusServer
from jobmeter.testing import InMemoryMetrics, in_memory

DURATION = "db.client.operation.duration"
ROWS = "db.client.response.returned_rows"


def _histograms(
    recorded: InMemoryMetrics, name: str, **attributes: Any
) -> list[HistogramDataPoint]:
    points = recorded.points(name, attributes or None)
    assert all(isinstance(p, HistogramDataPoint) for p in points)
    return points  # type: ignore[return-value]


def _attribute(point: Any, key: str) -> Any:
    assert point.attributes is not None
    return point.attributes[key]


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    """A DuckDB file with 10,000 orders over 4 regions."""
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE orders AS SELECT range AS id, range % 4 AS region, range * 1.5 AS amount "
            "FROM range(10000)"
        )
        con.execute("ALTER TABLE orders ADD PRIMARY KEY (id)")
    return path


def test_thousand_literals_are_one_series(orders: Path) -> None:
    """1,000 queries that differ only in literals count into one series, one summary."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(orders))
        for i in range(1000):
            regions = ", ".join(["1"] * (i % 7 + 1))
            con.execute(
                f"SELECT count(*) FROM orders WHERE id < {i} AND region IN ({regions}) "
                f"AND 'tag-{i}' <> ''"
            ).fetchall()
        con.close()
        points = [
            p
            for p in _histograms(recorded, DURATION)
            if _attribute(p, "db.operation.name") == "SELECT"
        ]
        assert len(points) == 1
        assert points[0].count == 1000
        assert _attribute(points[0], "db.query.summary") == "SELECT orders"
        assert _attribute(points[0], "db.namespace") == "shop"
        assert _attribute(points[0], "db.system.name") == "duckdb"
        rows = _histograms(recorded, ROWS, **{"db.operation.name": "SELECT"})
        assert [(p.count, p.sum) for p in rows] == [(1000, 1000)]  # one row per count(*)


def test_profiler_figures_are_exact(orders: Path, tmp_path: Path) -> None:
    """Rows scanned, rows returned and bytes written are DuckDB's own, exactly."""
    target = tmp_path / "out.parquet"
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(orders))
        assert len(con.execute("SELECT * FROM orders WHERE region = 2").fetchall()) == 2500
        con.execute(f"COPY orders TO '{target}' (FORMAT parquet)")
        select = {"db.operation.name": "SELECT"}
        assert recorded.value("jobmeter.duckdb.rows.scanned", select) == 10_000
        assert [(p.count, p.sum) for p in _histograms(recorded, ROWS, **select)] == [(1, 2500)]
        copy = {"db.operation.name": "COPY", "disk.io.direction": "write"}
        assert recorded.value("jobmeter.duckdb.io", copy) == target.stat().st_size
        phases = {
            _attribute(p, "jobmeter.duckdb.phase"): recorded.value(
                "jobmeter.duckdb.phase.time",
                {**select, "jobmeter.duckdb.phase": _attribute(p, "jobmeter.duckdb.phase")},
            )
            for p in recorded.points("jobmeter.duckdb.phase.time", select)
        }
        assert set(phases) == {"planning", "optimizing", "physical_planning", "execution"}
        assert all(v >= 0 for v in phases.values())
        assert phases["execution"] > 0
        assert recorded.value("jobmeter.duckdb.cpu.time", select) > 0
        assert recorded.value("jobmeter.duckdb.buffer.memory.peak", select) > 0
        con.close()


def test_row_group_pruning_is_visible(tmp_path: Path) -> None:
    """A filter on a sorted column scans fewer row groups than the table has."""
    path = tmp_path / "big.duckdb"
    with duckdb.connect(str(path)) as plain:
        plain.execute("CREATE TABLE events AS SELECT range AS ts FROM range(1000000) ORDER BY ts")
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(path))
        assert con.execute("SELECT count(*) FROM events WHERE ts < 1000").fetchall() == [(1000,)]
        select = {"db.operation.name": "SELECT"}
        to_scan = recorded.value("jobmeter.duckdb.row_groups.to_scan", select)
        scanned = recorded.value("jobmeter.duckdb.row_groups.scanned", select)
        assert to_scan >= 8  # 1M rows in row groups of 122,880
        assert 1 <= scanned < to_scan
        con.close()


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("SELEC 1", "duckdb.ParserException"),
        ("INSERT INTO orders VALUES (1, 1, 1.0)", "duckdb.ConstraintException"),
        ("SELECT nope FROM orders", "duckdb.BinderException"),
    ],
)
def test_failures_carry_error_type(orders: Path, statement: str, error: str) -> None:
    """A failed statement is counted with error.type; its exception reaches the caller as is."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(orders))
        with pytest.raises(duckdb.Error) as raised:
            con.execute(statement)
        assert f"duckdb.{type(raised.value).__name__}" == error
        failed = _histograms(recorded, DURATION, **{"error.type": error})
        assert [p.count for p in failed] == [1]
        assert _attribute(failed[0], "db.query.summary") != statement or "?" not in statement
        con.close()


def test_threads_with_cursors_count_exactly(orders: Path) -> None:
    """Eight threads, each on its own cursor, lose no query and mix no profiles."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(orders))

        def work(region: int) -> None:
            cursor = con.cursor()
            for _ in range(50):
                rows = cursor.execute(
                    "SELECT id FROM orders WHERE region = ?", [region % 4]
                ).fetchall()
                assert len(rows) == 2500
            cursor.close()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        select = {"db.operation.name": "SELECT"}
        assert [p.count for p in _histograms(recorded, DURATION, **select)] == [400]
        assert [(p.count, p.sum) for p in _histograms(recorded, ROWS, **select)] == [
            (400, 400 * 2500)
        ]
        assert recorded.value("jobmeter.duckdb.rows.scanned", select) == 400 * 10_000
        con.close()


def test_streaming_result_ends_when_drained(orders: Path) -> None:
    """A SELECT read with fetchmany is one operation, measured until its last row."""
    with in_memory() as recorded:
        con = jobmeter.duckdb.connect(str(orders))
        con.execute("SELECT id FROM orders ORDER BY id")
        fetched = 0
        while batch := con.fetchmany(3000):
            fetched += len(batch)
        assert fetched == 10_000
        points = _histograms(recorded, ROWS, **{"db.operation.name": "SELECT"})
        assert [(p.count, p.sum) for p in points] == [(1, 10_000)]
        con.close()


def test_operator_times_are_opt_in(orders: Path) -> None:
    """Per-operator time appears only with operators=True, by operator type."""
    with in_memory() as recorded:
        plain = jobmeter.duckdb.DuckDBCollector("plain", table_metrics=False).connect(str(orders))
        plain.execute("SELECT region, sum(amount) FROM orders GROUP BY region").fetchall()
        plain.close()
        assert recorded.points("jobmeter.duckdb.operator.time") == []
        detailed = jobmeter.duckdb.DuckDBCollector("ops", operators=True, table_metrics=False)
        con = detailed.connect(str(orders))
        con.execute("SELECT region, sum(amount) FROM orders GROUP BY region").fetchall()
        con.close()
        kinds = {
            _attribute(p, "jobmeter.duckdb.operator.type")
            for p in recorded.points("jobmeter.duckdb.operator.time")
        }
        assert "TABLE_SCAN" in kinds
        assert any("GROUP_BY" in kind for kind in kinds)


def test_profiler_off_costs_duckdb_nothing(orders: Path) -> None:
    """profiler=False leaves DuckDB's settings alone and still records duration and rows."""
    with in_memory() as recorded:
        collector = jobmeter.duckdb.DuckDBCollector(profiler=False, table_metrics=False)
        con = collector.connect(str(orders))
        settings = "SELECT current_setting('enable_profiling'), current_setting('tracked_metrics')"
        assert con.execute(settings).fetchall() == [(None, ["*"])]
        assert len(con.execute("SELECT * FROM orders WHERE region = 1").fetchall()) == 2500
        select = {"db.operation.name": "SELECT"}
        points = _histograms(recorded, ROWS, **select)
        assert sorted((p.count, p.sum) for p in points) == [(1, 1), (1, 2500)]
        assert recorded.points("jobmeter.duckdb.rows.scanned") == []
        con.close()


def test_instrument_existing_connection(orders: Path) -> None:
    """instrument() records a connection the program opened; twice is the same as once."""
    with in_memory() as recorded:
        raw = duckdb.connect(str(orders))
        con = jobmeter.duckdb.instrument(raw)
        assert jobmeter.duckdb.instrument(con) is con
        con.execute("SELECT 1").fetchall()
        assert [p.count for p in _histograms(recorded, DURATION)] == [1]
        con.close()
    with pytest.raises(
        TypeError, match=r"instrument\(\) takes a duckdb.DuckDBPyConnection, got str"
    ):
        jobmeter.duckdb.instrument("shop.duckdb")  # type: ignore[arg-type]


# "zq" starts every text secret: no label of ours contains it, so any hit is a leak
# (a bare 'opti' would match the phase label 'optimizing').
_literals = st.one_of(
    st.text(min_size=2, max_size=40)
    .filter(lambda s: s.strip() == s and "\x00" not in s)
    .map(lambda s: "zq" + s),
    st.integers(min_value=100_000, max_value=10**12).map(str),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(secret=_literals)
def test_no_literal_is_exported(tmp_path: Path, secret: str) -> None:
    """Whatever literal a query holds, no exported attribute and no scraped line contains it."""
    quoted = "'" + secret.replace("'", "''") + "'"
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    try:
        con = jobmeter.duckdb.connect()
        con.execute("CREATE TABLE IF NOT EXISTS notes (body VARCHAR, n BIGINT)")
        con.execute(f"INSERT INTO notes VALUES ({quoted}, 1)")
        con.execute(
            f"SELECT count(*) FROM notes WHERE body = {quoted} OR body IN ({quoted}, 'x')"
        ).fetchall()
        con.sql(f"SELECT body FROM notes WHERE body <> {quoted}").fetchall()
        with pytest.raises(duckdb.Error):
            con.execute(f"SELECT {quoted} FROM nowhere")
        assert telemetry.prometheus_url is not None
        with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
            scraped = response.read().decode()
        con.close()
    finally:
        jobmeter.testing.reset()
    labels = {
        value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        for key, value in sample.labels.items()
        if key.startswith(("db_", "error_", "jobmeter_"))  # what queries could put there
    }
    assert {"SELECT notes", "INSERT notes", "CREATE TABLE notes", "SELECT nowhere"} <= labels
    assert not [value for value in labels if secret.lower() in value.lower()]


@pytest.mark.prometheus
def test_prometheus_ranks_query_shapes_by_total_time(orders: Path, tmp_path: Path) -> None:
    """The PromQL of docs/duckdb.md finds the slowest query shape from a real scrape."""
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    host, port = telemetry.prometheus_address
    con = jobmeter.duckdb.connect(str(orders))
    for i in range(20):
        con.execute(f"SELECT {i}").fetchall()
    for _ in range(3):
        con.execute(
            "SELECT a.region, count(*) FROM orders a JOIN orders b ON a.region = b.region "
            "WHERE a.id < 2000 GROUP BY a.region"
        ).fetchall()
    with PrometheusServer(tmp_path, [f"{host}:{port}"], scrape_interval="1s") as prometheus:
        query = "topk(1, sum by (db_query_summary) (db_client_operation_duration_seconds_sum))"
        result = prometheus.wait_for(query, lambda samples: len(samples) == 1)
        assert result[0][0]["db_query_summary"] == "SELECT orders orders"  # a self-join
        counts = prometheus.wait_for(
            "sum by (db_query_summary) "
            '(db_client_operation_duration_seconds_count{db_operation_name="SELECT"})',
            lambda samples: len(samples) == 2,
        )
        assert sorted(value for _, value in counts) == [3.0, 20.0]
    con.close()
