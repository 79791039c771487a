"""jobmeter: measure what data and compute jobs cost, as OpenTelemetry metrics.

The public API is this module; everything in ``jobmeter._*`` is private.

Example:
    >>> import jobmeter
    >>> telemetry = jobmeter.configure()          # Prometheus on localhost:8000
    >>> ops = jobmeter.MetricsCollector("etl")
    >>> with ops.measure("load_orders", {"table": "orders"}):
    ...     load()
"""

from jobmeter._errors import ConfigurationError
from jobmeter._sdk import Telemetry, configure
from jobmeter._version import __version__
from jobmeter.backfill import Backfill
from jobmeter.collector import Measurement, MetricsCollector
from jobmeter.gpu import GPUCollector
from jobmeter.host import HostCollector, start_host_metrics
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


def __getattr__(name: str) -> object:
    # ``jobmeter.duckdb`` after a bare ``import jobmeter``, without importing DuckDB
    # (a tenth of a second) into programs that never use it.
    if name == "duckdb":
        import importlib

        return importlib.import_module("jobmeter.duckdb")
    raise AttributeError(f"module 'jobmeter' has no attribute {name!r}")
