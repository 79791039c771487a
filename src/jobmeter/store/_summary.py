"""What a run's records say, as ``jobmeter report`` and ``compare`` show them.

Operations are told apart by collector, name and attributes; their error
types are added up into ``errors``. Queries by database, operation, summary
and shape (its hash; runs before shapes have none). Failures are counted by where, what and error
type, with the first and last time. Backfills show their last progress line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobmeter._rundata import records
from jobmeter._rundata.aggregates import merged_stats, operation_label


@dataclass
class RecordSummary:
    """The records of one run, summarized; lists sorted by total time (largest first)."""

    operations: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    backfills: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def _quantiles(rows: list[dict[str, Any]], prefix: str) -> dict[str, float | None]:
    stats = merged_stats(rows, prefix)
    return {"total": stats["sum"], "min": stats["min"], "p50": stats["p50"],
            "p95": stats["p95"], "max": stats["max"]}  # fmt: skip


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def _grouped(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return list(groups.values())


def _calls(group: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, errors and duration figures of the rows of one operation or query shape."""
    count = sum(row["count"] or 0 for row in group)
    duration = _quantiles(group, "duration")
    total = duration["total"] or 0.0
    return {
        "count": count,
        "errors": sum(row["count"] or 0 for row in group if row["error_type"]),
        "duration_total_seconds": total,
        "duration_mean_seconds": total / count if count else None,
        "duration_min_seconds": duration["min"],
        "duration_p50_seconds": duration["p50"],
        "duration_p95_seconds": duration["p95"],
        "duration_max_seconds": duration["max"],
    }


def _energy(group: list[dict[str, Any]]) -> float | None:
    """The energy of an operation's blocks over its rows; None where none metered it."""
    known = [row["energy_joules"] for row in group if row.get("energy_joules") is not None]
    return sum(known) if known else None


def _io(group: list[dict[str, Any]], column: str) -> int | None:
    """Bytes the operation's blocks with resources read or wrote; None where none had any."""
    known = [row[column] for row in group if row.get(column) is not None]
    return sum(known) if known else None


def _operations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for group in _grouped(rows, ("collector", "operation", "attributes")):
        first = group[0]
        try:
            attributes = json.loads(first["attributes"] or "{}")
        except ValueError:
            attributes = {}
        cpu = _quantiles(group, "cpu")
        memory = _quantiles(group, "memory")
        peak = _quantiles(group, "peak")
        out.append({
            "collector": first["collector"],
            "operation": first["operation"],
            "attributes": attributes if isinstance(attributes, dict) else {},
            **_calls(group),
            "cpu_total_seconds": cpu["total"],
            "cpu_p50_seconds": cpu["p50"],
            "cpu_p95_seconds": cpu["p95"],
            "memory_p50_bytes": _whole(memory["p50"]),
            "memory_p95_bytes": _whole(memory["p95"]),
            "memory_max_bytes": _whole(memory["max"]),
            "peak_memory_p50_bytes": _whole(peak["p50"]),
            "peak_memory_p95_bytes": _whole(peak["p95"]),
            "peak_memory_max_bytes": _whole(peak["max"]),
            "energy_total_joules": _energy(group),
            "io_read_total_bytes": _io(group, "io_read_bytes"),
            "io_write_total_bytes": _io(group, "io_write_bytes"),
        })  # fmt: skip
    for operation in out:
        operation["label"] = operation_label(operation)
    return sorted(out, key=lambda op: (-op["duration_total_seconds"], op["label"]))


def _queries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for group in _grouped(rows, ("namespace", "operation", "summary", "shape_hash")):
        first = group[0]
        maxima = [row["rows_max"] for row in group if row["rows_max"] is not None]
        out.append({
            "namespace": first["namespace"],
            "operation": first["operation"],
            "summary": first["summary"],
            "shape": next((row["shape"] for row in group if row["shape"] is not None), None),
            "shape_hash": first["shape_hash"],
            **_calls(group),
            "rows": sum(row["rows"] or 0 for row in group),
            "rows_max": max(maxima) if maxima else None,
        })  # fmt: skip
    return sorted(out, key=lambda q: (-q["duration_total_seconds"], q["summary"],
                                      q["shape_hash"] or ""))  # fmt: skip


def _failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for group in _grouped(rows, ("source", "name", "error_type")):
        times = [row["t"] for row in group]
        out.append({"source": group[0]["source"], "name": group[0]["name"],
                    "error_type": group[0]["error_type"], "count": len(group),
                    "first_unix": min(times), "last_unix": max(times)})  # fmt: skip
    return sorted(out, key=lambda f: (-f["count"], f["first_unix"]))


def _backfills(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["t"]):
        latest[row["backfill"]] = row
    out = []
    for name, row in sorted(latest.items()):
        total = row["total"]
        finished = (row["done"] or 0) + (row["skipped"] or 0) + (row["failed"] or 0)
        out.append({"backfill": name, "status": row["status"], "done": row["done"],
                    "skipped": row["skipped"], "failed": row["failed"], "total": total,
                    "progress": None if not total else min(finished / total, 1.0),
                    "rate": row["rate"], "eta_seconds": row["eta_seconds"],
                    "updated_unix": row["t"]})  # fmt: skip
    return out


def summarize(directory: Path) -> RecordSummary:
    """Read and summarize every record of a run directory (no records: empty lists)."""
    summary = RecordSummary()
    parts = {
        "operations": _operations,
        "queries": _queries,
        "failures": _failures,
        "progress": _backfills,
    }
    with records.Reader() as reader:
        for kind, summarize_kind in parts.items():  # spans are for plots only
            found = reader.read(directory, kind)
            if found.skipped:
                summary.skipped[kind] = found.skipped
            values = summarize_kind(found.rows)
            setattr(summary, "backfills" if kind == "progress" else kind, values)
    return summary
