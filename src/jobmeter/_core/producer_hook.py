"""The readers' side of metric producers: their collect path, with the producers' points.

``ReaderHook`` replaces the ``collect`` of one SDK measurement consumer (the
object every reader of a provider collects from; ``otel_private`` holds the
coupling): the SDK's collection first, then each producer's ``produce()``,
then the merge (``_merged``: one ScopeMetrics per scope, the SDK's resource).
Points are made as a reader asks for them: a kind it drops is left out, a
sum it wants as delta is the change since that reader's own previous
collection (with the previous collection's time as start), as the SDK's
asynchronous instruments would give it. Two producers of one scope (two
collectors of one name) merge their metrics; the first one's point of an
attribute set wins, as the SDK keeps the first instrument of a name.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.view import DropAggregation
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from jobmeter._core import fork, otel_private
from jobmeter._core.instruments import Instrument, make_key

_log = logging.getLogger("jobmeter")
_DELTA = AggregationTemporality.DELTA


class MetricProducer(Protocol):
    """What ``register()`` takes: a source of ready-made points of one scope."""

    scope: InstrumentationScope
    instruments: Sequence[Instrument]  # every metric produce() may return

    def produce(self) -> Sequence[Metric]:
        """The metrics now: cumulative sums (start time kept) and gauges."""


class ReaderHook:
    """The replacement of one measurement consumer's ``collect``: the SDK's, then the producers'."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._sdk_collect = otel_private.original_collect(consumer)
        self._lock = threading.Lock()  # produce() and delta state: one collection at a time
        self._producers: tuple[MetricProducer, ...] = ()
        self._previous: weakref.WeakKeyDictionary[Any, dict[Any, tuple[float, int]]] = (
            weakref.WeakKeyDictionary()
        )
        self._asks: weakref.WeakKeyDictionary[Any, tuple[set[str], set[str]]] = (
            weakref.WeakKeyDictionary()
        )
        self._failed: set[int] = set()
        fork.on_fork_in_child_weak(self, "_after_fork_in_child")

    @classmethod
    def of(cls, consumer: Any) -> ReaderHook:
        installed = getattr(otel_private.installed_collect(consumer), "__self__", None)
        return installed if isinstance(installed, ReaderHook) else cls(consumer)

    def add(self, producer: MetricProducer) -> None:
        with self._lock:
            first = not self._producers
            self._producers = (*self._producers, producer)
        if first:
            otel_private.hook_collect(self._consumer, self.collect)

    def remove(self, producer: MetricProducer) -> None:
        with self._lock:
            self._producers = tuple(p for p in self._producers if p is not producer)
            last = not self._producers
        if last:
            otel_private.unhook_collect(self._consumer, self.collect)

    def collect(self, reader: Any, timeout_millis: float = 10_000) -> MetricsData | None:
        data: MetricsData | None = self._sdk_collect(reader, timeout_millis=timeout_millis)
        with self._lock:
            scopes = self._produce_for(reader)
        if not scopes:
            return data
        return _merged(data, scopes, lambda: otel_private.consumer_resource(self._consumer))

    def _produce_for(self, reader: Any) -> list[ScopeMetrics]:
        asks = self._asks.get(reader)
        if asks is None:  # fixed when the reader was made
            temporality, aggregation = otel_private.reader_preferences(reader)
            asks = self._asks[reader] = (
                {k for k, a in aggregation.items() if isinstance(a, DropAggregation)},
                {k for k, t in temporality.items() if t is _DELTA and k != "gauge"},
            )
        drop, delta = asks
        by_scope: dict[InstrumentationScope, list[Metric]] = {}
        for producer in self._producers:
            try:
                metrics = producer.produce()
            except Exception:  # a producer must not break the reader's collection
                if id(producer) not in self._failed:
                    self._failed.add(id(producer))
                    _log.warning("jobmeter: %s failed; its metrics are left out",
                                 producer.scope.name, exc_info=True)  # fmt: skip
                continue
            if drop or delta:
                metrics = self._preferred(reader, metrics, drop, delta)
            by_scope.setdefault(producer.scope, []).extend(metrics)
        return [ScopeMetrics(s, _deduplicated(m), s.schema_url or "") for s, m in by_scope.items()]

    def _preferred(
        self, reader: Any, metrics: Sequence[Metric], drop: set[str], delta: set[str]
    ) -> list[Metric]:
        """``metrics`` as ``reader`` asks for them: dropped kinds left out, deltas made."""
        previous = self._previous.setdefault(reader, {})
        found = []
        for metric in metrics:
            data = metric.data
            kind = "gauge" if isinstance(data, Gauge) else "counter"
            if isinstance(data, Sum) and not data.is_monotonic:
                kind = "up_down_counter"
            if kind in drop:
                continue
            if isinstance(data, Sum) and kind in delta:
                points = []
                for point in data.data_points:
                    key = (metric.name, make_key(point.attributes or {}))
                    value, start = previous.get(key, (0, point.start_time_unix_nano))
                    previous[key] = (point.value, point.time_unix_nano)
                    points.append(NumberDataPoint(point.attributes, start, point.time_unix_nano,
                                                  point.value - value))  # fmt: skip
                metric = Metric(metric.name, metric.description, metric.unit,
                                Sum(points, _DELTA, data.is_monotonic))  # fmt: skip
            found.append(metric)
        return found

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._previous = weakref.WeakKeyDictionary()  # deltas start again from the child's figures


def _deduplicated(metrics: list[Metric]) -> list[Metric]:
    """One metric per name: two producers of one scope (two collectors of one name) merge.

    The first producer's point of an attribute set wins, as the SDK keeps the
    first instrument of a name.
    """
    names = [m.name for m in metrics]
    if len(set(names)) == len(names):
        return metrics
    merged: dict[str, Metric] = {}
    seen: dict[str, set[Any]] = {}
    for metric in metrics:
        keys = seen.setdefault(metric.name, set())
        points = []
        for point in metric.data.data_points:
            key = make_key(point.attributes or {})
            if key not in keys:
                keys.add(key)
                points.append(point)
        first = merged.get(metric.name)
        if first is None:
            merged[metric.name] = metric
        else:
            data: Any = first.data
            data.data_points.extend(points)
    return list(merged.values())


def _merged(
    data: MetricsData | None, scopes: list[ScopeMetrics], resource: Callable[[], Any]
) -> MetricsData:
    """The SDK's collection with the producers' scopes added (one ScopeMetrics per scope)."""
    if data is None or not data.resource_metrics:
        found = resource()
        return MetricsData([ResourceMetrics(found, scopes, found.schema_url)])
    first = data.resource_metrics[0]
    existing = {s.scope: s for s in first.scope_metrics}
    added = []
    for scope in scopes:
        same = existing.get(scope.scope)
        if same is not None and isinstance(same.metrics, list):
            same.metrics.extend(scope.metrics)
        else:
            added.append(scope)
    if not added:
        return data
    merged = ResourceMetrics(first.resource, [*first.scope_metrics, *added], first.schema_url)
    return MetricsData([merged, *data.resource_metrics[1:]])
