"""``MetricsCollector``: the base of every collector, and ``measure()``."""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter._core.instruments import Attributes
from jobmeter.collector._collector import MetricsCollector
from jobmeter.collector._measure import Measurement, error_type

__all__ = [
    "Attributes",
    "Measurement",
    "MetricsCollector",
    "error_type",
]

publish(globals())
