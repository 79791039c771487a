"""Making an SDK MeterProvider fit for a forked child.

The SDK (1.45) gives the child its own process.pid but keeps the parent's
aggregates, so a child re-exports its parent's counts (opentelemetry-python
#3885). There is no public API for this, so the SDK's private attributes are
touched here, in one place, defensively: if they move, the child keeps the
inherited figures and one warning says so; tests/test_fork.py catches it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import Resource

from jobmeter._resource import process_identity

_log = logging.getLogger("jobmeter")


def reset_provider(provider: MeterProvider) -> None:
    """Drop inherited aggregates and give the child its own identity."""
    try:
        # Locks held by parent threads at fork time would never be released here.
        provider._meter_lock = threading.Lock()
        provider._lock = threading.Lock()
        consumer: Any = provider._measurement_consumer
        consumer._lock = threading.Lock()
        for storage in consumer._reader_storages.values():
            storage._lock = threading.RLock()
            # Emptied, the storage builds fresh aggregations on the next measurement.
            storage._instrument_view_instrument_matches = {}
        provider._update_resource(Resource(process_identity()))
    except AttributeError:
        _log.warning(
            "jobmeter: this opentelemetry-sdk version hides its aggregates; a forked child "
            "may re-export its parent's figures"
        )


def replace_exporter(reader: MetricReader, exporter: MetricExporter) -> None:
    """Give a periodic reader a new exporter (new connection) in the child."""
    target: Any = reader
    if hasattr(target, "_exporter"):
        target._exporter = exporter
        target._export_lock = threading.Lock()
