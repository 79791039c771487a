"""Metric producers: points made outside the SDK's instruments, in what every reader collects.

The specification's MetricProducer hands a reader ready-made points of one
instrumentation scope. The Python SDK (1.45) has none (opentelemetry-python
#5073), and its asynchronous instruments cost about 14 us per observation
(Observation, Measurement, attribute hashing, aggregation, point), which for
host metrics is more than reading the machine; ``Points`` builds the same
points directly, about 1 us each. ``register(meter, producer)``
gives ``meter``'s provider a producer: every reader of that provider
(Prometheus, periodic OTLP, in-memory, one added later) calls
``producer.produce()`` on each of its collections, right after the SDK's own
collection, and gets the points in the MetricsData it exports, under the
producer's scope (merged into the ScopeMetrics of the same scope, if the SDK
has one).

What a reader asks for is kept: a producer makes cumulative sums and gauges,
and a reader that prefers delta for an asynchronous counter (OTLP with
``delta`` temporality preference) gets the change since its own previous
collection, as the SDK would give it; a reader that drops a kind drops it
(``producer_hook``).
Where a provider has a view that could select one of the producer's
instruments, or the meter is not the SDK's, or the SDK's internals have
moved, the producer's metrics are SDK asynchronous instruments instead
(``_Instruments``): the same output, at the SDK's cost. The coupling to the
SDK lives in ``otel_private``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from opentelemetry.sdk.metrics import Meter as SDKMeter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    Sum,
)

from jobmeter._core import otel_private, reset
from jobmeter._core.instruments import Attributes, Instrument, observe
from jobmeter._core.producer_hook import MetricProducer, ReaderHook

_log = logging.getLogger("jobmeter")
_CUMULATIVE = AggregationTemporality.CUMULATIVE
# The callbacks of one collection share one production for this long (fallback only).
BATCH_TTL_S = 0.2


class Points:
    """The metrics of one production, built in one pass."""

    __slots__ = ("metrics", "start_ns", "time_ns")

    def __init__(self, start_ns: int, time_ns: int) -> None:
        self.metrics: list[Metric] = []
        self.start_ns = start_ns
        self.time_ns = time_ns

    def add(self, instrument: Instrument, values: Iterable[tuple[float, Attributes]]) -> None:
        """One metric of ``instrument``'s kind from (value, attributes) pairs; none if empty."""
        if instrument.kind == "gauge":  # the SDK gives gauge points no start time
            points = otel_private.number_points(values, None, self.time_ns)
            data: Gauge | Sum = Gauge(points)
        else:
            points = otel_private.number_points(values, self.start_ns, self.time_ns)
            data = Sum(points, _CUMULATIVE, instrument.kind == "counter")
        if points:
            self.metrics.append(
                Metric(instrument.name, instrument.description, instrument.unit, data)
            )


class Registration:
    """One producer on one meter; ``unregister()`` takes it off every reader."""

    def __init__(self, meter: Meter, producer: MetricProducer) -> None:
        self.producer = producer
        self.active = True
        self.mode = "none"  # "producer", "instruments" (the fallback) or "none" (a no-op meter)
        self._lock = threading.Lock()
        self._hook: ReaderHook | None = None
        self._instruments: _Instruments | None = None
        if isinstance(meter, NoOpMeter):
            return
        if otel_private.is_proxy_meter(meter) and otel_private.on_proxy_bound(meter, self._bind):
            return
        self._bind(meter)

    def _bind(self, meter: Meter) -> None:
        with self._lock:
            if not self.active:
                return
            if self._hook is not None:  # a proxy bound again: the old provider lets go
                self._hook.remove(self.producer)
                self._hook = None
            self._instruments = None
            consumer = otel_private.measurement_consumer(meter)
            if consumer is None and isinstance(meter, SDKMeter):
                _log.warning("jobmeter: this opentelemetry-sdk version hides its measurement "
                             "consumer; %s are collected through SDK instruments",
                             self.producer.scope.name)  # fmt: skip
            if consumer is not None and not _selected_by_views(consumer, self.producer):
                try:
                    self._hook = ReaderHook.of(consumer)
                    self._hook.add(self.producer)
                    self.mode = "producer"
                    return
                except (AttributeError, KeyError, TypeError):
                    _log.warning("jobmeter: this opentelemetry-sdk version hides its readers; "
                                 "%s are collected through SDK instruments",
                                 self.producer.scope.name, exc_info=True)  # fmt: skip
            self._instruments = _Instruments(meter, self)
            self.mode = "instruments"

    def unregister(self) -> None:
        """Stop producing: no reader collects this producer's points again."""
        with self._lock:
            self.active = False
            if self._hook is not None:
                self._hook.remove(self.producer)
                self._hook = None
            self._instruments = None


def register(meter: Meter, producer: MetricProducer) -> Registration:
    """Have every reader of ``meter``'s provider collect ``producer``'s points.

    A proxy meter (made before a provider was set) registers when it is bound.
    ``jobmeter.testing.reset()`` unregisters every producer: one made for an
    earlier provider must not publish into the next one's.
    """
    registration = Registration(meter, producer)
    with _registered_lock:
        _registered.add(registration)
    reset.on_reset(_unregister_all, reset.FIGURES)
    return registration


_registered: weakref.WeakSet[Registration] = weakref.WeakSet()
_registered_lock = threading.Lock()


def _unregister_all() -> None:
    with _registered_lock:
        found = list(_registered)
        _registered.clear()
    for registration in found:
        registration.unregister()


def _selected_by_views(consumer: Any, producer: MetricProducer) -> bool:
    """Whether a view of the provider may select one of the producer's instruments."""
    scope = producer.scope
    for view in otel_private.consumer_views(consumer):
        name = getattr(view, "_instrument_name", None)
        meter_name = getattr(view, "_meter_name", None)
        if meter_name is not None and meter_name != scope.name:
            continue
        if name is None or any(fnmatchcase(i.name, name.lower()) for i in producer.instruments):
            return True
    return False


class _Instruments:
    """The fallback: a registration's metrics as SDK asynchronous instruments on ``meter``."""

    def __init__(self, meter: Meter, registration: Registration) -> None:
        self._registration = registration
        self._lock = threading.Lock()
        self._batch: tuple[float, dict[str, Metric]] = (float("-inf"), {})
        for instrument in registration.producer.instruments:
            observe(meter, instrument, self._callback(instrument.name))

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            registration = self._registration
            if not registration.active or registration._instruments is not self:
                return []
            metric = self._current().get(name)
            if metric is None:
                return []
            points: Any = metric.data.data_points  # NumberDataPoints: sums and gauges
            return [Observation(p.value, p.attributes) for p in points]

        return callback

    def _current(self) -> dict[str, Metric]:
        now = time.monotonic()
        with self._lock:
            at, metrics = self._batch
            if now - at >= BATCH_TTL_S:
                metrics = {m.name: m for m in self._registration.producer.produce()}
                self._batch = (now, metrics)
            return metrics
