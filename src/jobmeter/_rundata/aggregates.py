"""One figure's statistics, kept while a run records and merged again when it is read.

While a run records, each interval's blocks of one key become count, sum,
min, max and a quantile sketch of each figure (``Stats``); the recorder writes
them as ``<figure>_sum`` ... ``<figure>_sketch`` columns. Readers merge the rows
of all intervals and processes back into one set (``merged_stats``): sums add,
extremes compare, sketches merge exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from jobmeter._rundata.schema import STATS, stats_columns
from jobmeter._rundata.sketch import Sketch, merged

# Attributes every operation has, or that tell its error apart: not shown as its attributes.
_HIDDEN: Final = frozenset({"operation.name", "error.type"})


class Stats:
    """Count, sum, min, max and a sketch of one figure."""

    __slots__ = ("count", "high", "low", "sketch", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")
        self.sketch = Sketch()

    def add_sorted(self, values: Sequence[float]) -> None:
        if not values:
            return
        self.count += len(values)
        self.total += sum(values)
        self.low = min(self.low, values[0])
        self.high = max(self.high, values[-1])
        self.sketch.add_sorted(values)

    def fields(self, prefix: str) -> dict[str, Any]:
        """``<prefix>_sum/_min/_max/_p50/_p95/_sketch``; nulls when nothing was added."""
        if not self.count:
            return dict.fromkeys(stats_columns(prefix))
        return {
            f"{prefix}_sum": self.total,
            f"{prefix}_min": self.low,
            f"{prefix}_max": self.high,
            f"{prefix}_p50": self.sketch.quantile(0.5, self.low, self.high),
            f"{prefix}_p95": self.sketch.quantile(0.95, self.low, self.high),
            f"{prefix}_sketch": self.sketch.to_json(),
        }


def attributes_text(attributes: Mapping[str, Any]) -> str:
    """The attributes that tell operations of one name apart, as sorted JSON text."""
    shown = {k: v for k, v in attributes.items() if k not in _HIDDEN}
    return json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str)


def operation_label(operation: dict[str, Any]) -> str:
    """``load {table=orders}``: the name and the attributes that set it apart."""
    extra = ", ".join(f"{k}={v}" for k, v in operation["attributes"].items())
    return f"{operation['operation']} {{{extra}}}" if extra else str(operation["operation"])


class OperationAggregate:
    """What the blocks of one operation key measured in one interval."""

    __slots__ = ("count", "cpu", "duration", "energy", "io_read", "io_write", "memory", "peak")

    def __init__(self) -> None:
        self.count = 0
        self.io_read = self.io_write = 0  # B, the blocks with resources
        self.duration, self.cpu, self.memory, self.peak = Stats(), Stats(), Stats(), Stats()
        self.energy: float | None = None  # J, the blocks that metered it


class QueryAggregate:
    """What the statements of one query shape took in one interval."""

    __slots__ = ("duration", "rows", "rows_max")

    def __init__(self) -> None:
        self.duration = Stats()
        self.rows = 0
        self.rows_max: int | None = None


def merged_stats(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """``sum``, ``min``, ``max``, ``p50``, ``p95`` and ``sketch`` of one figure over rows
    (intervals, processes), from their ``<prefix>_*`` columns; all None without any."""
    present = [row for row in rows if row.get(f"{prefix}_sum") is not None]
    if not present:
        return dict.fromkeys((*STATS, "sketch"))
    if len(present) == 1:  # one interval of one process: its figures are the merged ones
        only = present[0]
        return {name: only.get(f"{prefix}_{name}") for name in (*STATS, "sketch")}
    low = min(row[f"{prefix}_min"] for row in present)
    high = max(row[f"{prefix}_max"] for row in present)
    sketch = merged(row[f"{prefix}_sketch"] for row in present)
    empty = sketch.count == 0
    return {
        "sum": sum(row[f"{prefix}_sum"] for row in present),
        "min": low,
        "max": high,
        "p50": None if empty else sketch.quantile(0.5, low, high),
        "p95": None if empty else sketch.quantile(0.95, low, high),
        "sketch": sketch.to_json(),
    }
