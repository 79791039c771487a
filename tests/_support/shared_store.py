"""A shared run store of many runs from many hosts, written fast and with known figures.

``generate(root, runs=10_000, hosts=20)`` writes what that many real runs
would have left on shared storage, without running them: each run directory
with run.json (the form ``jobmeter run`` writes), 21 samples in usage.jsonl
and its operations and DuckDB query shapes as records (JSONL, as a run that
crashed or is read while it goes has them), and, for most runs, the index
entry the end of a run writes (``index.json``). The store's own compaction
then merges them, each host in turn compacting the runs that ended since the
last one into its folder (as a host that lists the store does), except the
last ``pending`` runs' entries. Some runs have no entry: ``old`` ones (a
jobmeter before the index) and ``running`` ones (their wrapper was killed:
run.json still says running; their files are old, so they read as
incomplete).

Every figure is drawn from a seeded random generator and kept in
``GeneratedRun``, so tests and benchmarks check what the store answers
against the numbers written, not against the store's own arithmetic. 21
samples make the p95 of CPU utilization a sample itself (rank 0.95 x 20 = 19),
with no interpolation to round.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _support.golden_store import record_stats
from jobmeter import store
from jobmeter._rundata.summary import FIGURES, energy_figures
from jobmeter.store import _summary
from jobmeter.store._index.compact import compact
from jobmeter.store._index.schema import INDEX_DIR, operation_rows, run_row
from jobmeter.store._index.write import write_entry

MIB = 2**20
#: 2026-11-02T08:00:00Z: the first run's start.
START = 1_793_606_400.0
SAMPLES = 21
NAMES = ("nightly-etl", "train", "backfill", "report", "ingest")
OPERATIONS = ("extract", "transform", "load")


@dataclass
class GeneratedRun:
    """One generated run: where it is, and the figures written into it."""

    id: str
    name: str
    host: str
    start: float
    end: float | None
    status: str  # as run.json says
    state: str  # as the store lists it
    exit_code: int | None
    peak_memory_bytes: int
    cpu_samples: list[float]
    wall_seconds: float
    energy_joules: float
    entry: str  # "compacted", "pending", "old" (none) or "running" (none)
    #: The host whose compaction put its entry into a segment (None: still in its directory).
    compacted_by: str | None
    #: label -> (count, total seconds) of each operation and query shape.
    operations: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def cpu_p95(self) -> float:
        """The p95 of the 21 samples: the 20th smallest, exactly."""
        return sorted(self.cpu_samples)[19]


def percentile(values: list[float], q: float) -> float:
    """numpy.percentile's default (linear) method, written out."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _records(rng: random.Random, t: float, peak: int) -> tuple[list[dict[str, Any]], ...]:
    operations = []
    for name in OPERATIONS:
        durations = [round(rng.uniform(0.01, 2.0), 4) for _ in range(rng.randint(1, 6))]
        operations.append({
            "t": t, "pid": 4242, "collector": "etl", "operation": name, "attributes": "{}",
            "error_type": None, "count": len(durations), "resources_count": len(durations),
            **record_stats("duration", durations),
            **record_stats("cpu", [d * 0.5 for d in durations]),
            **record_stats("memory", [peak // 2] * len(durations)),
            **record_stats("peak", [peak] * len(durations)),
            "energy_joules": round(sum(durations) * 40.0, 3),
            "io_read_bytes": 4096 * len(durations), "io_write_bytes": None,
        })  # fmt: skip
    durations = [round(rng.uniform(0.001, 0.05), 5) for _ in range(rng.randint(1, 9))]
    queries = [{
        "t": t, "pid": 4242, "namespace": "warehouse", "operation": "SELECT",
        "summary": "SELECT orders", "shape": "SELECT * FROM orders WHERE id = ?",
        "shape_hash": "1dd2c5037966", "error_type": None, "count": len(durations),
        "rows": len(durations), "rows_max": 1, **record_stats("duration", durations),
    }]  # fmt: skip
    return operations, queries


def _record(run_id: str, name: str, host: str, start: float, wall: float, status: str,
            peak: int, energy: float, cpus: list[float]) -> dict[str, Any]:  # fmt: skip
    ended = status != "running"
    summary: dict[str, Any] = dict.fromkeys(FIGURES, 0)
    for computed in ("cpu_utilization_p95", "energy_total_joules", "energy_cpu_joules",
                     "energy_dram_joules", "energy_gpu_joules"):  # fmt: skip
        del summary[computed]
    summary.update(
        run_id=run_id, directory=f"/shared/runs/{run_id}", exit_code=0 if status == "succeeded"
        else 1, status=status, wall_seconds=wall, cpu_user_seconds=sum(cpus) * wall / SAMPLES,
        cpu_system_seconds=0.1 * wall, cpu_utilization_mean=sum(cpus) / SAMPLES,
        cpu_utilization_peak=max(cpus), peak_memory_bytes=peak,
        peak_memory_source="samples (PSS of the tree)", peak_pss_sampled_bytes=peak,
        peak_rss_sampled_bytes=peak + 3 * MIB, peak_rss_single_process_bytes=peak - MIB,
        peak_cgroup_bytes=None, peak_gpu_memory_bytes=None, peak_processes=3, peak_threads=9,
        samples=SAMPLES, energy_joules={"cpu": energy * 0.9, "dram": energy * 0.1},
        signals_forwarded=[],
    )  # fmt: skip
    return {
        "id": run_id, "name": name, "kind": "command", "status": status, "pid": 4242,
        "start": start, "end": start + wall if ended else None,
        "exit_code": summary["exit_code"] if ended else None, "jobmeter_version": "0.1.0",
        "command": {"executable": "python", "argument_count": 2}, "interval_seconds": 1.0,
        "host": {"host.name": host, "host.arch": "x86_64", "os.type": "linux",
                 "jobmeter.host.cpu.usable_count": 16, "jobmeter.host.memory.total": 64 * 2**30},
        "held": {"cpus": 8.0, "cpus_from": "cgroup", "memory_bytes": 16 * 2**30,
                 "memory_from": "cgroup", "gpus": 0},
        "git": {"commit": "429558d132f2946a83a82388797b6c3e359ca37c", "dirty": False},
        "records": {}, "summary": summary if ended else None,
    }  # fmt: skip


def _write(directory: Path, name: str, text: str) -> None:
    with open(directory / name, "w", encoding="utf-8") as handle:
        handle.write(text)


def _entry_document(directory: Path, record: dict[str, Any], host: str,
                    operations: list[dict[str, Any]], queries: list[dict[str, Any]],
                    cpus: list[float], entry: str, *, light: bool) -> dict[str, Any]:  # fmt: skip
    """The entry this run's end wrote (``light``: without figures, as a run writes it) or a
    compaction completed (the store's own row builders)."""
    run = store.StoredRun(record["id"], directory, record, record["status"])
    summary = record["summary"]
    figures = {name: summary.get(name) for name in FIGURES}
    figures.update(energy_figures(summary["energy_joules"]))
    figures["cpu_utilization_p95"] = sorted(cpus)[19]
    figures["samples"] = SAMPLES
    records = _summary.RecordSummary(_summary._operations(operations), _summary._queries(queries))
    return {"format": 1, "run": run_row(run, None if light else figures, entry, host, records,
                                        "summary"),
            "operations": operation_rows(run, entry, records)}  # fmt: skip


def generate(
    root: Path,
    runs: int = 10_000,
    hosts: int = 20,
    *,
    seed: int = 23,
    pending: int = 100,
    old: int = 40,
    running: int = 10,
    host_prefix: str = "node",
    compact_hosts: bool = True,
) -> list[GeneratedRun]:
    """Write the store; the runs, oldest first. ``old`` and ``running`` runs get no entry.

    ``compact_hosts=False`` leaves every entry in its run directory (no compaction).
    """
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    host_names = [f"{host_prefix}-{h:02d}" for h in range(hosts)]
    stale = START  # the files of runs that did not end: long unchanged
    generated: list[GeneratedRun] = []
    unindexed = set(rng.sample(range(runs), old + running))
    running_ones = set(sorted(unindexed)[:running])
    # Host k compacts the runs up to the end of batch k; the last ``pending`` stay loose.
    compacted = max(runs - pending, 0) if compact_hosts else 0
    batch = -(-compacted // hosts) if compacted else 0
    ends = {min((k + 1) * batch, compacted): k for k in range(hosts) if k * batch < compacted}
    for i in range(runs):
        host = host_names[i % hosts]
        name = NAMES[rng.randrange(len(NAMES))]
        start = START + i * 7.0 + rng.random()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start))
        run_id = f"{stamp}-{rng.getrandbits(64):016x}"
        status = "running" if i in running_ones else rng.choice(("succeeded",) * 9 + ("failed",))
        peak = rng.randrange(64, 8192) * MIB
        wall = round(rng.uniform(5.0, 3600.0), 3)
        energy = round(rng.uniform(100.0, 50_000.0), 3)
        cpus = [round(rng.uniform(0.0, 8.0), 4) for _ in range(SAMPLES)]
        directory = root / run_id
        directory.mkdir()
        record = _record(run_id, name, host, start, wall, status, peak, energy, cpus)
        _write(directory, "run.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
        samples = [{"t": start + k * wall / SAMPLES, "pss": peak if k == 7 else peak // 2,
                    "rss": peak, "hwm": peak - MIB, "cpu_utilization": cpus[k], "processes": 3,
                    "threads": 9, "cpu_user_total": 0.0, "cpu_system_total": 0.0}
                   for k in range(SAMPLES)]  # fmt: skip
        _write(directory, "usage.jsonl", "".join(json.dumps(s) + "\n" for s in samples))
        operations, queries = _records(rng, start + wall, peak)
        for kind, rows in (("operations", operations), ("queries", queries)):
            _write(directory, f"{kind}.4242.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        if i in running_ones:
            kind_of_entry, state = "running", "incomplete"
            for path in (directory / "run.json", directory / "usage.jsonl"):
                os.utime(path, (stale, stale))
        elif i in unindexed:
            kind_of_entry, state = "old", status
        else:
            kind_of_entry, state = ("compacted" if i < compacted else "pending"), status
            token = f"{stamp}-{rng.getrandbits(32):08x}"
            document = _entry_document(directory, record, host, operations, queries, cpus,
                                       token, light=i >= compacted)  # fmt: skip
            write_entry(directory, document)
        ops = {op["operation"]: (op["count"], op["duration_sum"]) for op in operations}
        ops.update({q["summary"]: (q["count"], q["duration_sum"]) for q in queries})
        generated.append(GeneratedRun(
            run_id, name, host, start, record["end"], status, state, record["exit_code"], peak,
            cpus, wall, energy, kind_of_entry, None, ops,
        ))  # fmt: skip
        if i + 1 in ends:  # host k lists the store: it compacts what no segment holds
            folder = root / INDEX_DIR / host_names[ends[i + 1]]
            compact(root, [folder], folder)
            for each in generated[ends[i + 1] * batch :]:
                each.compacted_by = folder.name if each.entry == "compacted" else None
    return sorted(generated, key=lambda run: (run.start, run.id))
