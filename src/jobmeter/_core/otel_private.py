"""Every use of OpenTelemetry's private attributes, in one place.

- Fork: the SDK (1.45) gives a child its own process.pid but keeps the
  parent's aggregates, so a child re-exports its parent's counts
  (opentelemetry-python #3885); ``reset_provider`` drops them.
- Shutdown: the OTLP exporters retry with 1-2-4 s back-off even during the
  final export at exit; ``stop_retrying`` makes that export a single attempt.
- Globals: whether an application installed a MeterProvider, and a reset for tests.
- Meters and exporters: the real meter behind a proxy meter, the
  preferences of an exporter that jobmeter wraps, and the Prometheus
  exporter's name translation (its private ``_mapping`` module), which the
  Pushgateway client uses so that pushed names are the scraped ones.

Each is defensive: if an attribute moves in a later SDK, the feature degrades
with one warning and tests/core/test_fork.py or tests/core/test_shutdown.py fails.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.metrics import MeterProvider as APIMeterProvider
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.util._once import Once

from jobmeter._core.resource import process_identity

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


def stop_retrying(exporter: MetricExporter) -> None:
    """Make the next failed export of an OTLP exporter give up instead of backing off."""
    target: Any = exporter
    event = getattr(target, "_shutdown_in_progress", None)  # gRPC
    if event is None:
        event = getattr(getattr(target, "_client", None), "_shutdown_event", None)  # HTTP
    if isinstance(event, threading.Event):
        event.set()


def installed_provider() -> APIMeterProvider | None:
    """The global MeterProvider, or None while only OTel's proxy stands in."""
    return _metrics_api._METER_PROVIDER


def reset_api_globals() -> None:
    """Let set_meter_provider() run again (tests only)."""
    _metrics_api._METER_PROVIDER_SET_ONCE = Once()
    _metrics_api._METER_PROVIDER = None
    # Keep the proxy provider: collectors made before configure() hold its meters,
    # and the next set_meter_provider() re-binds them to the new provider.
    _metrics_api._PROXY_METER_PROVIDER._real_meter_provider = None


def is_proxy_meter(meter: object) -> bool:
    """Whether ``meter`` is OTel's stand-in that binds to the provider set later."""
    return isinstance(meter, _ProxyMeter)


def real_meter(meter: Meter) -> Meter | None:
    """The real meter a proxy meter was bound to, once a provider is set."""
    found = getattr(meter, "_real_meter", None)
    return found if isinstance(found, Meter) else None


def prometheus_name(name: str, unit: str) -> tuple[str, str]:
    """(metric name, unit suffix) as the OTel Prometheus exporter writes an instrument."""
    from opentelemetry.exporter.prometheus import _mapping  # only where something is pushed

    return _mapping.sanitize_full_name(name), _mapping.map_unit(unit)


def prometheus_label(key: str) -> str:
    """A label name as the OTel Prometheus exporter writes an attribute key."""
    from opentelemetry.exporter.prometheus import _mapping

    return _mapping.sanitize_attribute(key)


def preferences(exporter: MetricExporter) -> dict[str, Any]:
    """The temporality and aggregation an exporter asks for, to wrap it with the same."""
    return {
        "preferred_temporality": getattr(exporter, "_preferred_temporality", None),
        "preferred_aggregation": getattr(exporter, "_preferred_aggregation", None),
    }


def forget_target_info(reader: MetricReader) -> None:
    """Make a Prometheus reader rebuild target_info: a forked child has its own resource."""
    collector = getattr(reader, "_collector", None)
    if collector is not None and hasattr(collector, "_target_info"):
        collector._target_info = None
