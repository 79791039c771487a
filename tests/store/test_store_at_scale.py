"""10,000 runs from 20 hosts in one store: runs, report, compare and advise answer from the index.

The store is generated (tests/_support/shared_store.py): realistic run
directories and the index entries their ends would have written, compacted per
host, with some entries still pending, some runs from before the index and
some killed ones. Every answer is checked against the figures generated.
How fast they answer is measured in benchmarks/bench_store.py, not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _support.shared_store import GeneratedRun, generate, percentile
from jobmeter import store
from jobmeter.cli import app

MEMORY_STEP = 256 * 2**20


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[GeneratedRun]]:
    root = tmp_path_factory.mktemp("shared") / "runs"
    return root, generate(root, runs=10_000, hosts=20)


def _json(root: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--dir", str(root), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_store_is_what_was_generated(big_store: tuple[Path, list[GeneratedRun]]) -> None:
    """10,000 runs of 20 hosts, most listed from the index; the same listing as run.json's."""
    root, generated = big_store
    runs = store.list_runs(root)
    assert len({g.host for g in generated}) == 20
    assert [run.id for run in runs] == [g.id for g in generated]
    assert sum(run.entry is not None for run in runs) == 10_000 - 50  # 40 old, 10 killed
    assert sum(g.entry == "pending" for g in generated) == 100  # compacted by the first listing
    slow = store.list_runs(root, index=False)
    assert [(r.id, r.name, r.state, r.start, r.end, r.exit_code) for r in runs] == [
        (r.id, r.name, r.state, r.start, r.end, r.exit_code) for r in slow
    ]
    assert [r.record for r in runs[::97]] == [r.record for r in slow[::97]]


def test_runs_lists_every_run_with_its_figures(big_store: tuple[Path, list[GeneratedRun]]) -> None:
    """`jobmeter runs --json`: every run, newest first, with the name, state, exit code,
    duration and peak memory generated (the killed ones' from their samples)."""
    root, generated = big_store
    rows = _json(root, "runs")
    assert [row["id"] for row in rows] == [g.id for g in reversed(generated)]
    for row, g in zip(rows, reversed(generated), strict=True):
        assert (row["name"], row["status"], row["exit_code"]) == (g.name, g.state, g.exit_code)
        assert row["peak_memory_bytes"] == g.peak_memory_bytes
        # A killed run's duration is its samples': the last one came at 20/21 of the wall.
        wall = g.wall_seconds if g.end is not None else g.wall_seconds * 20 / 21
        assert row["duration_seconds"] == pytest.approx(wall)
    failed = _json(root, "runs", "--status", "failed", "--name", "train", "--limit", "0")
    assert [row["id"] for row in failed] == [
        g.id for g in reversed(generated) if g.state == "failed" and g.name == "train"
    ]


def test_report_latest_gives_the_newest_runs_figures(
    big_store: tuple[Path, list[GeneratedRun]],
) -> None:
    root, generated = big_store
    newest = generated[-1]
    report = _json(root, "report", "--latest")
    assert report["id"] == newest.id
    figures = report["figures"]
    assert figures["peak_memory_bytes"] == newest.peak_memory_bytes
    assert figures["wall_seconds"] == newest.wall_seconds
    assert figures["cpu_utilization_p95"] == newest.cpu_p95
    assert figures["energy_total_joules"] == pytest.approx(newest.energy_joules)
    assert figures["samples"] == 21
    counts = {op["label"]: op["count"] for op in report["operations"]}
    counts.update({q["summary"]: q["count"] for q in report["queries"]})
    assert counts == {label: count for label, (count, _) in newest.operations.items()}


def test_compare_gives_the_change_between_two_runs(
    big_store: tuple[Path, list[GeneratedRun]],
) -> None:
    """The oldest and the newest run, by unique id prefixes."""
    root, generated = big_store
    a, b = generated[0], generated[-1]
    compared = _json(root, "compare", a.id[:22], b.id[:22])
    peak = compared["figures"]["peak_memory_bytes"]
    assert (peak["a"], peak["b"]) == (a.peak_memory_bytes, b.peak_memory_bytes)
    assert peak["change"] == b.peak_memory_bytes - a.peak_memory_bytes
    assert peak["change_percent"] == pytest.approx(
        (b.peak_memory_bytes - a.peak_memory_bytes) / a.peak_memory_bytes * 100
    )
    wall = compared["figures"]["wall_seconds"]
    assert wall["change"] == pytest.approx(b.wall_seconds - a.wall_seconds)


@pytest.mark.parametrize("name", ["train", "nightly-etl"])
def test_advise_is_the_percentile_over_every_run_of_a_name(
    big_store: tuple[Path, list[GeneratedRun]], name: str
) -> None:
    """About 2,000 runs of a name, old and killed ones included (their figures from their
    samples): the p95 of the generated peaks and of each run's p95 of CPUs, + 20 %."""
    root, generated = big_store
    runs = [g for g in generated if g.name == name and g.state not in ("running", "not_started")]
    advice = _json(root, "advise", "--name", name)
    assert advice["runs"] == [g.id for g in runs]
    memory = percentile([g.peak_memory_bytes for g in runs], 95)
    assert advice["memory_bytes"]["observed"] == pytest.approx(memory)
    request = -(-memory * 1.2 // MEMORY_STEP) * MEMORY_STEP
    assert advice["memory_bytes"]["request"] == request
    assert advice["cpus"]["observed"] == pytest.approx(percentile([g.cpu_p95 for g in runs], 95))
    # The killed runs' samples metered no energy: they are left out of its percentile.
    energy = percentile([g.energy_joules for g in runs if g.end is not None], 95)
    assert advice["energy_joules"]["observed"] == pytest.approx(energy)
    last = _json(root, "advise", "--name", name, "--last", "10", "--percentile", "50")
    assert last["memory_bytes"]["observed"] == pytest.approx(
        percentile([g.peak_memory_bytes for g in runs[-10:]], 50)
    )


def test_advise_text_over_2000_runs_names_their_range_not_each(
    big_store: tuple[Path, list[GeneratedRun]],
) -> None:
    """The last line gives the first and the last run of 2,000 (--json lists them all), and
    calls per run are rounded to one decimal."""
    root, generated = big_store
    runs = [g for g in generated if g.name == "train" and g.state not in ("running", "not_started")]
    result = CliRunner().invoke(app, ["advise", "--name", "train", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    based = [line for line in lines if line.startswith("Based on")]
    first, last = runs[0].id, runs[-1].id
    assert based == [f"Based on {len(runs)} runs, {first} to {last} (--json lists them)"]
    header = next(i for i, line in enumerate(lines) if line.startswith("operation "))
    shown = {line.split()[0]: line.split()[2] for line in lines[header + 1 : header + 4]}
    counts: dict[str, list[int]] = {}
    for g in runs:
        for label, (count, _) in g.operations.items():
            counts.setdefault(label, []).append(count)
    assert shown == {label: f"{sum(counts[label]) / len(counts[label]):.1f}"
                     for label in ("extract", "transform", "load")}  # fmt: skip


def test_operations_of_many_runs_come_from_the_index(
    big_store: tuple[Path, list[GeneratedRun]],
) -> None:
    """Every operation and query shape of 2,000 runs, each once, with its count and time."""
    root, generated = big_store
    by_id = {g.id: g for g in generated}
    runs = [run for run in store.list_runs(root) if run.name == "report"]
    rows = store.operations_of(runs)
    assert len(rows) == sum(len(by_id[run.id].operations) for run in runs)
    for row in rows:
        count, total = by_id[row["run_id"]].operations[row["label"]]
        assert row["count"] == count
        assert row["duration_total_seconds"] == pytest.approx(total)
