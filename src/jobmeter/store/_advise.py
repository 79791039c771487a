"""What to request for the next run (``jobmeter advise``), and Parquet exports of a run."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobmeter._rundata.records import compact
from jobmeter._rundata.schema import USAGE_COLUMNS
from jobmeter._rundata.usage import usage_source
from jobmeter.store._cost import cost_of, held_of, prices
from jobmeter.store._figures import figures_of
from jobmeter.store._runs import StoredRun, StoreError, percentile

MEMORY_STEP = 256 * 2**20
CPU_STEP = 0.5

BASIS = (
    "from measured usage (the runs' own peaks in run.json and usage.jsonl), "
    "not from what the runs requested"
)


def round_up(value: float, step: float) -> float:
    """``value`` rounded up to a whole number of ``step``, at least one step."""
    return max(math.ceil(value / step - 1e-9), 1) * step


@dataclass
class Resource:
    """One resource to request: the runs' figures, their percentile, and the request."""

    per_run: list[float | None]
    observed: float
    with_headroom: float
    request: float

    def to_json(self) -> dict[str, Any]:
        """Stable keys, documented in docs/run-store.md."""
        return {
            "per_run": self.per_run,
            "observed": self.observed,
            "with_headroom": self.with_headroom,
            "request": self.request,
        }


@dataclass
class Advice:
    """What ``jobmeter advise`` prints: one Resource per kind, None for no GPU."""

    runs: list[str]
    percentile: float
    headroom: float
    memory_bytes: Resource
    cpus: Resource
    gpu_memory_bytes: Resource | None
    #: The runs' energy (J, the machine's); None where no run metered it. No headroom:
    #: energy is not requested, it is what the size chosen spends.
    energy_joules: Resource | None = None
    #: Mean cost of a run as it ran, and at the advised CPUs and memory (None: no prices).
    cost_per_run: float | None = None
    cost_per_run_advised: float | None = None
    currency: str = "USD"

    @property
    def basis(self) -> str:
        """What the advice rests on: measured usage, not what the runs requested."""
        return BASIS

    def to_json(self) -> dict[str, Any]:
        """Stable keys, documented in docs/run-store.md."""
        return {
            "basis": self.basis,
            "runs": self.runs,
            "percentile": self.percentile,
            "headroom": self.headroom,
            "memory_bytes": self.memory_bytes.to_json(),
            "cpus": self.cpus.to_json(),
            "gpu_memory_bytes": None
            if self.gpu_memory_bytes is None
            else self.gpu_memory_bytes.to_json(),
            "energy_joules": None if self.energy_joules is None else self.energy_joules.to_json(),
            "cost_per_run": self.cost_per_run,
            "cost_per_run_advised": self.cost_per_run_advised,
            "currency": self.currency,
        }


def _resource(
    values: list[float | None], q: float, headroom: float, rounding: Callable[[float], float]
) -> Resource | None:
    known = [value for value in values if value is not None]
    if not known:
        return None
    observed = percentile(known, q)
    with_headroom = observed * (1 + headroom)
    return Resource(values, observed, with_headroom, rounding(with_headroom))


def _cpus(figures: dict[str, Any]) -> float | None:
    """The run's p95 of sampled CPU utilization, else its mean (a run of one sample)."""
    value = figures.get("cpu_utilization_p95")
    if value is None:
        value = figures.get("cpu_utilization_mean")
    return None if value is None else float(value)


def advise(runs: Sequence[StoredRun], percentile: float = 95.0, headroom: float = 0.2) -> Advice:
    """Memory, CPUs and GPU memory to request: the percentile over the runs' peaks plus headroom.

    Runs whose command could not start (``not_started``) are left out: their
    figures are zeros, not usage.

    Raises:
        ValueError: no runs, or a percentile outside 0-100, or a negative headroom.
        StoreError: none of the runs started.
    """
    if not runs:
        raise ValueError("no runs to advise from")
    if headroom < 0:
        raise ValueError("headroom must be 0 or more")
    runs = [run for run in runs if run.started]
    if not runs:
        raise StoreError("no run that started to advise from")
    # The index's figures where the run was listed from it: no file of the run is read.
    figures = figures_of(runs)

    def by_memory(value: float) -> float:
        return round_up(value, MEMORY_STEP)

    def by_cpu(value: float) -> float:
        return round_up(value, CPU_STEP)

    memory = _resource(
        [f.get("peak_memory_bytes") for f in figures], percentile, headroom, by_memory
    )
    cpus = _resource([_cpus(f) for f in figures], percentile, headroom, by_cpu)
    gpu = _resource(
        [f.get("peak_gpu_memory_bytes") for f in figures], percentile, headroom, by_memory
    )
    energy = _resource([f.get("energy_total_joules") for f in figures], percentile, 0.0, float)
    assert memory is not None
    assert cpus is not None
    price = prices()
    held = [held_of(run.record) for run in runs]
    now = [cost_of(f, h, price) for f, h in zip(figures, held, strict=True)]
    advised = [cost_of(f, h, price, cpus=cpus.request, memory_bytes=memory.request)
               for f, h in zip(figures, held, strict=True)]  # fmt: skip
    return Advice(
        [run.id for run in runs], percentile, headroom, memory, cpus, gpu, energy,
        _mean([c.total for c in now if c is not None]),
        _mean([c.total for c in advised if c is not None]), price.currency,
    )  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in record.items():
        name = (prefix + key).replace(".", "_")
        if isinstance(value, dict):
            row.update(_flatten(value, name + "_"))
        elif isinstance(value, list):
            row[name] = json.dumps(value)
        else:
            row[name] = value
    return row


def export_parquet(run: StoredRun, directory: str | Path) -> dict[str, Any]:
    """Write ``run.parquet`` (run.json flattened, one row), ``usage.parquet`` (the samples)
    and the run's records, merged (``operations.parquet``, ``queries.parquet``, ...).

    Returns:
        ``{"run": path, "usage": path, "samples": rows written to usage.parquet,
        "records": {kind: rows written}}``.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    row = _flatten({**run.record, "status": run.record.get("status"), "state": run.state})
    run_path, usage_path = target / "run.parquet", target / "usage.parquet"
    usage = run.directory / "usage.jsonl"
    import duckdb  # here: the CLI starts without DuckDB until a run is read

    with duckdb.connect() as connection:
        descriptor, temporary = tempfile.mkstemp(suffix=".json", dir=target)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(row, handle)
            connection.execute(
                "COPY (SELECT * FROM read_json($path, format='newline_delimited')) "
                "TO $out (FORMAT parquet)",
                {"path": temporary, "out": str(run_path)},
            )
        finally:
            os.unlink(temporary)
        if usage.is_file() and usage.stat().st_size:
            source = f"(SELECT * FROM {usage_source(usage)} WHERE t IS NOT NULL)"
            connection.execute(
                f"COPY {source} TO $out (FORMAT parquet)",
                {"path": str(usage), "out": str(usage_path)},
            )
        else:
            empty = ", ".join(f"NULL::{kind} AS {name}" for name, kind in USAGE_COLUMNS.items())
            connection.execute(
                f"COPY (SELECT {empty} WHERE false) TO $out (FORMAT parquet)",
                {"out": str(usage_path)},
            )
        count = connection.execute(
            "SELECT count(*) FROM read_parquet($p)", {"p": str(usage_path)}
        ).fetchone()
    records = compact(run.directory, target)
    return {"run": str(run_path), "usage": str(usage_path), "samples": count[0] if count else 0,
            "records": records}  # fmt: skip
