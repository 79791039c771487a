"""Reading usage.jsonl: the figures and the heaviest processes, from one read or two paths.

A run that listed no process (``--processes 0``, an earlier version) is read as
a stream; one that did is parsed once into a table both queries read. Either
way the figures are those of the lines, computed here by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobmeter._rundata.usage import read_figures, read_usage

MIB = 2**20


def _sample(t: float, rss: int, processes: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"t": t, "rss": rss, "pss": rss, "hwm": rss, "cpu_utilization": 0.5,
            "processes": len(processes) if processes else 1, "top_processes": processes,
            "other_processes": None, "ended_processes": None}  # fmt: skip


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _process(pid: int, name: str, rss: int, cpu_seconds: float) -> dict[str, Any]:
    return {"pid": pid, "name": name, "rss": rss, "pss": rss // 2, "hwm": rss,
            "cpu_percent": 50.0, "cpu_seconds": cpu_seconds}  # fmt: skip


def test_a_run_without_processes_has_its_figures_and_no_process(tmp_path: Path) -> None:
    rss = [100 * MIB, 300 * MIB, 200 * MIB]
    path = _write(tmp_path / "usage.jsonl",
                  [json.dumps(_sample(float(i), r, None)) for i, r in enumerate(rss)])  # fmt: skip
    figures, processes = read_usage(path)
    assert figures == read_figures(path)
    assert (figures.samples, figures.peak_rss) == (3, 300 * MIB)
    # Trapezoids over 2 s: (100+300)/2 + (300+200)/2 = 450 MiB·s, a mean of 225 MiB.
    assert figures.average_rss == pytest.approx(225 * MIB)
    assert (processes.rows, processes.seen) == ([], 0)


def test_a_run_with_processes_has_both_from_one_parse(tmp_path: Path) -> None:
    lines = [
        json.dumps(_sample(0.0, 110 * MIB, [_process(7, "python3", 100 * MIB, 0.5),
                                             _process(9, "sh", 10 * MIB, 0.0)])),
        json.dumps(_sample(1.0, 260 * MIB, [_process(7, "python3", 250 * MIB, 1.25),
                                             _process(9, "sh", 10 * MIB, 0.0)])),
    ]  # fmt: skip
    path = _write(tmp_path / "usage.jsonl", lines)
    figures, processes = read_usage(path)
    assert figures == read_figures(path)
    assert (figures.samples, figures.peak_rss) == (2, 260 * MIB)
    assert processes.seen == 2
    heaviest, other = processes.rows
    assert (heaviest["pid"], heaviest["name"], heaviest["peak_rss_bytes"]) == (
        7,
        "python3",
        250 * MIB,
    )
    assert heaviest["mean_rss_bytes"] == 175 * MIB
    assert heaviest["cpu_seconds"] == 1.25
    assert (other["pid"], other["samples"], other["peak_pss_bytes"]) == (9, 2, 5 * MIB)


def test_a_damaged_first_line_still_finds_the_processes_after_it(tmp_path: Path) -> None:
    """The first line decides the path; one that does not parse sends it the whole way."""
    good = json.dumps(_sample(1.0, 50 * MIB, [_process(3, "duckdb", 50 * MIB, 0.1)]))
    path = _write(tmp_path / "usage.jsonl", ['{"t": 0.0, "rss": 12', good])
    figures, processes = read_usage(path)
    assert (figures.lines, figures.samples, figures.skipped) == (2, 1, 1)
    assert [row["name"] for row in processes.rows] == ["duckdb"]
