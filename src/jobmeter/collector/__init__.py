"""``MetricsCollector``: the base of every collector, and ``measure()``."""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter.collector._measure import Attributes, Measurement, MetricsCollector, error_type

__all__ = [
    "Attributes",
    "Measurement",
    "MetricsCollector",
    "error_type",
]

publish(globals())
