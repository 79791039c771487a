"""Small real models for the torch tests, and reading their blocks back from the metrics."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint
from torch import nn

from jobmeter.testing import InMemoryMetrics

DURATION = "jobmeter.operation.duration"


class Block(nn.Module):
    """A child with children of its own: ``inner`` (Linear, ReLU) then ``out``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.out = nn.Linear(width, width)

    def forward(self, x: Any) -> Any:
        return self.out(self.inner(x))


class Net(nn.Module):
    """``embed``, ``block`` (nested), ``head``: the names depth 0 to 3 must give."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.block = Block(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x: Any) -> Any:
        return self.head(self.block(self.embed(x)))


def blocks(
    recorded: InMemoryMetrics, module: str, phase: str = "forward", *, failed: bool = False
) -> tuple[int, float]:
    """(number of blocks, total seconds) of one module and phase, successes or failures only."""
    count, total = 0, 0.0
    for point in recorded.points(DURATION, {"torch.module": module, "torch.phase": phase}):
        assert isinstance(point, HistogramDataPoint)
        if ("error.type" in (point.attributes or {})) is failed:
            count += point.count
            total += point.sum
    return count, total


def modules_seen(recorded: InMemoryMetrics) -> set[str]:
    """Every ``torch.module`` with a recorded block."""
    return {
        str((p.attributes or {})["torch.module"])
        for p in recorded.points(DURATION)
        if "torch.module" in (p.attributes or {}) and p.count  # type: ignore[union-attr]
    }
