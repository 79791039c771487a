"""Helpers for tests of code that uses jobmeter: an in-memory reader and point look-ups.

Example:
    >>> import jobmeter
    >>> from jobmeter.testing import in_memory
    >>> with in_memory() as recorded:
    ...     ops = jobmeter.MetricsCollector("etl")
    ...     with ops.measure("load"):
    ...         pass
    ...     recorded.count("jobmeter.operation.duration", {"operation.name": "load"})
    1
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.metrics.export import (
    DataPointT,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.resources import Resource

from jobmeter._core.reset import reset
from jobmeter._core.sdk import configure
from jobmeter._core.telemetry import Telemetry

__all__ = ["InMemoryMetrics", "in_memory", "reset"]


class InMemoryMetrics:
    """Collects from an in-memory reader and finds points by metric name and attributes."""

    def __init__(self, reader: InMemoryMetricReader, telemetry: Telemetry) -> None:
        self.reader = reader
        self.telemetry = telemetry

    def metrics(self) -> list[tuple[Resource, Metric]]:
        """Collect now; every metric with the resource it came from."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            (rm.resource, metric)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        ]

    def points(self, name: str, attributes: Mapping[str, Any] | None = None) -> list[DataPointT]:
        """Points of metric ``name`` whose attributes include all of ``attributes``."""
        wanted = dict(attributes or {})
        return [
            point
            for _, metric in self.metrics()
            if metric.name == name
            for point in metric.data.data_points
            if all((point.attributes or {}).get(k) == v for k, v in wanted.items())
        ]

    def value(self, name: str, attributes: Mapping[str, Any] | None = None) -> float:
        """Sum of the values of matching counter, up-down counter or gauge points."""
        return sum(p.value for p in self.points(name, attributes) if isinstance(p, NumberDataPoint))

    def count(self, name: str, attributes: Mapping[str, Any] | None = None) -> int:
        """Number of recordings in matching histogram points."""
        return sum(
            p.count for p in self.points(name, attributes) if isinstance(p, HistogramDataPoint)
        )

    def resource(self) -> Resource:
        """The resource the points were exported with."""
        found = self.metrics()
        return found[0][0] if found else Resource.get_empty()


@contextmanager
def in_memory(**overrides: Any) -> Iterator[InMemoryMetrics]:
    """Configure jobmeter with only an in-memory reader; reset global state around it.

    Keyword arguments are those of :func:`jobmeter.configure` (``exporters``
    defaults to ``"none"``, so no port is opened). Backfills that are open stay
    open, and the new provider publishes them; :func:`reset` closes them.
    """
    reset(close_backfills=False)
    reader = InMemoryMetricReader()
    overrides.setdefault("exporters", "none")
    telemetry = configure(metric_readers=[reader], **overrides)
    try:
        yield InMemoryMetrics(reader, telemetry)
    finally:
        reset(close_backfills=False)
