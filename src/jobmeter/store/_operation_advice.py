"""``advise`` per operation and per query shape: what each part of a job takes across runs.

A run's advice says what the whole job needs; this says which part needs it.
For each operation (collector, name and attributes) and each DuckDB query
shape seen in the runs, across the runs that have it:

- time: the percentile of each run's p95 block time (a slow run's slow calls,
  not one outlier call among thousands);
- memory: the percentile of each run's largest peak while the operation ran,
  with headroom, rounded up as a request is (the operation with the largest
  one sets the job's memory request);
- energy: the mean per run of the machine's energy while it ran.

The rows come from the store's index (``operations_of``), so many runs are
read with one query rather than one DuckDB read of records per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobmeter.store._advise import MEMORY_STEP, Resource, round_up
from jobmeter.store._index.operations import operations_of
from jobmeter.store._runs import StoredRun, StoreError
from jobmeter.store._runs import percentile as _percentile


@dataclass
class PartAdvice:
    """One operation or query shape across the runs that have it."""

    kind: str  # "operation" or "query"
    label: str  # "load {table=orders}", or the query's summary
    collector: str | None  # operations: the collector; queries: None
    namespace: str | None  # queries: the database; operations: None
    shape_hash: str | None
    runs: int
    calls_per_run: float
    errors: int
    #: The percentile over runs of each run's p95 block time.
    duration_p95_seconds: float | None
    #: The percentile over runs of each run's largest peak memory, with headroom and request.
    peak_memory_bytes: Resource | None
    #: Mean energy per run (J, the machine's while it ran); None where not metered.
    energy_per_run_joules: float | None

    def to_json(self) -> dict[str, Any]:
        """Stable keys, documented in docs/run-store.md."""
        return {
            "kind": self.kind,
            "label": self.label,
            "collector": self.collector,
            "namespace": self.namespace,
            "shape_hash": self.shape_hash,
            "runs": self.runs,
            "calls_per_run": self.calls_per_run,
            "errors": self.errors,
            "duration_p95_seconds": self.duration_p95_seconds,
            "peak_memory_bytes": None
            if self.peak_memory_bytes is None
            else self.peak_memory_bytes.to_json(),
            "energy_per_run_joules": self.energy_per_run_joules,
        }


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    if row["kind"] == "query":
        return ("query", row["namespace"], row["summary"], row["shape_hash"])
    return ("operation", row["collector"], row["label"] or row["operation"])


def _part(rows: list[dict[str, Any]], q: float, headroom: float) -> PartAdvice:
    first = rows[0]
    query = first["kind"] == "query"
    per_run_p95 = [r["duration_p95_seconds"] for r in rows if r["duration_p95_seconds"] is not None]
    peaks: list[float | None] = [r.get("peak_memory_max_bytes") for r in rows]
    known_peaks = [p for p in peaks if p is not None]
    memory = None
    if known_peaks:
        observed = _percentile(known_peaks, q)
        with_headroom = observed * (1 + headroom)
        memory = Resource(peaks, observed, with_headroom, round_up(with_headroom, MEMORY_STEP))
    energies = [r["energy_total_joules"] for r in rows if r.get("energy_total_joules") is not None]
    return PartAdvice(
        kind="query" if query else "operation",
        label=str(first["summary"] if query else (first["label"] or first["operation"])),
        collector=None if query else first["collector"],
        namespace=first["namespace"] if query else None,
        shape_hash=first["shape_hash"] if query else None,
        runs=len({r["run_id"] for r in rows}),
        calls_per_run=sum(r["count"] or 0 for r in rows) / len({r["run_id"] for r in rows}),
        errors=sum(r["errors"] or 0 for r in rows),
        duration_p95_seconds=_percentile(per_run_p95, q) if per_run_p95 else None,
        peak_memory_bytes=memory,
        energy_per_run_joules=sum(energies) / len(energies) if energies else None,
    )


def advise_operations(
    runs: Sequence[StoredRun], percentile: float = 95.0, headroom: float = 0.2
) -> list[PartAdvice]:
    """Each operation and query shape of ``runs``: time, memory and energy across them.

    Operations first, the largest memory request first (the one that sets the
    job's), then by time; then query shapes, the slowest first.

    Raises:
        ValueError: no runs, a percentile outside 0-100, or a negative headroom.
        StoreError: none of the runs started.
    """
    if not runs:
        raise ValueError("no runs to advise from")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within 0-100, got {percentile!r}")
    if headroom < 0:
        raise ValueError("headroom must be 0 or more")
    started = [run for run in runs if run.started]
    if not started:
        raise StoreError("no run that started to advise from")
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in operations_of(started):
        groups.setdefault(_key(row), []).append(row)
    parts = [_part(rows, percentile, headroom) for rows in groups.values()]

    def order(part: PartAdvice) -> tuple[Any, ...]:
        memory = part.peak_memory_bytes.request if part.peak_memory_bytes is not None else -1.0
        return (part.kind != "operation", -memory if part.kind == "operation" else 0.0,
                -(part.duration_p95_seconds or 0.0), part.label)  # fmt: skip

    return sorted(parts, key=order)
