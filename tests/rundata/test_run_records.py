"""What a run records besides samples: operations, DuckDB queries, failures, backfill progress.

Runs are real: ``jobmeter.Run`` blocks and ``jobmeter run`` commands in
subprocesses, killed with real signals where the test is about dying. Figures
are checked against what the same process recorded through OpenTelemetry (the
histogram's exact count, sum, min and max) and against known workloads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jobmeter import store
from jobmeter._rundata import records, routing
from jobmeter._rundata.sketch import RELATIVE_ERROR, Sketch, quantile_of
from jobmeter.cli import app
from jobmeter.collector._series import FOLD_AT
from jobmeter.collector._totals import OperationTotals

PRELUDE = """
import json, os, sys, time
import jobmeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
provider = MeterProvider(metric_readers=[reader])
ops = jobmeter.MetricsCollector("etl", meter_provider=provider)

def otel_points():
    found = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "jobmeter.operation.duration":
                    for p in metric.data.data_points:
                        key = p.attributes["operation.name"]
                        found[key] = [p.count, p.sum, p.min, p.max]
    return found
"""


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != routing.RUN_ENV}
    env.update(JOBMETER_RUN_DIR=str(root), OTEL_METRICS_EXPORTER="none", **extra)
    return env


def _python(root: Path, code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=_env(root, **extra), capture_output=True, text=True, timeout=120, cwd=root.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _report(root: Path, ref: str = "latest") -> dict[str, Any]:
    result = CliRunner().invoke(app, ["report", ref, "--json", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _by_label(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["label"]: op for op in report["operations"]}


# -- the sketch ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-8, max_value=1e7, allow_nan=False), min_size=101, max_size=400),
    st.sampled_from([0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_a_sketch_quantile_is_within_its_relative_error_of_the_exact_one(
    values: list[float], q: float
) -> None:
    """Beyond EXACT_LIMIT values the sketch answers from buckets, within 1 % of the exact."""
    ordered = sorted(values)
    sketch = Sketch()
    sketch.add_sorted(ordered)
    assert sketch.values is None
    exact = quantile_of(ordered, q)
    estimate = Sketch.from_json(sketch.to_json()).quantile(q, ordered[0], ordered[-1])
    assert abs(estimate - exact) <= RELATIVE_ERROR * exact * 1.0001


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=2, max_size=300))
def test_sketches_of_parts_merge_into_the_sketch_of_the_whole(values: list[float]) -> None:
    whole, left, right = Sketch(), Sketch(), Sketch()
    whole.add_sorted(sorted(values))
    half = len(values) // 2
    left.add_sorted(sorted(values[:half]))
    right.add_sorted(sorted(values[half:]))
    left.merge(Sketch.from_json(right.to_json()))
    assert (left.zeros, left.buckets) == (whole.zeros, whole.buckets)
    assert left.count == len(values)


def test_a_damaged_sketch_reads_as_empty_and_an_empty_one_has_no_quantile() -> None:
    for text in (None, "", "not json", "[1, 2]", '{"x": 3, "5": -1}'):
        assert Sketch.from_json(text).count == 0
    with pytest.raises(ValueError, match="empty sketch"):
        Sketch().quantile(0.5)
    with pytest.raises(ValueError, match="within 0 and 1"):
        Sketch().quantile(95)


# -- jobmeter.Run -------------------------------------------------------------------------------


def test_a_run_block_records_each_operation_as_opentelemetry_saw_it(tmp_path: Path) -> None:
    """Count, sum, min and max equal the OTel histogram's; p50/p95 match the known workload."""
    root = tmp_path / "runs"
    done = _python(root, """
        with jobmeter.Run("block", interval=0.1) as run:
            for i in range(100):
                with ops.measure("sleep", {"kind": "short" if i < 90 else "long"}):
                    time.sleep(0.002 if i < 90 else 0.05)
            for i in range(500):
                with ops.measure("hot", resources=False):
                    pass
            for i in range(3):
                try:
                    with ops.measure("parse"):
                        raise KeyError(i)
                except KeyError:
                    pass
        print(json.dumps({"status": run.status, "id": run.id, "otel": otel_points()}))
    """)  # fmt: skip
    out = json.loads(done.stdout)
    assert out["status"] == "succeeded"
    report = _report(root)
    assert report["id"] == out["id"]
    assert report["status"] == "succeeded"
    ops = _by_label(report)
    assert set(ops) == {"sleep {kind=short}", "sleep {kind=long}", "hot", "parse"}
    count, total, low, high = out["otel"]["hot"]
    hot = ops["hot"]
    assert (hot["count"], hot["errors"]) == (count, 0) == (500, 0)
    assert hot["duration_total_seconds"] == pytest.approx(total, rel=1e-9)
    assert (hot["duration_min_seconds"], hot["duration_max_seconds"]) == (low, high)
    assert hot["cpu_total_seconds"] is None  # resources=False measures no CPU
    short, long_ = ops["sleep {kind=short}"], ops["sleep {kind=long}"]
    assert (short["count"], long_["count"]) == (90, 10)
    assert 0.002 <= short["duration_p50_seconds"] < 0.02
    assert 0.05 <= long_["duration_p95_seconds"] <= long_["duration_max_seconds"]
    assert ops["parse"]["count"] == ops["parse"]["errors"] == 3
    assert ops["parse"]["memory_p95_bytes"] > 10 * 2**20  # an interpreter's RSS at least
    assert report["operations"][0]["label"] == "sleep {kind=long}"  # largest total first
    assert report["failures"] == [{
        "source": "etl", "name": "parse", "error_type": "KeyError", "count": 3,
        "first_unix": report["failures"][0]["first_unix"],
        "last_unix": report["failures"][0]["last_unix"],
    }]  # fmt: skip
    assert report["start_unix"] <= report["failures"][0]["first_unix"] <= report["end_unix"]
    directory = Path(report["directory"])
    assert sorted(p.name for p in directory.glob("*.parquet")) == [
        "failures.parquet",
        "operations.parquet",
    ]  # compacted at the clean end
    assert not list(directory.glob("*.jsonl.*"))
    assert not list(directory.glob("operations.*.jsonl"))
    assert report["figures"]["samples"] >= 2
    assert report["figures"]["wall_seconds"] > 0.6


def test_a_run_records_duckdb_query_shapes_and_backfill_progress(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _python(root, """
        with jobmeter.Run("db"):
            con = jobmeter.duckdb.DuckDBCollector(meter_provider=provider).connect()
            for i in range(1, 21):
                con.execute(f"SELECT * FROM range({i * 10})").fetchall()
            try:
                con.execute("SELECT * FROM missing_table")
            except Exception:
                pass
            with jobmeter.Backfill("days", total=12, progress=False, meter_provider=provider) as bf:
                for day in bf.track(range(10)):
                    pass
                bf.skipped(1)
                bf.failed(1, error_type="TimeoutError")
    """)  # fmt: skip
    report = _report(root)
    shapes = {q["shape"]: q for q in report["queries"]}
    ranged = shapes["SELECT * FROM RANGE (?)"]
    assert ranged["summary"] == "SELECT range"
    assert (ranged["count"], ranged["rows"], ranged["rows_max"], ranged["errors"]) == (
        20, sum(i * 10 for i in range(1, 21)), 200, 0)  # fmt: skip
    assert ranged["duration_p50_seconds"] <= ranged["duration_p95_seconds"]
    assert shapes["SELECT * FROM missing_table"]["errors"] == 1
    assert [(f["source"], f["error_type"]) for f in report["failures"]] == [
        ("duckdb", "duckdb.CatalogException")]  # fmt: skip
    [days] = report["backfills"]
    assert (days["status"], days["done"], days["skipped"], days["failed"], days["total"]) == (
        "succeeded", 10, 1, 1, 12)  # fmt: skip
    assert days["progress"] == 1.0


def test_jobmeter_run_records_the_operations_of_its_command_and_forked_workers(
    tmp_path: Path,
) -> None:
    """No code change: the command finds the run in JOBMETER_RUN; Pool workers record too."""
    root = tmp_path / "runs"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, os
        import jobmeter
        ops = jobmeter.MetricsCollector("etl")

        def work(n):
            with ops.measure("worker"):
                return sum(range(n))

        if __name__ == "__main__":
            for i in range(50):
                with ops.measure("step", {"i": i % 2}):
                    pass
            with jobmeter.Run("inner") as inner:
                print("joined", inner.joined, inner.id)
            with multiprocessing.get_context("fork").Pool(2) as pool:
                print(sum(pool.map(work, [1000] * 40, chunksize=1)))
    """))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--no-metrics", "--name", "job", "--",
         sys.executable, str(script)],
        env=_env(root), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = _report(root)
    assert f"joined True {report['id']}" in done.stdout
    assert len(store.list_runs(root)) == 1
    ops = _by_label(report)
    assert ops["worker"]["count"] == 40
    assert (ops["step {i=0}"]["count"], ops["step {i=1}"]["count"]) == (25, 25)
    assert [p.name for p in Path(report["directory"]).glob("operations*")] == [
        "operations.parquet"]  # fmt: skip


def test_a_git_commit_is_kept_with_the_run(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    repository.mkdir()
    git = ["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repository / "job.py").write_text("print('hi')\n")
    subprocess.run([*git, "add", "job.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    root = repository / "runs"
    subprocess.run([sys.executable, "-m", "jobmeter", "run", "-q", "--no-metrics", "--",
                    sys.executable, "job.py"], env=_env(root), cwd=repository, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    report = _report(root)
    assert report["git"] == {"commit": head, "dirty": False}


# -- dying, damage and faults -------------------------------------------------------------------

LOOP = """
with jobmeter.Run("loop", interval=0.1):
    for i in range(100):
        with ops.measure("step"):
            pass
    print("ready", flush=True)
    time.sleep(60)
"""


def _start_loop(root: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + LOOP], env=_env(root, JOBMETER_RUN_FLUSH_INTERVAL="0.1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_a_sigkilled_run_is_incomplete_and_keeps_what_it_flushed(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    process = _start_loop(root)
    time.sleep(0.5)  # a few flush intervals
    process.kill()
    process.wait(timeout=10)
    report = _report(root)
    assert report["status"] == "incomplete"
    assert _by_label(report)["step"]["count"] == 100
    directory = Path(report["directory"])
    [records] = list(directory.glob("operations.*.jsonl"))  # never compacted
    with open(records, "a", encoding="utf-8") as damaged:
        damaged.write('not json\n{"t": 1795000000.0, "pid": 1, "collector": "etl", "oper')
    result = CliRunner().invoke(app, ["report", "--latest", "--json", "--dir", str(root)])
    assert result.exit_code == 0
    again = json.loads(result.stdout)
    assert _by_label(again)["step"]["count"] == 100
    assert any("skipped 2 unreadable operations record(s)" in w for w in again["warnings"])


def test_a_sigterm_ends_the_run_as_killed_with_every_record_written(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    process = _start_loop(root)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == -signal.SIGTERM  # still dies by SIGTERM
    report = _report(root)
    assert (report["status"], report["exit_code"]) == ("killed", 143)
    assert _by_label(report)["step"]["count"] == 100


def test_a_run_directory_deleted_mid_run_is_a_warning_and_the_job_goes_on(tmp_path: Path) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    done = _python(tmp_path / "runs", """
        import shutil
        from jobmeter._rundata import routing
        with ops.measure("first"):
            pass
        shutil.rmtree(os.environ["JOBMETER_RUN"])
        for i in range(10):
            with ops.measure("later"):
                pass
        routing.active.flush()
        print("job finished")
    """, JOBMETER_RUN=str(doomed))  # fmt: skip
    assert "job finished" in done.stdout
    assert f"the run directory {doomed} was removed" in done.stderr
    assert done.stderr.count("jobmeter:") == 1  # warned once


def test_compare_matches_operations_by_name(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for count, only in ((10, "only_a"), (20, "only_b")):
        _python(root, f"""
            with jobmeter.Run("cmp"):
                for i in range({count}):
                    with ops.measure("x"):
                        time.sleep(0.001)
                with ops.measure("{only}"):
                    pass
        """)  # fmt: skip
        time.sleep(1.1)  # ids sort by start second
    first, second = (run.id for run in store.list_runs(root))
    result = CliRunner().invoke(app, ["compare", first, second, "--json", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    matched = {tuple(row["key"]): row for row in json.loads(result.stdout)["operations"]}
    x = matched[("etl", "x")]
    assert (x["a"]["count"], x["b"]["count"], x["count_change_percent"]) == (10, 20, 100.0)
    assert matched[("etl", "only_a")]["b"] is None
    assert matched[("etl", "only_b")]["a"] is None
    text = CliRunner().invoke(app, ["compare", first, second, "--dir", str(root)],
                              env={"COLUMNS": "160"}).stdout  # fmt: skip
    rows = [line.split() for line in text.splitlines() if line.startswith("x ")]
    assert rows
    assert rows[0][:4] == ["x", "10", "→", "20"]  # the count, A → B
    exported = CliRunner().invoke(app, ["export", second, "--parquet", str(tmp_path / "out"),
                                        "--json", "--dir", str(root)])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["records"] == {"operations": 2}
    [row] = [r for r in records.read(tmp_path / "out", "operations").rows
             if r["operation"] == "x"]  # fmt: skip
    assert row["count"] == 20


def test_report_shows_operations_queries_and_failures_as_tables(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _python(root, """
        with jobmeter.Run("tables"):
            with ops.measure("load", {"table": "orders"}):
                pass
            try:
                with ops.measure("load", {"table": "orders"}):
                    raise ValueError("bad row")
            except ValueError:
                pass
    """)  # fmt: skip
    text = CliRunner().invoke(app, ["report", "--latest", "--dir", str(root)],
                              env={"COLUMNS": "160"}).stdout  # fmt: skip
    assert "top operations by total time (1 in all)" in text
    assert "load {table=orders}" in text
    assert "ValueError" in text
    assert "bad row" not in text  # messages are never recorded


# -- in this process: what recording costs when nothing records, and bad input -------------------


def test_without_a_run_nothing_is_kept_per_block() -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    import jobmeter

    assert routing.active is None
    ops = jobmeter.MetricsCollector("idle", meter_provider=MeterProvider())
    for _ in range(1000):
        with ops.measure("x"):
            pass
    store_: OperationTotals = ops._totals
    for series in store_._totals.values():
        assert series.pending is None
        assert series.durations is None
        assert len(series.blocks) < FOLD_AT  # folded into the totals as they come


def test_sixteen_threads_recorded_into_a_run_lose_no_block(tmp_path: Path) -> None:
    """Blocks append without a lock and the recorder drains meanwhile: every block counts once.

    One attribute set gets blocks with and without resources, from sixteen threads,
    while the recorder drains every 10 ms; the run's records must count them all,
    and add up to the duration histogram's exact count and sum.
    """
    import threading

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

    import jobmeter
    from jobmeter._rundata.recorder import Recorder

    reader = InMemoryMetricReader()
    ops = jobmeter.MetricsCollector("threads", meter_provider=MeterProvider([reader]))
    barrier = threading.Barrier(16)

    def work(i: int) -> None:
        barrier.wait()
        for n in range(600):
            with ops.measure("tick", resources=(i + n) % 3 == 0):
                pass

    recorder = Recorder(tmp_path, interval=0.01).start()
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        recorder.stop()
    found = records.read(tmp_path, "operations")
    assert found.skipped == 0
    assert len(found.rows) >= 2  # drained while the threads ran, not only at the end
    with_resources = sum(1 for i in range(16) for n in range(600) if (i + n) % 3 == 0)
    assert sum(row["count"] for row in found.rows) == 16 * 600
    assert sum(row["resources_count"] for row in found.rows) == with_resources
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = [
        p
        for m in data.resource_metrics[0].scope_metrics[0].metrics
        if m.name == "jobmeter.operation.duration"
        for p in m.data.data_points
    ]
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 16 * 600
    assert sum(row["duration_sum"] for row in found.rows) == pytest.approx(point.sum, rel=1e-9)


def test_bad_run_arguments_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobmeter

    with pytest.raises(ValueError, match="name must be a non-empty string"):
        jobmeter.Run("")
    with pytest.raises(ValueError, match=r"interval must be a number of seconds, 0\.05 or more"):
        jobmeter.Run(interval=0)
    monkeypatch.delenv(routing.RUN_ENV, raising=False)
    monkeypatch.setenv("JOBMETER_RUN_FLUSH_INTERVAL", "soon")
    monkeypatch.setenv("JOBMETER_STRICT", "true")
    with pytest.raises(jobmeter.ConfigurationError, match="JOBMETER_RUN_FLUSH_INTERVAL"):
        jobmeter.Run(directory=tmp_path).start()
    assert not list(tmp_path.iterdir())  # nothing was made


def test_a_bad_flush_interval_warns_and_the_run_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import jobmeter

    monkeypatch.delenv(routing.RUN_ENV, raising=False)
    monkeypatch.setenv("JOBMETER_RUN_FLUSH_INTERVAL", "soon")
    with jobmeter.Run(directory=tmp_path) as run:
        ops = jobmeter.MetricsCollector("flush")
        with ops.measure("op"):
            pass
    warnings = [
        r.getMessage() for r in caplog.records if "JOBMETER_RUN_FLUSH_INTERVAL" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "the default applies (5 s)" in warnings[0]
    assert run.directory is not None
    [row] = [r for r in records.read(run.directory, "operations").rows if r["operation"] == "op"]
    assert row["count"] == 1


def test_compaction_merges_processes_and_intervals(tmp_path: Path) -> None:
    """Rows of two pids and several intervals become one row per key, with merged sketches."""
    rows = []
    for pid, values in ((1, [0.001, 0.002]), (2, [0.003]), (1, [0.004, 0.005])):
        sketch = Sketch()
        sketch.add_sorted(values)
        rows.append({"t": 1.0, "pid": pid, "collector": "c", "operation": "op",
                     "attributes": "{}", "error_type": None, "count": len(values),
                     "resources_count": 0, "duration_sum": sum(values),
                     "duration_min": values[0], "duration_max": values[-1],
                     "duration_p50": 0.0, "duration_p95": 0.0,
                     "duration_sketch": sketch.to_json()})  # fmt: skip
    for pid in (1, 2):
        lines = [json.dumps(r) for r in rows if r["pid"] == pid]
        (tmp_path / f"operations.{pid}.jsonl").write_text("\n".join(lines) + "\n")
    assert records.compact(tmp_path) == {"operations": 1}
    [row] = records.read(tmp_path, "operations").rows
    assert (row["count"], row["pid"], row["duration_min"], row["duration_max"]) == (
        5, None, 0.001, 0.005)  # fmt: skip
    assert row["duration_sum"] == pytest.approx(0.015)
    assert row["duration_p50"] == pytest.approx(0.003, rel=RELATIVE_ERROR)
    assert row["cpu_sum"] is None
    assert not list(tmp_path.glob("*.jsonl"))


def test_operations_of_a_tenth_of_a_second_or_more_are_spans_on_the_plot(tmp_path: Path) -> None:
    from jobmeter.store._plot.data import load_run

    root = tmp_path / "runs"
    _python(root, """
        with jobmeter.Run("spans", interval=0.1):
            for i in range(100):
                with ops.measure("short"):
                    pass
            with ops.measure("load", {"table": "orders"}):
                time.sleep(0.3)
    """)  # fmt: skip
    data = load_run(store.resolve("latest", root).directory)
    [span] = data.operations
    assert span.name == "load"
    assert 0.3 <= span.end - span.start < 1.0
    assert 0 <= span.start <= data.samples[-1]["t"] - data.record["start"]


def test_a_run_directory_that_cannot_be_made_leaves_the_job_running_unrecorded(
    tmp_path: Path,
) -> None:
    """A file where the runs directory should be: one warning, the command's own exit code."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("in the way")
    root = blocker / "runs"
    code = "import jobmeter\nops = jobmeter.MetricsCollector('etl')\nwith ops.measure('x'): pass\n"
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--no-metrics", "--", sys.executable,
         "-c", code + "raise SystemExit(3)"],
        env=_env(root), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "cannot create the run directory" in done.stderr
    assert "Traceback" not in done.stderr
    block = 'with jobmeter.Run("blocked") as run:\n    with ops.measure("x"):\n        pass\n'
    inline = subprocess.run(
        [sys.executable, "-c", PRELUDE + block + "print(run.status)"],
        env=_env(root), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert inline.returncode == 0, inline.stderr
    assert inline.stdout.strip() == "succeeded"
    assert inline.stderr.count("cannot create the run directory") == 1
    assert "Traceback" not in inline.stderr


def test_a_parquet_file_of_an_older_run_without_the_newer_columns_still_reads(
    tmp_path: Path,
) -> None:
    """Columns added later (the peak's) read as null from an older run's Parquet file."""
    import duckdb

    target = tmp_path / "operations.parquet"
    duckdb.execute(
        "COPY (SELECT 1.5 AS t, 7::BIGINT AS pid, 'etl' AS collector, 'load' AS operation, "
        "'{}' AS attributes, NULL::VARCHAR AS error_type, 3::BIGINT AS count, "
        "3::BIGINT AS resources_count, 0.3::DOUBLE AS duration_sum) TO $path (FORMAT parquet)",
        {"path": str(target)},
    )
    found = records.read(tmp_path, "operations")
    assert found.skipped == 0
    [row] = found.rows
    assert (row["operation"], row["count"], row["duration_sum"]) == ("load", 3, 0.3)
    assert row["peak_max"] is None
    assert row["peak_sketch"] is None


def test_an_operation_keeps_the_bytes_its_blocks_wrote_as_the_kernel_counted(
    tmp_path: Path,
) -> None:
    """io_write_total_bytes equals /proc/self/io's write_bytes over the blocks (kernel's count)."""
    root = tmp_path / "runs"
    done = _python(root, f"""
        def counted():
            with open("/proc/self/io") as f:
                io = dict(line.split(": ") for line in f.read().splitlines())
            return int(io["write_bytes"]), int(io["read_bytes"])
        kernel, kernel_read = 0, 0
        with jobmeter.Run("io", interval=0.1) as run:
            for i in range(3):
                before = counted()
                with ops.measure("write"):
                    with open({str(tmp_path)!r} + f"/out{{i}}", "wb") as f:
                        f.write(os.urandom(2 * 2**20))
                        f.flush()
                        os.fsync(f.fileno())
                after = counted()
                kernel += after[0] - before[0]
                kernel_read += after[1] - before[1]
            with ops.measure("cached", resources=False):
                pass
        print(json.dumps({{"kernel": kernel, "kernel_read": kernel_read}}))
    """)  # fmt: skip
    counted = json.loads(done.stdout)
    kernel = counted["kernel"]
    ops = _by_label(_report(root))
    assert kernel >= 6 * 2**20  # the file system wrote through to a device
    assert ops["write"]["io_write_total_bytes"] == kernel
    # Usually 0; a page the kernel had evicted (a busy machine) is read back, and counted.
    assert ops["write"]["io_read_total_bytes"] == counted["kernel_read"]
    assert ops["cached"]["io_write_total_bytes"] is None  # no resources: not measured
