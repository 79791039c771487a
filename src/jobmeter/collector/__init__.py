"""``MetricsCollector``: the base of every collector, ``measure()``, and ``UsageMeter``."""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter._core.instruments import Attributes
from jobmeter.collector._collector import MetricsCollector
from jobmeter.collector._measure import Measurement, error_type
from jobmeter.collector._usage import BlockUsage, UsageMeter

__all__ = [
    "Attributes",
    "BlockUsage",
    "Measurement",
    "MetricsCollector",
    "UsageMeter",
    "error_type",
]

publish(globals())
