"""jobmeter.cometml in Comet's offline mode: what lands in the archive Comet writes.

Comet cannot be reached from the tests; its offline mode writes the same
messages into a zip (``messages.json`` plus the asset files) that ``comet
upload`` would send, and the tests open that zip.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from jobmeter import cometml, store
from jobmeter.cometml import _log as comet_log

_RUN_SCRIPT = """
import time
import jobmeter

ops = jobmeter.MetricsCollector("etl")
with jobmeter.Run("comet-etl", interval=0.1, comet=True) as run:
    con = jobmeter.duckdb.connect()
    with ops.measure("extract", {"table": "orders"}):
        con.execute("CREATE TABLE orders AS SELECT range AS id, range % 7 AS customer "
                    "FROM range(?)", [20000])
    for day in range(5):
        with ops.measure("aggregate"):
            con.execute("SELECT customer, count(*) FROM orders WHERE id % 5 = ? "
                        "AND 'sEcReT-4711' <> '' GROUP BY customer", [day]).fetchall()
    with ops.measure("publish"):
        time.sleep(0.3)
print(run.directory)
"""


@dataclass
class Archive:
    """One offline experiment's zip, read back."""

    experiment: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    others: dict[str, Any] = field(default_factory=dict)
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def metric(self, name: str) -> list[tuple[int | None, float]]:
        return [(m["step"], m["metricValue"]) for m in self.metrics if m["metricName"] == name]


def read_archive(directory: Path) -> Archive:
    (path,) = directory.glob("*.zip")
    with zipfile.ZipFile(path) as archive:
        out = Archive(json.loads(archive.read("experiment.json")))
        for line in archive.read("messages.json").decode().splitlines():
            if not line.strip():
                continue
            message = json.loads(line)
            payload = message["payload"]
            if message["type"] == "metric_msg":
                out.metrics.append(payload["metric"])
            elif message["type"] == "parameter_msg" and payload["param"]["source"] == "manual":
                out.parameters[payload["param"]["paramName"]] = payload["param"]["paramValue"]
            elif message["type"] == "log_other":
                out.others[payload["key"]] = payload["value"]
            elif message["type"] == "file_upload":
                name = payload["additional_params"]["fileName"]
                data = archive.read(payload["file_path"]).decode()
                if payload["upload_type"] == "histogram3d":
                    out.histograms[name] = json.loads(data)
                else:
                    out.tables[name] = list(csv.DictReader(io.StringIO(data)))
    return out


def histogram_counts(histogram: dict[str, Any]) -> int:
    return sum(count for _, count in histogram["index_values"])


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[store.StoredRun, Archive]:
    """A real ``jobmeter.Run(comet=True)`` in a subprocess, logged offline at its end."""
    tmp = tmp_path_factory.mktemp("comet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMET_", "JOBMETER_"))}
    env.update(COMET_OFFLINE_DIRECTORY=str(tmp / "comet"), JOBMETER_RUN_DIR=str(tmp / "runs"),
               OTEL_SDK_DISABLED="true")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", _RUN_SCRIPT], capture_output=True, text=True,
                          env=env, cwd=tmp, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = store.resolve("latest", root=tmp / "runs")
    assert str(run.directory) == done.stdout.strip().splitlines()[-1]
    return run, read_archive(tmp / "comet")


def test_run_summary_lands_as_metrics(logged_run: tuple[store.StoredRun, Archive]) -> None:
    """Wall time, CPU, peak memory and samples equal run.json's summary."""
    run, archive = logged_run
    summary = run.record["summary"]
    assert run.state == "succeeded"
    for name in ("wall_seconds", "cpu_user_seconds", "peak_memory_bytes", "samples",
                 "peak_rss_sampled_bytes", "read_bytes"):  # fmt: skip
        ((step, value),) = archive.metric(f"jobmeter/{name}")
        assert step is None
        assert value == pytest.approx(summary[name])
    assert archive.metric("jobmeter/exit_code") == [(None, 0)]
    assert archive.others["jobmeter/status"] == "succeeded"
    assert archive.others["jobmeter/peak_memory_source"] == summary["peak_memory_source"]


def test_identity_and_machine_land_as_parameters(
    logged_run: tuple[store.StoredRun, Archive],
) -> None:
    run, archive = logged_run
    assert archive.parameters["jobmeter/run_id"] == run.id
    assert archive.parameters["jobmeter/run_name"] == "comet-etl"
    assert archive.others["Name"] == "comet-etl"  # the experiment is named after the run
    host = run.record["host"]
    assert archive.parameters["jobmeter/host/host.name"] == host["host.name"]
    assert len([p for p in archive.parameters if p.startswith("jobmeter/host/")]) == len(host)


def test_samples_land_as_metrics_over_time(logged_run: tuple[store.StoredRun, Archive]) -> None:
    run, archive = logged_run
    samples = [
        json.loads(line) for line in (run.directory / "usage.jsonl").read_text().splitlines()
    ]
    assert len(samples) >= 3
    assert archive.metric("jobmeter/usage/pss") == [(i, s["pss"]) for i, s in enumerate(samples)]
    cpu = archive.metric("jobmeter/usage/cpu_utilization")
    assert [step for step, _ in cpu] == list(range(len(samples)))
    elapsed = archive.metric("jobmeter/usage/elapsed_seconds")
    assert elapsed[-1][1] == pytest.approx(samples[-1]["t"] - run.record["start"])


def test_operations_land_as_histograms(logged_run: tuple[store.StoredRun, Archive]) -> None:
    """One histogram per operation, with exact call counts."""
    _, archive = logged_run
    counts = {name: histogram_counts(h) for name, h in archive.histograms.items()}
    assert counts == {
        "jobmeter/operation/etl/extract {table=orders}": 1,
        "jobmeter/operation/etl/aggregate": 5,
        "jobmeter/operation/etl/publish": 1,
    }


def test_tables_hold_operations_and_query_summaries(
    logged_run: tuple[store.StoredRun, Archive],
) -> None:
    """Query shapes land as fingerprints, with no literal; operations with their figures."""
    run, archive = logged_run
    queries = {row["summary"]: row for row in archive.tables["jobmeter-queries.csv"]}
    report = store.report(run)
    assert set(queries) == {q["summary"] for q in report.records.queries}
    select = next(row for summary, row in queries.items() if summary.startswith("SELECT"))
    assert select["count"] == "5"
    assert "?" in select["shape"]  # the masked statement; the summary has names only
    assert len(select["shape_hash"]) == 12
    assert "sEcReT-4711" not in json.dumps(archive.tables)  # an SQL literal never leaves
    operations = {row["operation"]: row for row in archive.tables["jobmeter-operations.csv"]}
    assert operations["aggregate"]["count"] == "5"
    assert json.loads(operations["extract"]["attributes"]) == {"table": "orders"}
    publish = next(op for op in report.records.operations if op["operation"] == "publish")
    assert float(operations["publish"]["total_seconds"]) == publish["duration_total_seconds"]


def test_cli_run_comet_logs_offline(tmp_path: Path) -> None:
    """``jobmeter run --comet -- CMD`` logs the run at its end and keeps the exit status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMET_", "JOBMETER_"))}
    env.update(COMET_OFFLINE_DIRECTORY=str(tmp_path / "comet"), OTEL_SDK_DISABLED="true")
    command = [
        sys.executable,
        "-m",
        "jobmeter",
        "run",
        "--comet",
        "--no-metrics",
        "-q",
        "--dir",
        str(tmp_path / "runs"),
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(3)",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 3, done.stderr
    run = store.resolve("latest", root=tmp_path / "runs")
    archive = read_archive(tmp_path / "comet")
    assert archive.parameters["jobmeter/run_id"] == run.id
    assert archive.metric("jobmeter/exit_code") == [(None, 3)]
    assert archive.others["jobmeter/status"] == "failed"


@pytest.fixture
def no_comet_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("COMET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.comet.config
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_comet_settings")
def test_no_key_and_no_offline_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        assert cometml.log_label_distribution([1, 2], "labels") is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "jobmeter"]
    assert len(warnings) == 1
    assert "no COMET_API_KEY" in warnings[0]
    assert "COMET_OFFLINE_DIRECTORY" in warnings[0]


@pytest.mark.usefixtures("no_comet_settings")
def test_run_hook_without_settings_warns_and_the_run_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import jobmeter

    with (
        caplog.at_level(logging.WARNING, logger="jobmeter"),
        jobmeter.Run("no-comet", directory=tmp_path / "runs", comet=True) as run,
    ):
        pass
    assert run.status == "succeeded"
    assert any("no COMET_API_KEY" in r.getMessage() for r in caplog.records)


def test_label_distribution_of_a_list_a_series_and_duckdb(tmp_path: Path) -> None:
    """Exact counts in the histograms and tables, for every kind of input."""
    import comet_ml
    import pandas as pd

    experiment = comet_ml.OfflineExperiment(offline_directory=str(tmp_path), **comet_log._QUIET)
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT (range % 3)::INT AS label FROM range(10)")
    for values, name in [
        (["cat", "dog", "cat", "bird", "cat", "dog"], "list"),
        (pd.Series([1, 1, 0, 1, float("nan")]), "series"),
        ((con, "SELECT label FROM t WHERE label > 0"), "sql"),
        (con.sql("SELECT label FROM t"), "relation"),
    ]:
        assert cometml.log_label_distribution(values, name, experiment=experiment) is experiment
    experiment.end()
    archive = read_archive(tmp_path)
    table = {name: [(r["label"], int(r["count"])) for r in rows]
             for name, rows in archive.tables.items()}  # fmt: skip
    assert table["list.csv"] == [("cat", 3), ("dog", 2), ("bird", 1)]
    assert table["series.csv"] == [("1.0", 3), ("0.0", 1), ("null", 1)]
    assert table["sql.csv"] == [("1", 3), ("2", 3)]
    assert table["relation.csv"] == [("0", 4), ("1", 3), ("2", 3)]
    assert {n: histogram_counts(h) for n, h in archive.histograms.items()} == {
        "list": 6, "series": 5, "sql": 6, "relation": 10}  # fmt: skip
    assert sorted(c for _, c in archive.histograms["list"]["index_values"]) == [1, 2, 3]
    assert archive.metric("list/classes") == [(0, 3)]  # the histogram's step
    assert archive.metric("relation/majority_fraction") == [(0, 0.4)]
    assert "SELECT" not in json.dumps([archive.tables, archive.others, archive.parameters])


@pytest.mark.parametrize(
    ("values", "error"),
    [("cat", TypeError), (42, TypeError), ([["a"]], TypeError), ({"a": -1}, ValueError),
     ([], ValueError)],
)  # fmt: skip
def test_bad_label_input_is_a_clear_error(values: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"label|values|no labels"):
        cometml.log_label_distribution(values, "x", offline=False)


def test_relation_of_two_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly one column"):
        cometml.log_label_distribution(duckdb.sql("SELECT 1 AS a, 2 AS b"), "x")


def test_bad_run_arguments_are_clear_errors(tmp_path: Path) -> None:
    import jobmeter

    with pytest.raises(ValueError, match="accepted: offline, project_name, workspace"):
        jobmeter.Run(comet={"api": "x"})
    with pytest.raises(ValueError, match="comet must be True, False or a mapping"):
        jobmeter.Run(comet="yes")  # type: ignore[arg-type]
    with pytest.raises(store.StoreError, match="not a run directory"):
        cometml.log_run(tmp_path)
    with pytest.raises(TypeError, match="run must be"):
        cometml.log_run(42)  # type: ignore[arg-type]


def test_comet_ml_is_imported_only_when_used() -> None:
    """``import jobmeter``, the CLI, ``jobmeter.cometml`` and a plain Run leave comet_ml alone."""
    script = textwrap.dedent(
        """
        import sys, tempfile
        import jobmeter, jobmeter.cli, jobmeter.cometml
        with jobmeter.Run("plain", directory=tempfile.mkdtemp()):
            pass
        from typer.testing import CliRunner
        CliRunner().invoke(jobmeter.cli.app, ["report", "--latest"])
        assert "comet_ml" not in sys.modules, "comet_ml was imported"
        print("lazy")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.strip() == "lazy", done.stderr


def test_a_comet_that_does_not_answer_holds_the_end_of_a_run_at_most_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable Comet retries for half a minute: the run's end waits TIMEOUT_S at most."""
    import threading
    import time as clock

    from jobmeter import cometml
    from jobmeter.run import _comet

    release = threading.Event()
    monkeypatch.setattr(cometml, "log_run", lambda *args, **kwargs: release.wait(30))
    started = clock.monotonic()
    with caplog.at_level("WARNING", logger="jobmeter"):
        assert _comet.log_at_end(tmp_path, {}, timeout=0.2) is False
    release.set()
    assert clock.monotonic() - started < 2.0
    assert "did not finish logging run" in caplog.text
