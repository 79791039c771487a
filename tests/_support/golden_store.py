"""A run store with exactly known figures and records, written file by file for golden outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobmeter import store
from jobmeter._rundata.sketch import Sketch

MIB = 2**20
#: 2026-11-02T08:00:00Z; each run starts an hour after the one before.
START = 1_793_606_400.0


def record_stats(prefix: str, values: list[float]) -> dict[str, Any]:
    """A record's ``<prefix>_sum/min/max/p50/p95/sketch`` columns of these values."""
    ordered = sorted(values)
    sketch = Sketch()
    sketch.add_sorted(ordered)
    figures = {"sum": sum(ordered), "min": ordered[0], "max": ordered[-1],
               "p50": sketch.quantile(0.5), "p95": sketch.quantile(0.95),
               "sketch": sketch.to_json()}  # fmt: skip
    return {f"{prefix}_{name}": value for name, value in figures.items()}


def _operation(t: float, name: str, attributes: dict[str, str], durations: list[float],
               peak: int, error: str | None = None) -> dict[str, Any]:  # fmt: skip
    n = len(durations)
    return {"t": t, "pid": 4242, "collector": "etl", "operation": name,
            "attributes": json.dumps(attributes, separators=(",", ":")), "error_type": error,
            "count": n, "resources_count": n, **record_stats("duration", durations),
            **record_stats("cpu", [d * 0.8 for d in durations]),
            **record_stats("memory", [peak] * n),
            **record_stats("peak", [peak] * n),
            # The machine's joules during the blocks: 85 W over their time (none in failures).
            "energy_joules": None if error else round(sum(durations) * 85.0, 3)}  # fmt: skip


def _query(
    t: float, summary: str, shape_hash: str, durations: list[float], rows: int
) -> dict[str, Any]:
    return {"t": t, "pid": 4242, "namespace": "warehouse", "operation": summary.split()[0],
            "summary": summary, "shape": summary + " WHERE id = ?", "shape_hash": shape_hash,
            "error_type": None, "count": len(durations), "rows": rows, "rows_max": rows,
            **record_stats("duration", durations)}  # fmt: skip


def _processes(i: int, peak: int) -> list[dict[str, Any]]:
    """A sample's top processes: the job, a worker that grows, and a short-lived compressor."""
    worker = peak // 2 + i * 8 * MIB
    listed = [
        {"pid": 4242, "name": "python3", "rss": peak - worker, "pss": peak - worker - 30 * MIB,
         "hwm": peak - worker, "cpu_percent": 50.0 + (i % 2) * 50.0, "cpu_seconds": 20.0 * i},
        {"pid": 4250, "name": "duckdb-worker", "rss": worker, "pss": worker - 12 * MIB,
         "hwm": worker, "cpu_percent": 90.0, "cpu_seconds": 0.9 * i},
    ]  # fmt: skip
    if 5 <= i < 8:
        listed.append({"pid": 4301, "name": "gzip", "rss": 2 * MIB, "pss": None, "hwm": 2 * MIB,
                       "cpu_percent": 99.5, "cpu_seconds": 1.0 * (i - 4)})  # fmt: skip
    return listed


def write_run(root: Path, index: int, name: str, peak: int, scale: float = 1.0) -> Path:
    """A finished run ``index`` hours after START, with three operations, two query shapes
    and a failure; ``scale`` stretches every duration."""
    start = START + 3600 * index
    run_id = f"20261102T{8 + index:02d}0000Z-00000{index}"
    directory = root / run_id
    directory.mkdir(parents=True)
    summary: dict[str, Any] = dict.fromkeys(store.FIGURES, 0)
    summary.update(
        wall_seconds=612.5 * scale,
        cpu_user_seconds=540.25 * scale,
        cpu_system_seconds=31.5,
        cpu_utilization_mean=0.93,
        cpu_utilization_peak=1.98,
        peak_memory_bytes=peak,
        peak_memory_source="samples (PSS of the tree)",
        peak_rss_sampled_bytes=peak + 3 * MIB,
        average_rss_bytes=peak * 3 // 4,
        peak_pss_sampled_bytes=peak,
        peak_rss_single_process_bytes=peak - 40 * MIB,
        peak_cgroup_bytes=peak + 512 * MIB,
        read_bytes=12 * 2**30,
        written_bytes=750 * MIB,
        peak_gpu_memory_bytes=None,
        peak_processes=5,
        peak_threads=23,
        samples=20,
        energy_joules={"cpu": 52_000.0 * scale, "dram": 3_100.0 * scale},
    )
    record = {"id": run_id, "name": name, "status": "succeeded", "start": start,
              "end": start + 612.5 * scale, "exit_code": 0, "interval_seconds": 1.0,
              "summary": summary,
              "held": {"cpus": 4.0, "cpus_from": "cgroup", "memory_bytes": 8 * 2**30,
                       "memory_from": "cgroup", "gpus": 0}}  # fmt: skip
    (directory / "run.json").write_text(json.dumps(record))
    samples = [{"t": start + i, "pss": peak, "cpu_utilization": 0.5 + (i % 4) * 0.5,
                "top_processes": _processes(i, peak)} for i in range(20)]  # fmt: skip
    samples[-1]["ended_processes"] = [{"pid": 4242, "name": "python3", "cpu_seconds": 412.5}]
    (directory / "usage.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    t = start + 600
    operations = [
        _operation(t, "extract_orders_from_warehouse", {"table": "orders"},
                   [0.4213 * scale, 0.5102 * scale, 0.6633 * scale], peak),
        _operation(t, "transform", {}, [0.0605 * scale] * 7, peak - 10 * MIB),
        _operation(t, "notify", {}, [9.28e-6], peak - 20 * MIB, error="TimeoutError"),
    ]  # fmt: skip
    queries = [
        _query(t, "SELECT orders", "1dd2c5037966", [0.0123 * scale] * 30, 3000),
        _query(t, "INSERT shipping_details SELECT orders", "aa0852a9b1de",
               [1.25 * scale, 1.5 * scale], 200_000),
    ]  # fmt: skip
    failures = [{"t": t, "pid": 4242, "source": "etl", "name": "notify",
                 "error_type": "TimeoutError"}]  # fmt: skip
    for kind, rows in (("operations", operations), ("queries", queries), ("failures", failures)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (directory / f"{kind}.4242.jsonl").write_text(text)
    return directory


def make_store(root: Path) -> list[str]:
    """Two runs of ``nightly-etl`` (the second slower and larger) and one of ``backfill``."""
    return [
        write_run(root, 0, "nightly-etl", 1536 * MIB).name,
        write_run(root, 1, "backfill", 300 * MIB, scale=0.5).name,
        write_run(root, 2, "nightly-etl", 1800 * MIB, scale=1.25).name,
    ]
