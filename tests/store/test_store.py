"""The run store read back: jobmeter.store and the runs/report/compare/advise/export/gc commands.

Real runs are made by ``jobmeter run`` subprocesses of small Python workloads
in a tmp_path store; runs with exact known figures are written directly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from jobmeter import store
from jobmeter.cli import app

MIB = 2**20
GIB = 2**30
ALLOCATE = (
    "import time; x = bytearray({mib} * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(0.4)"
)


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "JOBMETER_RUN_DIR": str(root), "OTEL_METRICS_EXPORTER": "none"}


def _jobmeter_run(root: Path, name: str, code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "-q", "-i", "0.1", "--name", name,
         "--", sys.executable, "-c", code],
        env=_env(root), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs: one allocating 50 MiB, then one allocating 150 MiB."""
    root = tmp_path_factory.mktemp("store") / "runs"
    _jobmeter_run(root, "small", ALLOCATE.format(mib=50))
    time.sleep(1.1)  # ids sort by start second
    _jobmeter_run(root, "large", ALLOCATE.format(mib=150))
    return root


def _cli(root: Path | None, *args: str) -> Any:
    extra = ["--dir", str(root)] if root is not None else []
    return CliRunner().invoke(app, [*args, *extra])


def _samples(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]


def _write_run(
    root: Path, run_id: str, peak: int, cpu: float, *, name: str = "etl", gpu: int | None = None
) -> Path:
    """A finished run with exactly known figures, and 20 samples at ``cpu`` CPUs."""
    directory = root / run_id
    directory.mkdir(parents=True)
    summary: dict[str, Any] = {n: 0 for n in store.FIGURES if n != "peak_memory_source"}
    summary.update(peak_memory_bytes=peak, peak_memory_source="samples (PSS of the tree)",
                   peak_gpu_memory_bytes=gpu, samples=20, wall_seconds=10.0)  # fmt: skip
    record = {"id": run_id, "name": name, "status": "succeeded", "start": 1.7e9, "end": 1.7e9 + 10,
              "exit_code": 0, "interval_seconds": 0.5, "summary": summary}  # fmt: skip
    (directory / "run.json").write_text(json.dumps(record))
    lines = [json.dumps({"t": 1.7e9 + i / 2, "pss": peak, "cpu_utilization": cpu,
                         "gpu_memory": gpu}) for i in range(20)]  # fmt: skip
    (directory / "usage.jsonl").write_text("\n".join(lines) + "\n")
    return directory


def test_runs_are_listed_newest_first_with_their_figures(real_store: Path) -> None:
    """`jobmeter runs --json` lists both runs, newest first, with the documented keys."""
    result = _cli(real_store, "runs", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == ["large", "small"]
    assert set(rows[0]) == {"id", "name", "start", "duration_seconds", "status", "exit_code",
                            "peak_memory_bytes"}  # fmt: skip
    assert all(row["status"] == "succeeded" for row in rows)
    table = _cli(real_store, "runs")
    assert rows[0]["id"] in table.stdout


def test_report_figures_are_the_summary_and_the_samples(real_store: Path) -> None:
    """The report gives run.json's summary, and the sample count and p95 of usage.jsonl."""
    run = store.resolve("latest", real_store)
    summary = run.record["summary"]
    report = store.report(run)
    assert report.source == "summary"
    for name in store.FIGURES:
        if name.startswith("energy_"):  # from summary["energy_joules"], by domain
            domain = name.removeprefix("energy_").removesuffix("_joules")
            energy = summary["energy_joules"] or {}
            expected = sum(energy.values()) if domain == "total" and energy else energy.get(domain)
            assert report.figures[name] == expected, name
        elif name not in ("samples", "cpu_utilization_p95"):
            assert report.figures[name] == summary[name], name
    samples = _samples(run.directory)
    assert report.figures["samples"] == len(samples) == summary["samples"]
    assert 150 * MIB <= report.figures["peak_memory_bytes"] < 200 * MIB
    result = _cli(real_store, "report", "--latest", "--json")
    data = json.loads(result.stdout)
    assert set(data) >= {"id", "name", "status", "start", "figures", "source", "samples_read",
                         "skipped_lines", "warnings", "operations", "queries"}  # fmt: skip
    assert set(data["figures"]) == set(store.FIGURES)
    assert data["id"] == run.id
    table = _cli(real_store, "report", "--latest")
    assert "peak memory" in table.stdout
    assert "no GPU" in table.stdout


def test_compare_gives_the_change_between_50_and_150_mib(real_store: Path) -> None:
    """compare of the 50 MiB and 150 MiB runs: about +100 MiB of peak memory."""
    small, large = store.list_runs(real_store)
    result = _cli(real_store, "compare", small.id, large.id[:-2], "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["figures"]["peak_memory_bytes"]
    assert row["a"] == small.record["summary"]["peak_memory_bytes"]
    assert row["b"] == large.record["summary"]["peak_memory_bytes"]
    assert row["change"] == row["b"] - row["a"]
    assert 85 * MIB < row["change"] < 115 * MIB
    assert row["change_percent"] == pytest.approx(row["change"] / row["a"] * 100)
    shown = _cli(real_store, "compare", small.id, large.id).stdout
    assert "peak memory" in shown  # a label, not the JSON key
    assert "peak_memory_bytes" not in shown


def test_export_writes_parquet_duckdb_reads_back(real_store: Path, tmp_path: Path) -> None:
    """run.parquet has one row, usage.parquet as many rows as usage.jsonl."""
    run = store.resolve("latest", real_store)
    result = _cli(real_store, "export", run.id, "--parquet", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    with duckdb.connect() as con:
        (rows,) = con.execute(
            "SELECT count(*) FROM read_parquet(?)", [written["usage"]]
        ).fetchone() or (0,)
        (rid, peak) = con.execute(
            "SELECT id, summary_peak_memory_bytes FROM read_parquet(?)", [written["run"]]
        ).fetchone() or (None, None)
    assert rows == written["samples"] == len(_samples(run.directory))
    assert (rid, peak) == (run.id, run.record["summary"]["peak_memory_bytes"])


def test_a_sigkilled_wrapper_leaves_an_incomplete_run_reported_from_its_samples(
    tmp_path: Path,
) -> None:
    """run.json says "running", the wrapper is gone: incomplete, figures from usage.jsonl."""
    root = tmp_path / "runs"
    code = ALLOCATE.format(mib=80).replace("sleep(0.4)", "sleep(2)")
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "-q", "-i", "0.1", "--name", "killed",
         "--", sys.executable, "-c", code],
        env=_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        usage = list(root.glob("*/usage.jsonl"))
        if usage and any(
            json.loads(line)["pss"] > 80 * MIB for line in usage[0].read_text().splitlines()
        ):
            break
        time.sleep(0.1)
    assert store.list_runs(root)[0].state == "running"  # its wrapper holds usage.jsonl open
    wrapper.send_signal(signal.SIGKILL)
    wrapper.wait()
    (run,) = store.list_runs(root)
    assert run.record["status"] == "running"
    assert run.state == "incomplete"
    samples = _samples(run.directory)
    report = store.report(run)
    assert report.source == "samples"
    figures = report.figures
    assert figures["samples"] == len(samples)
    assert figures["peak_pss_sampled_bytes"] == max(s["pss"] for s in samples)
    assert figures["peak_rss_sampled_bytes"] == max(s["rss"] for s in samples)
    assert figures["peak_memory_bytes"] == max(max(s["pss"], s["hwm"]) for s in samples)
    assert figures["cpu_user_seconds"] == max(s["cpu_user_total"] for s in samples)
    assert figures["cpu_utilization_peak"] == max(s["cpu_utilization"] for s in samples)
    assert figures["peak_processes"] == max(s["processes"] for s in samples)
    assert figures["peak_memory_bytes"] > 80 * MIB
    (row,) = json.loads(_cli(root, "runs", "--json").stdout)
    assert row["status"] == "incomplete"
    assert row["peak_memory_bytes"] == figures["peak_memory_bytes"]
    result = _cli(root, "report", "--latest")
    assert "incomplete" in result.stdout
    assert "usage.jsonl samples" in result.stdout


def test_damaged_usage_is_read_with_one_warning(
    real_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage lines and a line cut mid-way are skipped, counted once in one warning."""
    root = tmp_path / "runs"
    source = store.resolve("latest", real_store).directory
    damaged = root / source.name
    damaged.mkdir(parents=True)
    (damaged / "run.json").write_text((source / "run.json").read_text())
    good = (source / "usage.jsonl").read_text()
    (damaged / "usage.jsonl").write_text(good + "not json at all\n" + good.splitlines()[0][:25])
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        report = store.report(store.resolve("latest", root))
    assert report.skipped_lines == 2
    assert report.samples_read == len(good.splitlines())
    messages = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(messages) == 1
    assert len(caplog.records) == 1  # one warning in all
    assert "skipped 2 unreadable line(s)" in messages[0]
    assert "usage.jsonl" in messages[0]
    result = _cli(root, "report", "--latest")
    assert result.exit_code == 0
    assert result.stderr.count("skipped 2 unreadable line(s)") == 1


def test_unknown_run_exits_2_with_close_matches(tmp_path: Path) -> None:
    """A typo of a run's name or id: exit status 2, and the close ones are listed."""
    root = tmp_path / "runs"
    nightly = _write_run(root, "20261101T000000Z-aaaaaa", GIB, 1.0, name="nightly-etl")
    _write_run(root, "20261102T000000Z-bbbbbb", GIB, 1.0, name="weekly")
    result = _cli(root, "report", "nightly-elt")
    assert result.exit_code == 2
    assert f"did you mean: {nightly.name} (nightly-etl)" in result.stderr
    result = _cli(root, "report", "20261101T000000Z-aaaaab")
    assert result.exit_code == 2
    assert nightly.name in result.stderr
    assert _cli(root, "report", "2026").exit_code == 2  # not unique
    assert _cli(root, "report", "20261102").exit_code == 0  # a unique prefix
    assert store.resolve("nightly-etl", root).id == nightly.name  # a name: its newest run


def test_an_empty_store_says_how_to_make_a_run(tmp_path: Path) -> None:
    """runs: message and exit 0 (nothing listed); report/advise: message and exit 2."""
    root = tmp_path / "runs"
    listed = _cli(root, "runs")
    assert listed.exit_code == 0
    assert "jobmeter run -- CMD" in listed.stderr
    assert json.loads(_cli(root, "runs", "--json").stdout) == []
    for args in (("report", "--latest"), ("advise",), ("compare", "a", "b")):
        result = _cli(root, *args)
        assert result.exit_code == 2, args
        assert "jobmeter run -- CMD" in result.stderr


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([10, 20, 30], 95, 29.0),
        ([1, 2, 3, 4, 5], 95, 4.8),
        ([5, 1, 4, 2, 3], 25, 2.0),
        ([7], 95, 7.0),
        ([1, 9], 0, 1.0),
        ([1, 9], 100, 9.0),
    ],
)
def test_percentile_interpolates_linearly_as_numpy(
    values: list[float], q: float, expected: float
) -> None:
    """The values of numpy.percentile(values, q) with its default (linear) method."""
    assert store.percentile(values, q) == pytest.approx(expected)


def test_advise_is_the_percentile_of_the_peaks_plus_headroom_rounded_up(tmp_path: Path) -> None:
    """Peaks 1..5 GiB: p95 4.8 GiB, +20 % = 5.76 GiB, request 6 GiB; CPUs p95 2.8 → 3.36 → 3.5."""
    root = tmp_path / "runs"
    cpus = [0.5, 1.0, 1.5, 2.0, 3.0]
    for i, cpu in enumerate(cpus):
        _write_run(
            root, f"2026110{i + 1}T000000Z-00000{i}", (i + 1) * GIB, cpu, gpu=(i + 1) * 100 * MIB
        )
    _write_run(root, "20261109T000000Z-999999", 64 * GIB, 16.0, name="other")
    result = _cli(root, "advise", "--name", "etl", "--json")
    assert result.exit_code == 0, result.output
    advice = json.loads(result.stdout)
    assert set(advice) == {"basis", "runs", "percentile", "headroom", "memory_bytes", "cpus",
                           "gpu_memory_bytes", "energy_joules", "cost_per_run",
                           "cost_per_run_advised", "currency", "held_now",
                           "operations"}  # fmt: skip
    assert advice["energy_joules"] is None  # no run metered energy here
    assert advice["cost_per_run"] is None  # no price set
    assert len(advice["runs"]) == 5
    assert "measured usage" in advice["basis"]
    memory = advice["memory_bytes"]
    assert memory["observed"] == pytest.approx(4.8 * GIB)
    assert memory["with_headroom"] == pytest.approx(5.76 * GIB)
    assert memory["request"] == 6 * GIB
    assert advice["cpus"]["observed"] == pytest.approx(2.8)
    assert advice["cpus"]["request"] == 3.5
    assert advice["gpu_memory_bytes"]["observed"] == pytest.approx(480 * MIB)
    assert advice["gpu_memory_bytes"]["request"] == 768 * MIB  # 576 MiB up to 256 MiB steps
    last = json.loads(_cli(root, "advise", "--name", "etl", "--last", "2", "--percentile", "50",
                           "--headroom", "0", "--json").stdout)  # fmt: skip
    assert last["memory_bytes"]["observed"] == pytest.approx(4.5 * GIB)
    assert last["runs"] == advice["runs"][-2:]
    table = _cli(root, "advise", "--name", "etl")
    assert "measured usage" in table.stdout
    assert advice["runs"][0] in table.stdout
    nothing = _cli(root, "advise", "--name", "nope")
    assert nothing.exit_code == 2
    assert "no finished run" in nothing.stderr


def test_advise_over_a_real_run(real_store: Path) -> None:
    """One real run: the request covers its peak plus headroom."""
    (run,) = [r for r in store.list_runs(real_store) if r.name == "large"]
    advice = store.advise([run], 95, 0.2)
    peak = run.record["summary"]["peak_memory_bytes"]
    assert advice.memory_bytes.observed == peak
    assert advice.memory_bytes.request >= peak * 1.2
    assert advice.memory_bytes.request % (256 * MIB) == 0
    assert advice.gpu_memory_bytes is None


def test_gc_keeps_the_newest_n(tmp_path: Path) -> None:
    """gc --keep 2 deletes the older runs; --dry-run deletes nothing."""
    root = tmp_path / "runs"
    ids = [_write_run(root, f"2026110{i}T000000Z-00000{i}", GIB, 1.0).name for i in range(1, 5)]
    dry = json.loads(_cli(root, "gc", "--keep", "2", "--dry-run", "--json").stdout)
    assert dry == {"dry_run": True, "would_delete": ids[:2], "kept": 2}
    assert len(store.list_runs(root)) == 4
    result = _cli(root, "gc", "--keep", "2")
    assert result.exit_code == 0
    assert f"deleted {ids[0]}" in result.stdout
    assert [run.id for run in store.list_runs(root)] == ids[2:]


def test_run_store_md_documents_every_figure_and_command() -> None:
    """docs/run-store.md names every report figure and every store command."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "run-store.md").read_text()
    for name in store.FIGURES:
        assert f"`{name}`" in text, name
    for command in ("runs", "report", "compare", "advise", "export", "gc"):
        assert f"## `jobmeter {command}" in text, command


def test_a_running_run_from_another_host_is_incomplete_once_its_files_are_stale(
    tmp_path: Path,
) -> None:
    """Where /proc cannot tell (another host): fresh files are running, stale ones incomplete."""
    root = tmp_path / "runs"
    directory = _write_run(root, "20261101T000000Z-cccccc", GIB, 1.0)
    record = json.loads((directory / "run.json").read_text())
    record.update(status="running", end=None, host={"host.name": "another-node"})
    (directory / "run.json").write_text(json.dumps(record))
    assert store.list_runs(root)[0].state == "running"
    stale = time.time() - 120
    for name in ("run.json", "usage.jsonl"):
        os.utime(directory / name, (stale, stale))
    (run,) = store.list_runs(root)
    assert run.state == "incomplete"
    assert store.report(run).source == "samples"


def test_a_dead_wrapper_pid_marks_the_run_incomplete_even_if_its_file_is_open(
    tmp_path: Path,
) -> None:
    """run.json's wrapper pid decides first: here usage.jsonl is held open, the pid is gone."""
    directory = _write_run(tmp_path, "20261123T000000Z-000001", 1, 0.5)
    record = json.loads((directory / "run.json").read_text())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record.update(status="running", end=None, summary=None, pid=gone.pid,
                  host={"host.name": os.uname().nodename})  # fmt: skip
    (directory / "run.json").write_text(json.dumps(record))
    with open(directory / "usage.jsonl", "a", encoding="utf-8"):  # as a live wrapper would
        assert [run.state for run in store.list_runs(tmp_path)] == ["incomplete"]
        record["pid"] = os.getpid()  # a live pid: the open file says it is running
        (directory / "run.json").write_text(json.dumps(record))
        assert [run.state for run in store.list_runs(tmp_path)] == ["running"]


def test_a_run_records_its_wrappers_pid(tmp_path: Path) -> None:
    _jobmeter_run(tmp_path, "pid", "pass")
    (run,) = store.list_runs(tmp_path)
    assert isinstance(run.record["pid"], int)
    assert run.record["pid"] != os.getpid()


def test_a_run_whose_store_failed_is_shown_incomplete(tmp_path: Path) -> None:
    """run.json says incomplete (the disk filled): the state says so; the exit status stays."""
    directory = _write_run(tmp_path, "20261124T000000Z-abcdef", 2**20, 0.5)
    record = json.loads((directory / "run.json").read_text())
    record.update(incomplete=True, store_error="cannot write usage.jsonl", status="failed",
                  exit_code=3)  # fmt: skip
    (directory / "run.json").write_text(json.dumps(record))
    [run] = store.list_runs(tmp_path)
    assert run.state == "incomplete"
    assert store.report(run).to_json()["recorded_status"] == "failed"


# -- DuckDB queries: the convention's summary, and each masked shape with its hash -------------

QUERIES = """
import jobmeter.duckdb
con = jobmeter.duckdb.connect()
con.execute("CREATE TABLE orders AS SELECT range AS id, range % 4 AS region FROM range(1000)")
for i in range({by_id}):
    con.execute(f"SELECT * FROM orders WHERE id = {{i}}").fetchall()
for i in range(4):
    con.execute(f"SELECT count(*) FROM orders WHERE region = {{i}}").fetchall()
con.close()
"""
BY_ID = "SELECT * FROM orders WHERE id = ?"
BY_REGION = "SELECT count(*) FROM orders WHERE region = ?"


def _blake2b_12(text: str) -> str:
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@pytest.fixture(scope="module")
def query_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of the same DuckDB job: 30, then 60 lookups by id, and 4 counts by region."""
    root = tmp_path_factory.mktemp("queries") / "runs"
    _jobmeter_run(root, "db", QUERIES.format(by_id=30))
    time.sleep(1.1)  # ids sort by start second
    _jobmeter_run(root, "db", QUERIES.format(by_id=60))
    return root


def test_queries_are_kept_per_shape_under_their_summary(query_store: Path) -> None:
    """Two shapes of `SELECT orders`: each its own row, masked shape and 12-hex blake2b."""
    first = store.list_runs(query_store)[0]
    queries = {q["shape"]: q for q in store.report(first).records.queries}
    assert set(queries) == {BY_ID, BY_REGION, "CREATE TABLE orders AS SELECT RANGE AS id, "
                            "RANGE % ? AS region FROM RANGE (?)"}  # fmt: skip
    by_id, by_region = queries[BY_ID], queries[BY_REGION]
    assert (by_id["summary"], by_id["count"], by_id["rows"]) == ("SELECT orders", 30, 30)
    assert (by_region["summary"], by_region["count"], by_region["rows"]) == ("SELECT orders", 4, 4)
    assert by_id["shape_hash"] == _blake2b_12(BY_ID)
    assert by_region["shape_hash"] == _blake2b_12(BY_REGION)
    with duckdb.connect() as connection:
        rows = connection.execute(
            "SELECT summary, shape, shape_hash, count FROM read_parquet(?) ORDER BY count",
            [str(Path(first.directory) / "queries.parquet")],
        ).fetchall()
    assert rows[1:] == [("SELECT orders", BY_REGION, _blake2b_12(BY_REGION), 4),
                        ("SELECT orders", BY_ID, _blake2b_12(BY_ID), 30)]  # fmt: skip


def test_report_shows_summary_and_hash_on_one_line(query_store: Path) -> None:
    """The text report: each shape's summary with its #hash; the full shape in --json."""
    result = CliRunner().invoke(app, ["report", "--latest", "--dir", str(query_store)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "top DuckDB queries by total time (3 shapes)" in lines
    for shape in (BY_ID, BY_REGION):  # in a pipe a row is one line: grep finds it whole
        (row,) = [line for line in lines if f"#{_blake2b_12(shape)}" in line]
        assert row.startswith(f"SELECT orders #{_blake2b_12(shape)} ")
    shown = json.loads(_cli(query_store, "report", "--latest", "--json").stdout)
    assert {q["shape"] for q in shown["queries"]} >= {BY_ID, BY_REGION}


def test_compare_matches_queries_by_shape(query_store: Path) -> None:
    """Two runs: each shape of `SELECT orders` is matched with its own, counts side by side."""
    first, second = (run.id for run in store.list_runs(query_store))
    result = _cli(query_store, "compare", first, second, "--json")
    assert result.exit_code == 0, result.output
    matched = {tuple(row["key"]): row for row in json.loads(result.stdout)["queries"]}
    by_id = matched[("memory", "SELECT orders", _blake2b_12(BY_ID))]
    by_region = matched[("memory", "SELECT orders", _blake2b_12(BY_REGION))]
    assert (by_id["a"]["count"], by_id["b"]["count"], by_id["count_change_percent"]) == (
        30, 60, 100.0)  # fmt: skip
    assert (by_region["a"]["count"], by_region["b"]["count"]) == (4, 4)


def test_a_run_recorded_before_shapes_still_reads(tmp_path: Path) -> None:
    """queries.parquet without shape columns (older jobmeter): read, reported, no hash."""
    directory = _write_run(tmp_path, "20261124T000000Z-abcdef", 2**20, 0.5)
    old = directory / "queries.parquet"
    duckdb.execute(
        "COPY (SELECT 1.7e9 AS t, 7::BIGINT AS pid, 'shop' AS namespace, 'SELECT' AS operation, "
        "'SELECT * FROM orders WHERE id = ?' AS summary, NULL::VARCHAR AS error_type, "
        "12::BIGINT AS count, 12::BIGINT AS rows, 1::BIGINT AS rows_max, "
        "0.5::DOUBLE AS duration_sum, 0.01::DOUBLE AS duration_min, 0.1::DOUBLE AS duration_max, "
        "0.04::DOUBLE AS duration_p50, 0.09::DOUBLE AS duration_p95, "
        f"NULL::VARCHAR AS duration_sketch) TO '{old}' (FORMAT parquet)"
    )
    [run] = store.list_runs(tmp_path)
    [query] = store.report(run).records.queries
    assert (query["summary"], query["shape"], query["shape_hash"], query["count"]) == (
        "SELECT * FROM orders WHERE id = ?", None, None, 12)  # fmt: skip
    assert query["duration_total_seconds"] == 0.5
    result = CliRunner().invoke(app, ["report", "--latest", "--dir", str(tmp_path)],
                                env={"COLUMNS": "160"})  # fmt: skip
    assert result.exit_code == 0, result.output
    table = result.stdout.split("top DuckDB queries")[1]
    assert "SELECT * FROM orders WHERE id = ?" in table
    assert "#" not in table
