"""docs/metrics.md and docs/configuration.md stay true to the code."""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

import jobmeter
from jobmeter._core import variables, variables_table
from jobmeter._core.machine import machine_info
from jobmeter.host import HostCollector
from jobmeter.run import RunResult
from jobmeter.run._live import RunCollector
from jobmeter.run._sampler import TreeSample
from jobmeter.testing import in_memory

DOCS = Path(__file__).resolve().parent.parent / "docs"
SRC = DOCS.parent / "src" / "jobmeter"


def _table_rows(path: Path) -> list[list[str]]:
    """Rows of the markdown tables whose first cell is a `code` name."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in path.read_text().splitlines()
        if line.startswith("| `")
    ]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected one `code` value in {cell!r}"
    return match.group(1)


# Documented, but only emitted on a machine with swap (CI machines have none).
NEEDS_SWAP = {"system.paging.usage", "system.paging.utilization"}
# Documented, emitted only with a GPU: checked against the faked NVML driver below.
NEEDS_GPU = {"jobmeter.process.gpu.memory.usage", "jobmeter.operation.gpu.memory.usage"}
PREFIXES = ("`jobmeter.", "`process.", "`system.", "`hw.", "`http.", "`db.")


def _documented() -> dict[str, tuple[str, str, str]]:
    """Every metric in metrics.md: name -> (kind, unit, Prometheus name)."""
    return {
        _code(row[0]): (row[1], _code(row[2]), _code(row[4]))
        for row in _table_rows(DOCS / "metrics.md")
        if len(row) == 6 and row[0].startswith(PREFIXES)
    }


def _exercise_backfill() -> None:
    """A Backfill that emits every one of its metrics (a scripted clock gives it a rate)."""
    from _support.backfill import FakeClock
    from jobmeter.backfill import Backfill

    clock = FakeClock()
    bf = Backfill("docs", total=10, clock=clock, progress=False, deadline=2_000_000_000)
    for _ in bf.track(range(2)):
        pass
    clock.advance(1.0)
    bf.failed(error_type="ValueError")
    bf.retry("timeout")
    bf.rate_limited(1.0, reason="429")
    with bf.batch(5):
        pass
    bf.queue_size(3)
    for _ in bf.track(range(1), start=100):
        bf.failed(error_type="ValueError")
    for _ in bf.track_failed(range(101)):
        pass
    bf.request("GET", "https://api.example.com/x", status_code=200, duration=0.1)
    bf.close()


def _exercise_duckdb() -> Any:
    """A DuckDB connection that emits every DuckDB metric: operators and a column profile on."""
    from jobmeter.duckdb import DuckDBCollector

    collector = DuckDBCollector("docs.duckdb", operators=True, profile_tables=["t"])
    con = collector.connect()
    con.execute("CREATE TABLE t AS SELECT range AS i, range % 3 AS g FROM range(100)")
    con.execute("SELECT g, count(*) FROM t GROUP BY g").fetchall()
    return con  # open until collected: table figures are read from open connections


@pytest.fixture(autouse=True)
def _energy_counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake RAPL tree, so that the energy instruments are emitted and checked too."""
    from _support.fake_powercap import FakePowercap

    FakePowercap(tmp_path / "sys").intel_server()
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path / "sys"))


def _run_result() -> RunResult:
    return RunResult("id", Path("."), 0, "ok", energy_joules={"cpu": 1.0})


def _emitted(gpu: bool = False) -> dict[str, tuple[str, str]]:
    """Every instrument measure() and HostCollector emit: name -> (kind, unit), from real points."""
    with in_memory() as recorded:
        ops = jobmeter.MetricsCollector("docs")
        with ops.measure("load", gpu=gpu, peak_memory=True):
            pass
        HostCollector(gpu=gpu)
        RunCollector().update(TreeSample(t=0.0, processes=1), _run_result())
        _exercise_backfill()
        con = _exercise_duckdb()
        time.sleep(0.3)  # utilization needs an interval
        found = {m.name: m for _, m in recorded.metrics()}
        con.close()
    kinds = {}
    for name, metric in found.items():
        data = metric.data
        if isinstance(data, Histogram):
            kind = "Histogram"
        elif isinstance(data, Sum):
            kind = "ObservableCounter" if data.is_monotonic else "ObservableUpDownCounter"
        else:
            assert isinstance(data, Gauge)
            kind = "ObservableGauge"
        kinds[name] = (kind, metric.unit or "")
    return kinds


def test_metrics_md_lists_every_instrument_with_kind_and_unit() -> None:
    documented = _documented()
    emitted = _emitted()
    # hw.energy is also the host's (RAPL); the other hw.* rows need a GPU.
    gpu_rows = {name for name in documented if name.startswith("hw.")} - {"hw.energy"} | NEEDS_GPU
    assert set(emitted) == set(documented) - NEEDS_SWAP - gpu_rows
    for name, (kind, unit) in emitted.items():
        assert documented[name][:2] == (kind, unit), name


def test_metrics_md_gpu_rows_match_the_gpu_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the faked NVML driver (the one allowed fake), the GPU rows are what is emitted."""
    from _support.fake_nvml import FakeGpu, FakeNvml, ProcessInfo
    from jobmeter._core import nvml as _nvml

    documented = _documented()
    machine_info()  # cached from the real machine before the fake driver is installed
    gpus = [FakeGpu("GPU-a", "NVIDIA H100", compute_processes=[ProcessInfo(os.getpid(), 1)])]
    _nvml._reset_for_tests()
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(gpus))
    try:
        emitted = _emitted(gpu=True)
    finally:
        _nvml._reset_for_tests()
    gpu_emitted = {n: v for n, v in emitted.items() if n.startswith("hw.") or n in NEEDS_GPU}
    gpu_rows = {n: v[:2] for n, v in documented.items() if n.startswith("hw.") or n in NEEDS_GPU}
    assert gpu_emitted == gpu_rows


def test_metrics_md_prometheus_names_match_a_real_scrape() -> None:
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    with jobmeter.MetricsCollector("docs").measure("load", peak_memory=True):
        pass
    HostCollector(gpu=False)
    RunCollector().update(TreeSample(t=0.0, processes=1), _run_result())
    _exercise_backfill()
    con = _exercise_duckdb()
    time.sleep(0.3)
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
        text = response.read().decode()
    con.close()
    exposed = {
        re.sub(
            r"(_seconds|_backfill_batch_size|_returned_rows)_(bucket|count|sum)$",
            r"\1",
            line.split("{")[0].split(" ")[0],
        )
        for line in text.splitlines()
        if line.startswith(("jobmeter_", "process_", "system_", "http_", "db_"))
    }
    documented = {prometheus: name for name, (_, _, prometheus) in _documented().items()}
    needs_hardware = NEEDS_SWAP | NEEDS_GPU
    assert {
        p for p, name in documented.items() if name not in needs_hardware and "hw." not in name
    } == exposed


def test_configuration_md_documents_every_variable() -> None:
    """The Variables table is the one rendered from the rows, and lists every variable read."""
    text = (DOCS / "configuration.md").read_text()
    regenerate = ".venv/bin/python -m jobmeter._core.variables_table"
    rewritten = variables_table.with_table(text)
    assert rewritten == text, f"the table differs from the rows: {regenerate}"
    documented = {_code(row[0]) for row in _table_rows(DOCS / "configuration.md")}
    source = "\n".join(path.read_text() for path in SRC.rglob("*.py"))
    read = set(re.findall(r"[\"']((?:OTEL|JOBMETER)_[A-Z_]+)[\"']", source))
    assert read == documented == set(variables.ENVIRONMENT)
