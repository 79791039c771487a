"""What ``jobmeter.cometml.log_run`` sends to Comet, read from a run directory.

Everything is gathered first (no comet_ml here), then sent by cometml.py: a
damaged run fails before an experiment is touched, and the names that land in
Comet are in one place. Names are prefixed ``jobmeter/`` so that they stand apart
from the model's own metrics in a shared experiment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from jobmeter import store
from jobmeter._rundata import records
from jobmeter._rundata.aggregates import operation_label
from jobmeter._rundata.schema import USAGE_COLUMNS
from jobmeter._rundata.sketch import merged
from jobmeter._rundata.usage import usage_source

PREFIX: Final = "jobmeter/"
#: Samples of usage.jsonl sent at most; a longer run is thinned evenly (the last kept).
MAX_SAMPLES: Final = 2000
#: The usage.jsonl columns sent as metrics over time (step = sample index).
USAGE_SERIES: Final = ("cpu_utilization", "rss", "pss", "hwm", "processes", "threads",
                       "read_bytes", "write_bytes", "open_files", "gpu_memory")  # fmt: skip

OPERATION_HEADERS: Final = [
    "collector", "operation", "attributes", "count", "errors", "total_seconds", "mean_seconds",
    "min_seconds", "p50_seconds", "p95_seconds", "max_seconds", "cpu_total_seconds",
    "memory_p95_bytes", "peak_memory_p95_bytes", "peak_memory_max_bytes",
]  # fmt: skip
QUERY_HEADERS: Final = [
    "namespace", "operation", "summary", "shape", "shape_hash", "count", "errors", "total_seconds",
    "min_seconds", "p50_seconds", "p95_seconds", "max_seconds", "rows", "rows_max",
]  # fmt: skip
FAILURE_HEADERS: Final = ["source", "name", "error_type", "count", "first_unix", "last_unix"]


@dataclass
class Table:
    """One CSV asset: its headers and rows."""

    headers: list[str]
    rows: list[list[Any]]


@dataclass
class Payload:
    """Everything one run sends to Comet, by the name it lands under."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    others: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    histograms: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)


def collect(run: store.StoredRun) -> Payload:
    """Read one run (run.json, usage.jsonl, records) into what is sent."""
    report = store.report(run)
    payload = Payload(run.name or run.id)
    _identity(run, payload)
    for figure, value in report.figures.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            payload.metrics[PREFIX + figure] = float(value)
        else:
            payload.others[PREFIX + figure] = str(value)
    if report.cost is not None:  # at the prices set where the payload is made
        payload.metrics[PREFIX + "cost"] = report.cost.total
        payload.others[PREFIX + "cost_currency"] = report.cost.currency
    exit_code = run.record.get("exit_code")
    if isinstance(exit_code, int):
        payload.metrics[PREFIX + "exit_code"] = float(exit_code)
    payload.others[PREFIX + "figures_source"] = report.source
    payload.series = _usage(run)
    payload.histograms = _durations(run.directory)
    records = report.records
    payload.tables["jobmeter-operations.csv"] = Table(list(OPERATION_HEADERS), [
        [op["collector"], op["operation"], json.dumps(op["attributes"], sort_keys=True),
         op["count"], op["errors"], op["duration_total_seconds"], op["duration_mean_seconds"],
         op["duration_min_seconds"], op["duration_p50_seconds"], op["duration_p95_seconds"],
         op["duration_max_seconds"], op["cpu_total_seconds"], op["memory_p95_bytes"],
         op["peak_memory_p95_bytes"], op["peak_memory_max_bytes"]]
        for op in records.operations
    ])  # fmt: skip
    payload.tables["jobmeter-queries.csv"] = Table(list(QUERY_HEADERS), [
        [q["namespace"], q["operation"], q["summary"], q["shape"], q["shape_hash"], q["count"],
         q["errors"],
         q["duration_total_seconds"], q["duration_min_seconds"], q["duration_p50_seconds"],
         q["duration_p95_seconds"], q["duration_max_seconds"], q["rows"], q["rows_max"]]
        for q in records.queries
    ])  # fmt: skip
    if records.failures:
        payload.tables["jobmeter-failures.csv"] = Table(list(FAILURE_HEADERS), [
            [f["source"], f["name"], f["error_type"], f["count"], f["first_unix"], f["last_unix"]]
            for f in records.failures
        ])  # fmt: skip
    return payload


def _identity(run: store.StoredRun, payload: Payload) -> None:
    """Run identity and machine as parameters; status and provenance as others."""
    record = run.record
    payload.parameters[PREFIX + "run_id"] = run.id
    payload.parameters[PREFIX + "run_name"] = run.name
    git = record.get("git")
    if isinstance(git, dict):
        payload.parameters[PREFIX + "git_commit"] = git.get("commit")
        payload.parameters[PREFIX + "git_dirty"] = git.get("dirty")
    host = record.get("host")
    if isinstance(host, dict):
        for key, value in sorted(host.items()):
            payload.parameters[f"{PREFIX}host/{key}"] = value
    if isinstance(record.get("interval_seconds"), int | float):
        payload.parameters[PREFIX + "interval_seconds"] = record["interval_seconds"]
    payload.others[PREFIX + "status"] = run.state
    payload.others[PREFIX + "kind"] = record.get("kind")
    payload.others[PREFIX + "start"] = run.start_iso()
    payload.others[PREFIX + "jobmeter_version"] = record.get("jobmeter_version")


def _usage(run: store.StoredRun) -> dict[str, list[tuple[int, float]]]:
    """usage.jsonl as series of (sample index, value), thinned to MAX_SAMPLES."""
    path = run.directory / "usage.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    import duckdb

    names = ", ".join(f'"{name}"' for name in ("t", *USAGE_SERIES) if name in USAGE_COLUMNS)
    with duckdb.connect() as connection:
        rows = connection.execute(
            f"SELECT {names} FROM {usage_source(path)} WHERE t IS NOT NULL ORDER BY t",
            {"path": str(path)},
        ).fetchall()
    if not rows:
        return {}
    keep = _thinned(len(rows))
    start = run.start if run.start is not None else rows[0][0]
    series: dict[str, list[tuple[int, float]]] = {PREFIX + "usage/elapsed_seconds": []}
    for index in keep:
        t, *values = rows[index]
        series[PREFIX + "usage/elapsed_seconds"].append((index, float(t - start)))
        for name, value in zip(USAGE_SERIES, values, strict=True):
            if value is not None:
                series.setdefault(f"{PREFIX}usage/{name}", []).append((index, float(value)))
    return series


def _thinned(n: int) -> list[int]:
    if n <= MAX_SAMPLES:
        return list(range(n))
    stride = n / (MAX_SAMPLES - 1)
    return sorted({min(round(i * stride), n - 1) for i in range(MAX_SAMPLES)})


def _durations(directory: Path) -> dict[str, tuple[list[float], list[int]]]:
    """Each operation's durations as (value, count) pairs: the values themselves while an
    operation has few (``sketch.EXACT_LIMIT``), else its merged sketch's buckets, each
    standing for its midpoint (within 1 % of every value in it). The counts are exact.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in records.read(directory, "operations").rows:
        key = (row["collector"] or "", row["operation"] or "", row["attributes"] or "{}")
        groups.setdefault(key, []).append(row)
    out: dict[str, tuple[list[float], list[int]]] = {}
    for (collector, operation, attributes), rows in sorted(groups.items()):
        sketch = merged(row["duration_sketch"] for row in rows)
        if sketch.count == 0:
            continue
        try:
            parsed = json.loads(attributes)
        except ValueError:
            parsed = {}
        label = operation_label(
            {"operation": operation, "attributes": parsed if isinstance(parsed, dict) else {}}
        )
        values, counts = sketch.distribution()
        out[f"{PREFIX}operation/{collector}/{label}"] = (values, counts)
    return out
