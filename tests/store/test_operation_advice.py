"""``advise`` per operation and query shape, over real runs of known operations.

Three runs of one job, each a real ``jobmeter.Run`` in its own interpreter: an
operation that holds a known, growing allocation, one that sleeps a known time,
and DuckDB statements of two shapes. The advice is held to numpy's percentile of
what each run's own report says, and to the allocations themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from jobmeter import store
from jobmeter._rundata import routing
from jobmeter.cli import app

MIB = 2**20
SIZES_MIB = (60, 120, 180)

JOB = """
import os, sys, time
import duckdb
import jobmeter
from jobmeter.duckdb import connect
ops = jobmeter.MetricsCollector("etl")
size = int(sys.argv[1])
with jobmeter.Run("nightly", interval=0.1):
    with ops.measure("load", {"table": "orders"}):
        block = bytearray(size * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        del block
    for _ in range(4):
        with ops.measure("wait"):
            time.sleep(0.02 * (1 + size / 60))
    con = connect(":memory:")
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(1000)")
    for n in range(3):
        con.execute(f"SELECT sum(x) FROM t WHERE x > {n}").fetchall()
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("advice") / "runs"
    env = {k: v for k, v in os.environ.items() if k != routing.RUN_ENV}
    env.update(JOBMETER_RUN_DIR=str(root), OTEL_METRICS_EXPORTER="none")
    for size in SIZES_MIB:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(JOB), str(size)], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    return root


def _reported(root: Path) -> list[dict[str, dict[str, Any]]]:
    return [{op["label"]: op for op in store.report(run).records.operations}
            for run in store.list_runs(root)]  # fmt: skip


def test_each_operation_gets_its_percentiles_over_the_runs(runs: Path) -> None:
    listed = store.list_runs(runs)
    parts = store.advise_operations(listed, 95.0, 0.2)
    operations = {p.label: p for p in parts if p.kind == "operation"}
    assert set(operations) == {"load {table=orders}", "wait"}
    load, wait = operations["load {table=orders}"], operations["wait"]
    per_run = _reported(runs)
    peaks = [r["load {table=orders}"]["peak_memory_max_bytes"] for r in per_run]
    # Each run's peak holds its allocation: the figures grow as the allocations do.
    for peak, size in zip(peaks, SIZES_MIB, strict=True):
        assert peak >= size * MIB
    assert peaks == sorted(peaks)
    assert load.peak_memory_bytes is not None
    assert load.peak_memory_bytes.observed == pytest.approx(float(np.percentile(peaks, 95)))
    assert load.peak_memory_bytes.with_headroom == pytest.approx(
        load.peak_memory_bytes.observed * 1.2
    )
    assert load.peak_memory_bytes.request % (256 * MIB) == 0
    assert load.peak_memory_bytes.request >= load.peak_memory_bytes.with_headroom
    assert (load.runs, load.calls_per_run, load.errors) == (3, 1.0, 0)
    p95s = [r["wait"]["duration_p95_seconds"] for r in per_run]
    assert wait.duration_p95_seconds == pytest.approx(float(np.percentile(p95s, 95)))
    # Between the second run's sleeps (60 ms) and the third's (80 ms), nearer the third.
    assert wait.duration_p95_seconds is not None
    assert 0.02 * (1 + 120 / 60) <= wait.duration_p95_seconds <= max(p95s) < 0.5
    assert wait.calls_per_run == 4.0
    # The heaviest operation comes first: it sets the job's memory request.
    assert parts[0].label == "load {table=orders}"


def test_query_shapes_are_advised_apart_from_operations(runs: Path) -> None:
    parts = store.advise_operations(store.list_runs(runs))
    queries = [p for p in parts if p.kind == "query"]
    by_summary = {(q.label, q.calls_per_run) for q in queries}
    # Three SELECTs of one shape (literals masked) per run, one CREATE TABLE.
    assert ("SELECT t", 3.0) in by_summary
    select = next(q for q in queries if q.label == "SELECT t")
    assert select.runs == 3
    assert select.namespace is not None
    assert select.peak_memory_bytes is None  # a statement has no block peak


def test_advise_json_has_the_parts_and_what_the_newest_run_held(runs: Path) -> None:
    result = CliRunner().invoke(app, ["advise", "--json", "--dir", str(runs)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    labels = [part["label"] for part in out["operations"]]
    assert labels[0] == "load {table=orders}"
    assert set(out["held_now"]) >= {"cpus", "cpus_from", "memory_bytes", "memory_from"}
    text = CliRunner().invoke(app, ["advise", "--dir", str(runs)]).stdout
    assert "by operation (p95 over the runs that have it)" in text
    assert "by query shape (p95 over the runs that have it)" in text


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="no runs"):
        store.advise_operations([])
