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
- Metric producers (``_core/producers.py``): the SDK has none, so the
  measurement consumer's ``collect`` (what every reader of a provider calls)
  is replaced by one that adds the producers' points (``hook_collect``); the
  readers' temporality and aggregation preferences, the provider's views and
  resource, and points made without the frozen dataclass's ``__init__``
  (``number_points``, checked against it). If these move, host metrics fall
  back to SDK instruments with one warning; tests/host/test_host_readers.py fails.

The hot path's binding of a histogram to its aggregations is in ``bound_histogram``.

Each is defensive: if an attribute moves in a later SDK, the feature degrades
with one warning and tests/core/test_fork.py or tests/core/test_shutdown.py fails.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.metrics import MeterProvider as APIMeterProvider
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, NumberDataPoint
from opentelemetry.sdk.resources import Resource
from opentelemetry.util._once import Once

from jobmeter._core.resource import process_identity

_log = logging.getLogger("jobmeter")

#: Bumped when reset_provider drops the aggregates: bound_histogram's bindings made
#: before are stale.
sdk_generation = 0


def reset_provider(provider: MeterProvider) -> None:
    """Drop inherited aggregates and give the child its own identity."""
    global sdk_generation
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
        sdk_generation += 1  # bindings (bound_histogram) made before point at dropped aggregates
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


# -- MetricProducer support (``_core/producers.py``) --------------------------------
# The Python SDK (1.45) has no MetricProducer. Points made outside its
# instruments reach every reader through the measurement consumer that all
# readers of a provider collect from: its ``collect(reader, timeout_millis)``
# is what ``MetricReader.collect()`` calls. These functions are that coupling.


def measurement_consumer(meter: object) -> Any | None:
    """The SDK measurement consumer behind an SDK ``Meter`` (None for any other meter)."""
    consumer = getattr(meter, "_measurement_consumer", None)
    if consumer is None or not hasattr(consumer, "_reader_storages"):
        return None
    return consumer if callable(getattr(consumer, "collect", None)) else None


def on_proxy_bound(meter: Meter, bound: Any) -> bool:
    """Call ``bound(real_meter)`` whenever the proxy ``meter`` is bound to a provider.

    The API's proxy meter tells each of its proxy instruments ``on_meter_set``
    when ``set_meter_provider()`` runs; ``bound`` is registered as one of them.
    False when ``meter`` is no proxy (or the API moved that list).
    """

    class _Binding:
        def on_meter_set(self, real: Meter) -> None:
            bound(real)

    instruments = getattr(meter, "_instruments", None)
    lock = getattr(meter, "_lock", None)
    if not is_proxy_meter(meter) or not isinstance(instruments, list) or lock is None:
        return False
    with lock:
        instruments.append(_Binding())
        real = getattr(meter, "_real_meter", None)
    if real is not None:
        bound(real)
    return True


def hook_collect(consumer: Any, collect: Any) -> None:
    """Make every reader of ``consumer``, and readers added later, collect through ``collect``.

    ``collect(reader, timeout_millis=...)`` replaces the consumer's own method
    (which it calls itself, as ``original_collect(consumer)``).
    """
    original = original_collect(consumer)
    consumer.collect = collect  # MeterProvider.add_metric_reader() binds this one
    for reader in list(consumer._reader_storages):
        if reader._collect == original:
            reader._set_collect_callback(collect)


def unhook_collect(consumer: Any, collect: Any) -> None:
    """Undo ``hook_collect``: the readers collect from the SDK alone again."""
    if installed_collect(consumer) == collect:
        del consumer.collect
    original = original_collect(consumer)
    for reader in list(consumer._reader_storages):
        if reader._collect == collect:
            reader._set_collect_callback(original)


def installed_collect(consumer: Any) -> Any | None:
    """The ``collect`` that ``hook_collect`` installed on ``consumer``, if any."""
    return vars(consumer).get("collect")


def original_collect(consumer: Any) -> Any:
    """The SDK's own ``collect`` of ``consumer``, bound to it."""
    return type(consumer).collect.__get__(consumer)


def consumer_resource(consumer: Any) -> Resource:
    """The resource of the provider behind ``consumer`` (a forked child's own, once reset)."""
    resource: Resource = consumer._sdk_config.resource
    return resource


def consumer_views(consumer: Any) -> list[Any]:
    """The views of the provider behind ``consumer``."""
    return list(consumer._sdk_config.views)


def reader_preferences(reader: MetricReader) -> tuple[dict[str, Any], dict[str, Any]]:
    """(temporality, aggregation) a reader asks for asynchronous instruments, by kind."""
    from opentelemetry.sdk.metrics._internal import instrument as sdk

    classes = {
        "counter": sdk._ObservableCounter,
        "up_down_counter": sdk._ObservableUpDownCounter,
        "gauge": sdk._ObservableGauge,
    }
    temporality: Any = reader._instrument_class_temporality
    aggregation: Any = reader._instrument_class_aggregation
    return (
        {kind: temporality[cls] for kind, cls in classes.items()},
        {kind: aggregation[cls] for kind, cls in classes.items()},
    )


_number_points: Any = None


def number_points(
    values: Iterable[tuple[float, Any]], start: int | None, now: int
) -> list[NumberDataPoint]:
    """NumberDataPoints from (value, attributes) pairs, all with one start and time.

    A frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; filling the ``__dict__`` at once costs half, which
    matters for the ~70 points of a host collection. The first call checks
    that the two give equal points; where they do not (a later SDK with slots
    or validation), the constructor is used.
    """
    global _number_points
    if _number_points is None:
        _number_points = _filled_points if _filled_points_match() else _constructed_points
    made: list[NumberDataPoint] = _number_points(values, start, now)
    return made


def _filled_points(
    values: Iterable[tuple[float, Any]], start: int | None, now: int
) -> list[NumberDataPoint]:
    new, fill, cls = object.__new__, object.__setattr__, NumberDataPoint
    found = []
    for value, attributes in values:
        point = new(cls)
        fields = {"attributes": attributes, "start_time_unix_nano": start,
                  "time_unix_nano": now, "value": value, "exemplars": []}  # fmt: skip
        fill(point, "__dict__", fields)
        found.append(point)
    return found


def _constructed_points(
    values: Iterable[tuple[float, Any]], start: int | None, now: int
) -> list[NumberDataPoint]:
    return [NumberDataPoint(attributes, start, now, value) for value, attributes in values]  # type: ignore[arg-type]


def _filled_points_match() -> bool:
    try:
        [filled] = _filled_points([(2.5, {"k": "v"})], 1, 2)
        [made] = _constructed_points([(2.5, {"k": "v"})], 1, 2)
        return bool(filled == made and vars(filled) == vars(made))
    except Exception:  # any surprise: the constructor
        return False
