"""A run's energy: run.json's energy_joules, usage.jsonl, the summary, report and cost.

The command itself advances the fake powercap tree's counters by known amounts
after the run's first sample, so the truth is exact; a GPU without an energy
counter (fake NVML) has its constant power integrated, which must come within
2 % of power x time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from _support.fake_powercap import FakePowercap

APPROX = 1e-6
TESTS = Path(__file__).resolve().parents[1]

# Runs under `jobmeter run`: waits for the wrapper's first sample, then "spends" energy.
_SPENDER = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from _support.fake_powercap import FakePowercap, FakeZone
time.sleep(0.4)
for entry, joules in {spend!r}:
    path = Path({powercap!r}) / entry
    top = int((path / "max_energy_range_uj").read_text())
    zone = FakeZone(path, top, int((path / "energy_uj").read_text()))
    zone.add(joules)
time.sleep(0.4)
"""


def _run(tmp_path: Path, sysfs: Path, spend: list[tuple[str, float]], *args: str,
         **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    code = _SPENDER.format(tests=str(TESTS), spend=spend, powercap=str(sysfs / "class/powercap"))
    return subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "--interval", "0.1", *args, "--",
         sys.executable, "-c", code],
        env={**os.environ, "JOBMETER_RUN_DIR": str(tmp_path / "runs"),
             "OTEL_METRICS_EXPORTER": "none", "JOBMETER_SYSFS_PATH": str(sysfs), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _record(tmp_path: Path) -> dict[str, Any]:
    (run,) = (tmp_path / "runs").iterdir()
    record: dict[str, Any] = json.loads((run / "run.json").read_text())
    return record


def _report(tmp_path: Path, **env: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "report", "--latest", "--json",
         "--dir", str(tmp_path / "runs")],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    FakePowercap(root).intel_server()
    return root


def test_run_energy_is_what_the_command_spent(tmp_path: Path, sysfs: Path) -> None:
    spend = [("intel-rapl:0", 100.0), ("intel-rapl:0:0", 60.0), ("intel-rapl:0:2", 5.5),
             ("intel-rapl:1", 400.0)]  # core and psys must not count  # fmt: skip
    done = _run(tmp_path, sysfs, spend)
    assert done.returncode == 0, done.stderr
    record = _record(tmp_path)
    energy = record["summary"]["energy_joules"]
    assert energy == {"cpu": pytest.approx(100.0, abs=APPROX),
                      "dram": pytest.approx(5.5, abs=APPROX)}  # fmt: skip
    usage = Path(record["summary"]["directory"]) / "usage.jsonl"
    samples = [json.loads(line) for line in usage.read_text().splitlines()]
    assert samples[0]["energy_cpu"] == 0.0
    assert samples[-1]["energy_cpu"] == pytest.approx(100.0, abs=APPROX)
    assert samples[-1]["energy_gpu"] is None
    figures = _report(tmp_path)["figures"]
    assert figures["energy_total_joules"] == pytest.approx(105.5, abs=APPROX)
    assert figures["energy_cpu_joules"] == pytest.approx(100.0, abs=APPROX)
    assert figures["energy_gpu_joules"] is None
    assert "106 J (CPU 100 J, DRAM 5.5 J)" in done.stderr


def test_a_wrap_during_the_run(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    top = 30_000_000
    FakePowercap(root).zone("intel-rapl:0", "package-0", start_uj=top - 1_000_000,
                            max_range_uj=top)  # fmt: skip
    done = _run(tmp_path, root, [("intel-rapl:0", 12.0)], "--quiet")
    assert done.returncode == 0, done.stderr
    assert _record(tmp_path)["summary"]["energy_joules"] == {"cpu": pytest.approx(12.0, abs=APPROX)}


def test_cost_is_the_documented_arithmetic(tmp_path: Path, sysfs: Path) -> None:
    done = _run(tmp_path, sysfs, [("intel-rapl:0", 360.0)], "--quiet")
    assert done.returncode == 0, done.stderr
    prices = {"JOBMETER_PRICE_PER_KWH": "0.5", "JOBMETER_PRICE_PER_CPU_HOUR": "0.04",
              "JOBMETER_PRICE_PER_GB_HOUR": "0.005", "JOBMETER_PRICE_PER_GPU_HOUR": "2.5",
              "JOBMETER_CURRENCY": "EUR"}  # fmt: skip
    report = _report(tmp_path, **prices)
    held, wall = report["held"], report["figures"]["wall_seconds"]
    hours = wall / 3600
    cost = report["cost"]
    assert cost["kwh"] == pytest.approx(360.0 / 3.6e6, rel=1e-9)
    assert cost["energy"] == pytest.approx(360.0 / 3.6e6 * 0.5, rel=1e-9)
    assert cost["cpu"] == pytest.approx(held["cpus"] * hours * 0.04, rel=1e-9)
    assert cost["memory"] == pytest.approx(held["memory_bytes"] / 2**30 * hours * 0.005, rel=1e-9)
    assert cost["gpu"] == 0.0  # no GPU held
    assert cost["total"] == pytest.approx(cost["energy"] + cost["cpu"] + cost["memory"], rel=1e-12)
    assert cost["currency"] == "EUR"
    assert held["cpus"] == len(os.sched_getaffinity(0)) or held["cpus_from"] == "cgroup"
    assert _report(tmp_path)["cost"] is None  # no price, no cost


def test_no_counters_no_energy_and_the_report_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "sys"
    empty.mkdir()
    done = _run(tmp_path, empty, [])
    assert done.returncode == 0, done.stderr
    assert _record(tmp_path)["summary"]["energy_joules"] is None
    assert _report(tmp_path)["figures"]["energy_total_joules"] is None
    assert "not metered" in done.stderr
    text = subprocess.run(
        [sys.executable, "-m", "jobmeter", "report", "--latest", "--dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "not metered" in text


_GPU_RUN = """
import json, sys
sys.path.insert(0, {tests!r})
from _support.fake_nvml import FakeGpu, FakeNvml, NVMLError_NotSupported
gpu = FakeGpu("GPU-a", "Tesla T4", power_mw=70_000,
              fail={{"nvmlDeviceGetTotalEnergyConsumption": NVMLError_NotSupported()}})
sys.modules["pynvml"] = FakeNvml([gpu])
from jobmeter.run import RunOptions, run_command
result = run_command([sys.executable, "-c", "import time; time.sleep(1.5)"],
                     RunOptions(interval=0.1, output={out!r}, capture=False))
print(json.dumps(result.to_json()))
"""


def test_gpu_without_an_energy_counter_is_power_integrated(tmp_path: Path) -> None:
    empty = tmp_path / "sys"
    empty.mkdir()
    code = _GPU_RUN.format(tests=str(TESTS), out=str(tmp_path / "runs"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "OTEL_METRICS_EXPORTER": "none", "JOBMETER_SYSFS_PATH": str(empty)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    run = Path(summary["directory"])
    samples = [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]
    # Integrated between the first and the last sample: 70 W over that time, within 2 %.
    truth = 70.0 * (samples[-1]["t"] - samples[0]["t"])
    assert summary["energy_joules"]["gpu"] == pytest.approx(truth, rel=0.02)
    assert summary["energy_joules"]["gpu"] > 70.0 * 1.4
    assert "cpu" not in summary["energy_joules"]


def test_energy_is_exported_as_run_metric(tmp_path: Path, sysfs: Path) -> None:
    """jobmeter.run.energy by hw.type on the wrapper's OTLP/console export."""
    done = _run(tmp_path, sysfs, [("intel-rapl:0", 42.0)], "--quiet",
                OTEL_METRICS_EXPORTER="console", OTEL_METRIC_EXPORT_INTERVAL="100000")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "jobmeter.run.energy" in text
    exported = [json.loads(block) for block in _json_blocks(text)]
    points = [p for doc in exported for rm in doc.get("resource_metrics", [])
              for sm in rm["scope_metrics"] for m in sm["metrics"]
              if m["name"] == "jobmeter.run.energy" for p in m["data"]["data_points"]]  # fmt: skip
    cpu = [p["value"] for p in points if p["attributes"].get("hw.type") == "cpu"]
    assert cpu
    assert cpu[-1] == pytest.approx(42.0, abs=APPROX)


def _json_blocks(text: str) -> list[str]:
    """The console exporter's JSON documents (each starts at a line '{')."""
    blocks, current, depth = [], [], 0
    for line in text.splitlines():
        if depth == 0 and line.strip() != "{":
            continue
        current.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0:
            blocks.append(textwrap.dedent("\n".join(current)))
            current = []
    return blocks


def test_a_run_block_in_the_program_has_its_energy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobmeter.Run samples itself: the energy from its start to its end, with blocks inside."""
    import jobmeter
    from jobmeter.testing import in_memory

    tree = FakePowercap(tmp_path / "sys")
    tree.intel_server()
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path / "sys"))
    with in_memory() as recorded:
        ops = jobmeter.MetricsCollector("etl")
        with jobmeter.Run("in-program", interval=0.1, directory=tmp_path / "runs") as run:
            with ops.measure("load"):
                tree.zones["intel-rapl:0"].add(20.0)
                tree.zones["intel-rapl:0:2"].add(1.0)
                time.sleep(0.01)
            tree.zones["intel-rapl:0"].add(5.0)  # in the run, outside the block
        block = recorded.value("jobmeter.operation.energy", {"hw.type": "cpu"})
    assert run.result is not None
    energy = dict(run.result.energy_joules or {})
    assert energy == {
        "cpu": pytest.approx(25.0, abs=APPROX),
        "dram": pytest.approx(1.0, abs=APPROX),
    }
    assert block == pytest.approx(20.0, abs=APPROX)


def test_the_runs_operations_have_their_energy_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per operation: the energy of its blocks, summed over intervals, in report and its table."""
    import jobmeter
    from jobmeter import store

    tree = FakePowercap(tmp_path / "sys")
    tree.zone("intel-rapl:0", "package-0")
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path / "sys"))
    monkeypatch.setenv("JOBMETER_RUN_FLUSH_INTERVAL", "0.05")  # several intervals to merge
    ops = jobmeter.MetricsCollector("etl")
    with jobmeter.Run("ops", interval=0.1, directory=tmp_path / "runs"):
        for joules in (3.0, 4.5, 2.5):
            with ops.measure("load", {"table": "orders"}):
                tree.zones["intel-rapl:0"].add(joules)
                time.sleep(0.06)
        with ops.measure("idle"):
            time.sleep(0.002)
    report = store.report(store.resolve("latest", tmp_path / "runs"))
    by_name = {op["operation"]: op for op in report.records.operations}
    assert by_name["load"]["energy_total_joules"] == pytest.approx(10.0, abs=APPROX)
    assert by_name["idle"]["energy_total_joules"] == pytest.approx(0.0, abs=APPROX)
    text = subprocess.run(
        [sys.executable, "-m", "jobmeter", "report", "--latest", "--dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout  # fmt: skip
    header = next(line for line in text.splitlines() if line.startswith("operation"))
    assert header.split()[-1] == "energy"
    assert " 10 J" in text
