"""`make demo` runs: the sample workload serves metrics and prints what each step and query cost."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_and_prints_both_summaries() -> None:
    env = {**os.environ, "DEMO_SECONDS": "1", "OTEL_EXPORTER_PROMETHEUS_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter.demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Serving metrics on http://127.0.0.1:" in out
    assert "What each operation cost" in out
    assert "What each DuckDB query shape cost" in out
    assert "│ COPY totals " in out  # the convention summary: no path literal
    assert "totals-0.parquet" not in out
