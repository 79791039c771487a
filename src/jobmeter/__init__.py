"""jobmeter: measure what data and compute jobs cost, as OpenTelemetry metrics.

The public API is this module; everything in ``jobmeter._*`` is private.

Example:
    >>> import jobmeter
    >>> telemetry = jobmeter.configure()          # Prometheus on localhost:8000
    >>> ops = jobmeter.MetricsCollector("etl")
    >>> with ops.measure("load_orders", {"table": "orders"}):
    ...     load()
"""

from __future__ import annotations

import importlib

from jobmeter._version import __version__

# Not typing.TYPE_CHECKING: importing typing would take most of `import jobmeter`'s time.
# Type checkers treat any constant of this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobmeter._core.errors import ConfigurationError
    from jobmeter._core.sdk import configure
    from jobmeter._core.telemetry import Telemetry
    from jobmeter.backfill import Backfill
    from jobmeter.collector import Measurement, MetricsCollector
    from jobmeter.host import GPUCollector, HostCollector, start_host_metrics
    from jobmeter.run import Run

__all__ = [
    "Backfill",
    "ConfigurationError",
    "GPUCollector",
    "HostCollector",
    "Measurement",
    "MetricsCollector",
    "Run",
    "Telemetry",
    "__version__",
    "configure",
    "start_host_metrics",
]

# Loaded on first use: `import jobmeter` stays cheap (the OpenTelemetry SDK, psutil
# and DuckDB load with what needs them), and `jobmeter report` starts fast.
_LAZY = {
    "Backfill": "jobmeter.backfill",
    "ConfigurationError": "jobmeter._core.errors",
    "GPUCollector": "jobmeter.host",
    "HostCollector": "jobmeter.host",
    "Measurement": "jobmeter.collector",
    "MetricsCollector": "jobmeter.collector",
    "Run": "jobmeter.run",
    "Telemetry": "jobmeter._core.telemetry",
    "configure": "jobmeter._core.sdk",
    "start_host_metrics": "jobmeter.host",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    if name in ("duckdb", "torch"):
        return importlib.import_module(f"jobmeter.{name}")
    raise AttributeError(f"module 'jobmeter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "duckdb", "torch"])
