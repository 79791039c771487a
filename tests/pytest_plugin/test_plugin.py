"""``pytest --jobmeter`` on a small sample project, run by a real pytest in a subprocess.

The sample has a fast test, a slow one, one that holds 250 MiB and one that
fails. Each test writes what it saw itself (its wall time, its RSS after
touching its memory) to a file: the ground truth the plugin's figures are held
to. xdist runs it with two real workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jobmeter._rundata import records, routing
from jobmeter.cli import app

MIB = 2**20

SAMPLE = """
import json, os, time
from pathlib import Path

TRUTH = Path(os.environ["TRUTH_DIR"])
SLOW = float(os.environ.get("SLOW_S", "1.5"))
BIG = int(os.environ.get("BIG_MIB", "250"))


def _status(name):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024


def test_fast():
    assert 1 + 1 == 2


def test_slow():
    start = time.perf_counter()
    time.sleep(SLOW)
    (TRUTH / "slow").write_text(str(time.perf_counter() - start))


def test_big():
    block = bytearray(BIG * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    (TRUTH / "big").write_text(str(_status("VmRSS")))


def test_fails():
    assert 1 == 2
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "sample"
    (project / "tests").mkdir(parents=True)
    (project / "truth").mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "tests" / "test_sample.py").write_text(SAMPLE)
    return project


def _pytest(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k != routing.RUN_ENV and not k.startswith("PYTEST_")}  # fmt: skip
    environ.update(TRUTH_DIR=str(project / "truth"), OTEL_METRICS_EXPORTER="none", **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _report(runs: Path, ref: str = "latest") -> dict[str, Any]:
    result = CliRunner().invoke(app, ["report", ref, "--json", "--dir", str(runs)])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _tests(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operation"].split("::")[-1]: op for op in report["operations"]
            if op["collector"] == "pytest"}  # fmt: skip


def _section(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if " jobmeter " in line and "===" in line)
    return lines[start + 1 :]


def test_every_test_is_measured_and_the_session_is_a_run(tmp_path: Path) -> None:
    project = _project(tmp_path)
    runs = project / "runs"
    done = _pytest(project, "--jobmeter", "--jobmeter-dir", str(runs))
    assert done.returncode == 1, done.stdout + done.stderr  # the failing test's, unchanged
    report = _report(runs)
    assert report["name"] == "pytest-sample"
    assert report["status"] == "failed"
    tests = _tests(report)
    assert set(tests) == {"test_fast", "test_slow", "test_big", "test_fails"}
    assert all(t["count"] == 1 for t in tests.values())
    truth_slow = float((project / "truth" / "slow").read_text())
    truth_big = int((project / "truth" / "big").read_text())
    slow, big = tests["test_slow"], tests["test_big"]
    # The plugin's block holds the test's own timing, plus setup and teardown only.
    assert truth_slow <= slow["duration_total_seconds"] < truth_slow + 0.2
    assert slow["cpu_total_seconds"] < 0.2  # asleep
    # The kernel's RSS that the test read after touching 250 MiB is the peak, to the
    # kernel's own batching of RSS counters (a few hundred KiB).
    assert truth_big >= 250 * MIB
    assert truth_big - MIB <= big["peak_memory_max_bytes"] < truth_big + 8 * MIB
    assert big["cpu_total_seconds"] > 0.0
    assert tests["test_fast"]["peak_memory_max_bytes"] < 150 * MIB
    assert tests["test_fails"]["errors"] == 1
    assert all(t["errors"] == 0 for name, t in tests.items() if name != "test_fails")
    assert big["io_read_total_bytes"] is not None
    # The run's peak is the process's, the big test's included (resets hide it from the kernel).
    assert report["figures"]["peak_memory_bytes"] >= truth_big - MIB
    section = _section(done.stdout)
    assert section[0].startswith(f"jobmeter: 4 tests recorded as run {report['id']}: wall ")
    slowest = section.index("slowest 4 tests:")
    assert section[slowest + 1].split()[:5] == ["wall", "CPU", "peak", "mem", "read"]
    assert section[slowest + 2].endswith("tests/test_sample.py::test_slow")
    heaviest = section.index("heaviest 4 tests (peak memory):")
    assert section[heaviest + 2].endswith("tests/test_sample.py::test_big")
    row = section[heaviest + 2].split()
    assert row[-2] == "passed"
    fails_row = next(line for line in section if line.endswith("::test_fails"))
    assert fails_row.split()[-2] == "failed"


def test_without_the_option_nothing_is_measured(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = _pytest(project, "-k", "fast")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (project / ".jobmeter").exists()
    assert "jobmeter" not in done.stdout


def test_the_ini_value_turns_it_on_and_the_default_store_is_used(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "pytest.ini").write_text("[pytest]\njobmeter = true\n")
    done = _pytest(project, "-k", "fast", "--jobmeter-top", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    report = _report(project / ".jobmeter" / "runs")
    assert list(_tests(report)) == ["test_fast"]
    assert "slowest" not in done.stdout  # --jobmeter-top 0: no tables


def test_xdist_workers_record_into_the_controllers_run(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    project = _project(tmp_path)
    runs = project / "runs"
    done = _pytest(project, "--jobmeter", "--jobmeter-dir", str(runs), "-n", "2",
                   "--jobmeter-interval", "0.1")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    # One run, not one per worker (dot folders are the store's index).
    assert len([p for p in runs.iterdir() if not p.name.startswith(".")]) == 1
    report = _report(runs)
    tests = _tests(report)
    assert set(tests) == {"test_fast", "test_slow", "test_big", "test_fails"}
    truth_big = int((project / "truth" / "big").read_text())
    assert truth_big - MIB <= tests["test_big"]["peak_memory_max_bytes"] < truth_big + 8 * MIB
    assert tests["test_fails"]["errors"] == 1
    pids = {row["pid"] for row in records.read(Path(report["directory"]), "operations").rows}
    assert len(pids) == 2  # both workers ran tests and wrote them
    assert report["figures"]["peak_processes"] >= 3  # the controller sampled its workers
    assert report["figures"]["peak_memory_bytes"] >= truth_big - MIB
    assert _section(done.stdout)[0].startswith("jobmeter: 4 tests recorded as run ")


def test_compare_flags_slower_and_heavier_tests_and_can_fail_the_session(tmp_path: Path) -> None:
    project = _project(tmp_path)
    runs = project / "runs"
    base = ["--jobmeter-dir", str(runs), "-k", "not fails"]
    first = _pytest(project, "--jobmeter", *base, SLOW_S="0.05", BIG_MIB="40")
    assert first.returncode == 0, first.stdout + first.stderr
    baseline = _report(runs)["id"]
    second = _pytest(project, f"--jobmeter-compare={baseline}", *base)
    assert second.returncode == 0, second.stdout + second.stderr  # flagged, not failed
    section = _section(second.stdout)
    head = next(line for line in section if line.startswith("compared with run"))
    assert head.startswith(f"compared with run {baseline} (3 tests in both, threshold 20 %): ")
    count = int(head.split(": ")[1].split()[0])
    lines = section[section.index(head) + 1 :][:count]
    flagged = {(line.split("::")[-1], line.split(" ")[2]) for line in lines}
    # The sleep grew from 0.05 s to 1.5 s; the big test's memory from 40 to 250 MiB (and
    # touching it takes longer too, which may count as well); the fast test did not grow.
    assert {("test_slow", "wall"), ("test_big", "peak")} <= flagged
    assert flagged <= {("test_slow", "wall"), ("test_big", "peak"), ("test_big", "wall")}
    third = _pytest(project, "--jobmeter-compare=latest", "--jobmeter-fail-on-regression",
                    *base, SLOW_S="0.05", BIG_MIB="40")  # fmt: skip
    # Against the second run nothing grew: the session passes.
    assert third.returncode == 0, third.stdout
    assert "no test became slower or heavier" in third.stdout
    fourth = _pytest(project, f"--jobmeter-compare={baseline}", "--jobmeter-fail-on-regression",
                     *base)  # fmt: skip
    assert fourth.returncode == 1, fourth.stdout
    assert "3 passed" in fourth.stdout


def test_an_unknown_baseline_is_one_line_and_the_tests_still_run(tmp_path: Path) -> None:
    project = _project(tmp_path)
    runs = project / "runs"
    done = _pytest(project, "--jobmeter-compare=nightly", "--jobmeter-dir", str(runs),
                   "-k", "fast")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "jobmeter: no baseline to compare with: " in done.stdout
    assert list(_tests(_report(runs))) == ["test_fast"]
    strict = _pytest(project, "--jobmeter-compare=nightly", "--jobmeter-dir", str(runs),
                     "-k", "fast", JOBMETER_STRICT="true")  # fmt: skip
    assert strict.returncode == 4  # a usage error, in strict mode only
    assert "no baseline to compare with" in strict.stderr


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = _pytest(project, "--jobmeter", "--jobmeter-threshold=-5")
    assert done.returncode == 4
    assert "--jobmeter-threshold must be 0 or more, got -5.0" in done.stderr
