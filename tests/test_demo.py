"""`make demo` runs: the sample workload serves metrics and prints what each step and query cost."""

from __future__ import annotations

import os
import re
import subprocess
import sys

FIGURE = re.compile(r"\d+(\.\d+)?|-")


def _rows(out: str, title: str) -> dict[str, list[str]]:
    """The body rows of the plain table titled ``title`` (stdout is a pipe here): first cell ->
    the figure cells. Cells are two or more spaces apart; the table ends at a blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    body = [line for line in lines[start + 2 : end] if not line.startswith(("CPU s is", "The "))]
    rows: dict[str, list[str]] = {}
    for line in body:
        label, *figures = re.split(r"\s{2,}", line.strip())
        # A figure is never folded: a line has all its figures, or none (a wrapped label).
        assert all(FIGURE.fullmatch(f) for f in figures) or not any(figures), line
        if any(figures):
            rows[label] = figures
    return rows


def test_demo_runs_and_prints_both_summaries() -> None:
    env = {
        **os.environ,
        "DEMO_SECONDS": "1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
        "COLUMNS": "80",
    }
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
    assert "Running a measured DuckDB pipeline for 1 s" in out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "What each operation cost" in out
    operations = _rows(out, "What each operation cost")
    assert set(operations) == {"fetch", "load", "transform", "validate", "write"}, out
    calls = {name: int(figures[0]) for name, figures in operations.items()}
    assert calls["fetch"] == 5 * calls["load"] > 0  # five fetches per pipeline pass
    assert int(operations["validate"][1]) == calls["validate"] // 4  # every 4th batch fails
    assert operations["fetch"][4] == "-"  # resources=False: no CPU time
    assert float(operations["load"][4]) > 0
    assert "What each DuckDB query shape cost" in out
    shapes = _rows(out, "What each DuckDB query shape cost")
    assert not set("│┃━─┏└") & set(out)  # a pipe: plain text, no box drawing
    assert "COPY totals" in shapes  # the convention summary: no path literal
    assert "totals-0.parquet" not in out
    assert int(shapes["COPY totals"][0]) == calls["write"]
    assert int(shapes["CREATE TABLE totals SELECT orders"][2]) > 0  # rows scanned
