"""Sampled profiling: which executions DuckDB profiles, and what the scaled figures add up to.

The ground truth of "was this execution profiled" is DuckDB's own:
``current_setting('enable_profiling')`` evaluated inside the query answers
``no_output`` while the profiler runs and NULL while it is off. The ground
truth of the figures is a plain DuckDB connection with the profiler on,
running the same statements.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint

import jobmeter.duckdb
from jobmeter.duckdb import DuckDBCollector, ProfileSampling
from jobmeter.testing import InMemoryMetrics, in_memory

DURATION = "db.client.operation.duration"
ROWS = "db.client.response.returned_rows"
PROFILED = "jobmeter.duckdb.operations.profiled"
SCANNED = "jobmeter.duckdb.rows.scanned"
PROBE = "SELECT current_setting('enable_profiling') FROM range(1)"
# A fixed one-in-100 after the first three: budget 0 leaves the minimum rate.
EVERY_100 = ProfileSampling(first=3, budget=0.0, min_rate=0.01)
EVERY_10 = ProfileSampling(first=3, budget=0.0, min_rate=0.1)


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def _histograms(
    recorded: InMemoryMetrics, name: str, **attributes: str
) -> list[HistogramDataPoint]:
    points = recorded.points(name, attributes)
    assert all(isinstance(p, HistogramDataPoint) for p in points)
    return points  # type: ignore[return-value]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """10 row groups of 122,880 rows, sorted on ``ts``: a filter prunes row groups."""
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE events AS SELECT range AS ts FROM range(1228800) ORDER BY ts")
    return path


def _histogram(recorded: InMemoryMetrics, name: str, summary: str) -> HistogramDataPoint:
    [point] = recorded.points(name, {"db.query.summary": summary})
    assert isinstance(point, HistogramDataPoint)
    return point


def test_a_shape_is_profiled_exactly_as_planned(recorded: InMemoryMetrics) -> None:
    """1,003 executions at one in 100 after the first 3: 13 profiled, one in each block."""
    collector = DuckDBCollector("sampled", profiling=EVERY_100, table_metrics=False)
    con = collector.connect()
    seen = [con.execute(PROBE).fetchall()[0][0] for _ in range(1003)]
    con.close()
    profiled = [i for i, mode in enumerate(seen) if mode == "no_output"]
    assert set(seen) == {"no_output", None}
    assert len(profiled) == 13
    assert profiled[:3] == [0, 1, 2]
    assert [(i - 3) // 100 for i in profiled[3:]] == list(range(10))  # one per block of 100
    assert len({(i - 3) % 100 for i in profiled[3:]}) > 5  # not at the same place each block
    summary = {"db.query.summary": "SELECT range"}
    assert recorded.value(PROFILED, summary) == 13
    assert _histogram(recorded, DURATION, "SELECT range").count == 1003
    rows = _histogram(recorded, ROWS, "SELECT range")
    assert (rows.count, rows.sum) == (1003, 1003)


def test_scaled_figures_of_a_deterministic_query_are_exact(
    events: Path, recorded: InMemoryMetrics
) -> None:
    """500 executions, 8 profiled: rows and row groups scanned are 500 times DuckDB's own."""
    plain = duckdb.connect(str(events), read_only=True)
    plain.execute("PRAGMA enable_profiling = 'no_output'")
    query = "SELECT count(*) FROM events WHERE ts < 300000"
    assert plain.execute(query).fetchall() == [(300000,)]
    truth = json.loads(plain.get_profiling_information(format="json"))["query"]
    plain.close()
    collector = DuckDBCollector("scaled", profiling=EVERY_100, table_metrics=False)
    con = collector.connect(str(events), read_only=True)
    for _ in range(500):
        assert con.execute(query).fetchall() == [(300000,)]
    con.close()
    summary = {"db.query.summary": "SELECT events"}
    assert recorded.value(PROFILED, summary) == 3 + 5
    assert truth["total_rows_scanned"] > 0
    assert recorded.value(SCANNED, summary) == 500 * truth["total_rows_scanned"]
    scanned = recorded.value("jobmeter.duckdb.row_groups.scanned", summary)
    assert scanned == 500 * truth["total_row_groups_scanned"]
    assert _histogram(recorded, DURATION, "SELECT events").count == 500


def test_scaled_figures_of_a_cycling_loop_stay_close_and_only_grow(
    events: Path, recorded: InMemoryMetrics
) -> None:
    """A loop over 7 ranges, 1,003 times, one in 10 profiled: within 10 % of the exact sum.

    Each block of 10 contributes 10 times its profiled execution's figures; the
    ranges' rows scanned vary by a factor of 7, so 100 blocks leave about 5 %
    (one standard deviation) if the profiled place in a block is as good as
    random. The estimate never decreases from one collection to the next.
    """
    queries = [f"SELECT sum(ts) FROM events WHERE ts < {(i + 1) * 163840}" for i in range(7)]
    plain = duckdb.connect(str(events), read_only=True)
    plain.execute("PRAGMA enable_profiling = 'no_output'")
    exact = []
    for query in queries:
        plain.execute(query).fetchall()
        profile = json.loads(plain.get_profiling_information(format="json"))
        exact.append(profile["query"]["total_rows_scanned"])
    plain.close()
    assert len(set(exact)) == 7  # each range scans another number of rows
    collector = DuckDBCollector("cycling", profiling=EVERY_10, table_metrics=False)
    con = collector.connect(str(events), read_only=True)
    summary = {"db.query.summary": "SELECT events"}
    seen = []
    for i in range(1003):
        con.execute(queries[i % 7]).fetchall()
        if i % 50 == 49:
            seen.append(recorded.value(SCANNED, summary))
    con.close()
    truth = sum(exact[i % 7] for i in range(1003))
    estimate = recorded.value(SCANNED, summary)
    assert seen == sorted(seen)
    assert abs(estimate - truth) <= 0.10 * truth, (estimate, truth)
    assert recorded.value(PROFILED, summary) == 3 + 100


def test_duration_rows_and_errors_are_exact_for_every_execution(
    recorded: InMemoryMetrics,
) -> None:
    """Sampling leaves no execution out of the duration and row histograms, nor any failure."""
    collector = DuckDBCollector("exact", profiling=EVERY_100, table_metrics=False)
    con = collector.connect()
    returned = 0
    for i in range(600):
        returned += len(con.execute(f"SELECT * FROM range({i % 7})").fetchall())
        if i % 100 == 0:
            with pytest.raises(duckdb.BinderException):
                con.execute("SELECT nope FROM range(3)")
    con.close()
    point = _histogram(recorded, ROWS, "SELECT range")
    assert (point.count, point.sum) == (600, returned)
    failed = _histograms(recorded, DURATION, **{"error.type": "duckdb.BinderException"})
    assert [p.count for p in failed] == [6]
    durations = _histograms(recorded, DURATION, **{"db.query.summary": "SELECT range"})
    assert sum(p.count for p in durations) == 606


def test_always_profiles_every_statement(recorded: InMemoryMetrics) -> None:
    """profiling="always": 50 of 50 profiled, none switched off."""
    always = DuckDBCollector("always", profiling="always", table_metrics=False).connect()
    assert {always.execute(PROBE).fetchall()[0][0] for _ in range(50)} == {"no_output"}
    always.close()
    assert recorded.value(PROFILED, {"db.query.summary": "SELECT range"}) == 50


@pytest.mark.parametrize("kwargs", [{"profiling": "off"}, {"profiler": False}])
def test_off_profiles_nothing(kwargs: dict[str, object], recorded: InMemoryMetrics) -> None:
    """profiling="off" (and the older profiler=False): no profile, durations still counted."""
    con = DuckDBCollector("off", table_metrics=False, **kwargs).connect()  # type: ignore[arg-type]
    assert {con.execute(PROBE).fetchall()[0][0] for _ in range(20)} == {None}
    con.close()
    assert _histogram(recorded, DURATION, "SELECT range").count == 20
    assert recorded.points(PROFILED) == []
    assert recorded.points(SCANNED) == []


def test_switching_prints_nothing_and_keeps_the_other_settings(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The profiler goes off and on between statements; DuckDB prints nothing either way,
    and tracked_metrics and profiling_coverage stay jobmeter's."""
    collector = DuckDBCollector(
        "quiet", profiling=ProfileSampling(first=2, budget=0, min_rate=0.25)
    )
    con = collector.connect()
    probe = (
        "SELECT current_setting('enable_profiling'), current_setting('profiling_coverage'), "
        "len(current_setting('tracked_metrics')) FROM range(1)"
    )
    with in_memory():
        seen = {con.execute(probe).fetchall()[0] for _ in range(40)}
    con.close()
    assert seen == {("no_output", "ALL", 11), (None, "ALL", 11)}
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_the_program_takes_profiling_over_while_it_is_off(tmp_path: Path) -> None:
    """With the profiler switched off for sampling, the program's JSON profiling to a file
    works as on a plain connection, and jobmeter stops switching it."""
    out = tmp_path / "prof.json"
    with in_memory():
        con = DuckDBCollector("owner", profiling=EVERY_100).connect()
        for _ in range(10):
            con.execute(PROBE).fetchall()
        assert con.execute(PROBE).fetchall() == [(None,)]  # sampling has it off now
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"SET profiling_output = '{out}'")
        modes = {con.execute(PROBE).fetchall()[0][0] for _ in range(20)}
        con.close()
    assert modes == {"json"}
    assert json.loads(out.read_text())["query"]["sql"] == PROBE


def test_cursors_share_their_shapes_sampling(recorded: InMemoryMetrics) -> None:
    """Cursors of one connection are sampled as one: 3 + 2 profiled of 203 on three cursors."""
    collector = DuckDBCollector("cursors", profiling=EVERY_100, table_metrics=False)
    con = collector.connect()
    cursors = [con.cursor() for _ in range(3)]
    modes = [cursors[i % 3].execute(PROBE).fetchall()[0][0] for i in range(203)]
    for cursor in cursors:
        cursor.close()
    con.close()
    assert modes.count("no_output") == 5
    assert recorded.value(PROFILED, {"db.query.summary": "SELECT range"}) == 5


def test_default_is_sampled_and_tiny_queries_are_rarely_profiled(
    recorded: InMemoryMetrics,
) -> None:
    """The default: the first, then under one in 10 of a query this short."""
    con = jobmeter.duckdb.connect()
    modes = [con.execute(PROBE).fetchall()[0][0] for _ in range(400)]
    con.close()
    assert modes[0] == "no_output"
    assert 1 < modes.count("no_output") < 1 + 400 // 10


def test_rate_follows_the_shapes_duration() -> None:
    """Longer shapes get a larger share, bounded by min_rate below and 1 above."""
    sampling = ProfileSampling()
    rates = [sampling.rate(seconds) for seconds in (1e-6, 1e-4, 2e-4, 1e-3, 1e-2, 1.0, 100.0)]
    assert rates == sorted(rates)
    assert rates[0] == sampling.min_rate
    assert sampling.interval(2e-4) == 124  # 0.5 µs (0.25 % of 200 µs) over 50 µs + 6 % of it
    assert sampling.interval(100.0) == 25  # just over 24: 0.25 % over 6 %, and 50 µs
    assert ProfileSampling(min_rate=1.0).interval(1e-6) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profiling": "sometimes"}, "profiling must be"),
        ({"profiling": "always", "profiler": False}, "contradicts"),
        ({"profiler": "yes"}, "profiler must be True or False"),
    ],
)
def test_wrong_profiling_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        DuckDBCollector("bad", table_metrics=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"first": 0}, {"budget": 1.5}, {"min_rate": -0.1}, {"budget": 0, "min_rate": 0}],
)
def test_wrong_sampling_raises(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be|nothing would be profiled"):
        ProfileSampling(**kwargs)  # type: ignore[arg-type]


def test_abandoned_results_wait_for_their_shapes_first_profile(
    recorded: InMemoryMetrics,
) -> None:
    """Results abandoned half-read leave no profile: across collections they wait as one
    entry, and count as the shape's average once a full read brings its first profile."""
    collector = DuckDBCollector("abandoned", profiling=ProfileSampling(min_rate=1.0))
    con = collector.connect()
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")
    query = "SELECT * FROM t"
    summary = {"db.query.summary": "SELECT t"}
    for _ in range(20):
        assert con.execute(query).fetchone() == (0,)  # ended, unfinished, by the next one
        assert recorded.value(SCANNED, summary) == 0
    assert len(collector.instruments._unsettled) == 1
    assert len(con.execute(query).fetchall()) == 100000
    con.close()
    assert recorded.value(PROFILED, summary) == 1
    assert recorded.value(SCANNED, summary) == 21 * 100000
    assert not collector.instruments._unsettled
