"""A statement's duration is the time inside DuckDB's calls for it, not the program's own work.

Each test times the DuckDB calls itself with ``perf_counter`` around them (the
ground truth: jobmeter's own clock reads lie inside those windows, so the
recorded duration can never exceed their sum) and sleeps between the calls,
as a program that works on each row would: the sleeps must not be counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint

import jobmeter.duckdb
from jobmeter.testing import InMemoryMetrics, in_memory

DURATION = "db.client.operation.duration"
ROWS = "db.client.response.returned_rows"
PAUSE = 0.3  # the program's own work after a fetch
T = TypeVar("T")


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    """A DuckDB file with 10,000 orders."""
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE orders AS SELECT range AS id, range % 4 AS region FROM range(10000)"
        )
    return path


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


class Stopwatch:
    """The sum of the windows timed around DuckDB calls: the ground truth."""

    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0

    def __call__(self, call: Callable[[], T]) -> T:
        started = perf_counter()
        try:
            return call()
        finally:  # a call that raises (StopIteration at the end of a reader) counts too
            self.total += perf_counter() - started
            self.calls += 1


def _point(recorded: InMemoryMetrics, name: str, summary: str) -> HistogramDataPoint:
    [point] = recorded.points(name, {"db.query.summary": summary})
    assert isinstance(point, HistogramDataPoint)
    return point


def test_a_scalar_fetch_then_the_programs_work_records_only_duckdbs_time(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """``execute(...).fetchone()[0]``, then 0.3 s of work: the duration is the two calls."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    value = watch(lambda: con.execute("SELECT max(id) FROM orders").fetchone())
    assert value == (9999,)
    time.sleep(PAUSE)  # the statement is still open: its result was not drained
    con.execute("SELECT 42").fetchall()  # the next statement ends it
    point = _point(recorded, DURATION, "SELECT orders")
    assert point.count == 1
    assert 0 < point.sum <= watch.total < PAUSE
    assert _point(recorded, ROWS, "SELECT orders").sum == 1
    con.close()


def test_fetchall_then_work_records_only_duckdbs_time(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """execute() and fetchall() timed; the sleep before close() is not."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    cursor = watch(lambda: con.execute("SELECT id FROM orders WHERE region = 1"))
    time.sleep(PAUSE)  # between execute() and the fetch: not DuckDB's either
    rows = watch(cursor.fetchall)
    time.sleep(PAUSE)
    con.close()
    assert len(rows) == 2500
    point = _point(recorded, DURATION, "SELECT orders")
    assert (point.count, _point(recorded, ROWS, "SELECT orders").sum) == (1, 2500)
    assert 0 < point.sum <= watch.total < PAUSE


def test_a_streamed_result_is_one_statement_with_the_sum_of_its_calls(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """A fetchmany loop with work between batches: one statement, its calls summed, rows exact."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    watch(lambda: con.execute("SELECT id FROM orders ORDER BY id"))
    fetched = 0
    while batch := watch(lambda: con.fetchmany(3000)):
        fetched += len(batch)
        time.sleep(0.05)
    assert (fetched, watch.calls) == (10_000, 6)  # execute, 4 batches, the empty one
    point = _point(recorded, DURATION, "SELECT orders")
    assert point.count == 1
    assert 0 < point.sum <= watch.total
    assert point.sum < 4 * 0.05  # none of the four pauses
    assert _point(recorded, ROWS, "SELECT orders").sum == 10_000
    con.close()


def test_fetchone_loop_counts_each_call_not_the_gaps(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """Row by row with work after each: the gaps add up to more than the statement."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    watch(lambda: con.execute("SELECT id FROM orders WHERE id < 20"))
    seen = 0
    while watch(con.fetchone) is not None:
        seen += 1
        time.sleep(0.01)
    point = _point(recorded, DURATION, "SELECT orders")
    assert (seen, point.count, _point(recorded, ROWS, "SELECT orders").sum) == (20, 1, 20)
    assert 0 < point.sum <= watch.total < 20 * 0.01
    con.close()


def test_an_arrow_reader_times_each_batch_it_reads(orders: Path, recorded: InMemoryMetrics) -> None:
    """to_arrow_reader(): DuckDB runs the query as batches are read; each read is timed."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    rel = con.sql("SELECT id FROM orders ORDER BY id")
    reader = watch(lambda: rel.to_arrow_reader(2048))
    assert isinstance(reader, pa.RecordBatchReader)
    sizes: list[int] = []
    while True:
        try:
            batch = watch(reader.read_next_batch)
        except StopIteration:
            break
        sizes.append(batch.num_rows)
        time.sleep(0.02)
    assert sum(sizes) == 10_000
    assert len(sizes) >= 2
    point = _point(recorded, DURATION, "SELECT orders")  # drained: recorded at once
    assert point.count == 1
    assert 0 < point.sum <= watch.total < len(sizes) * 0.02
    assert _point(recorded, ROWS, "SELECT orders").sum == 10_000
    con.close()


def test_pyarrow_reading_a_relation_is_timed_and_counted(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """pa.table(rel) reads through the relation's Arrow stream: same table, rows counted."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    table = watch(lambda: pa.table(con.sql("SELECT id FROM orders WHERE id < 5000")))
    with duckdb.connect(str(orders)) as plain:
        assert table.equals(pa.table(plain.sql("SELECT id FROM orders WHERE id < 5000")))
    point = _point(recorded, DURATION, "SELECT orders")
    assert (point.count, _point(recorded, ROWS, "SELECT orders").sum) == (1, 5000)
    assert 0 < point.sum <= watch.total
    con.close()


def test_iter_rows_times_each_row_not_the_loop_body(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """A relation's iter_rows(): each next() is DuckDB's time, the loop body is the program's."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    rows = watch(lambda: con.sql("SELECT id FROM orders WHERE id < 10").iter_rows())
    seen: list[Any] = []
    while True:
        try:
            row = watch(lambda: next(rows))
        except StopIteration:
            break
        seen.append(row)
        time.sleep(0.02)
    assert len(seen) == 10
    point = _point(recorded, DURATION, "SELECT orders")
    assert (point.count, _point(recorded, ROWS, "SELECT orders").sum) == (1, 10)
    assert 0 < point.sum <= watch.total < 10 * 0.02
    con.close()


def test_a_failing_statement_records_the_time_of_the_failing_call(
    orders: Path, recorded: InMemoryMetrics
) -> None:
    """A failure is recorded with error.type and the time inside the call that raised."""
    con = jobmeter.duckdb.connect(str(orders))
    started = perf_counter()
    with pytest.raises(duckdb.BinderException):
        con.execute("SELECT nope FROM orders")
    outer = perf_counter() - started
    [point] = recorded.points(DURATION, {"error.type": "duckdb.BinderException"})
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 1
    assert 0 < point.sum <= outer
    assert point.attributes is not None
    assert point.attributes["db.query.summary"] == "SELECT orders"
    con.close()


def test_a_write_is_timed_inside_its_call(orders: Path, recorded: InMemoryMetrics) -> None:
    """INSERT ends inside execute(): its duration is that call, whatever comes after."""
    con = jobmeter.duckdb.connect(str(orders))
    watch = Stopwatch()
    watch(lambda: con.execute("INSERT INTO orders SELECT range + 10000, 0 FROM range(1000)"))
    time.sleep(PAUSE)
    point = _point(recorded, DURATION, "INSERT orders SELECT range")
    assert point.count == 1
    assert 0 < point.sum <= watch.total < PAUSE
    con.close()
