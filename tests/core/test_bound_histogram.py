"""A bound histogram records what ``Histogram.record`` would, in every SDK set-up it binds in.

Each test records the same values through ``BoundHistogram`` on one provider and
through the public ``record`` on a twin provider, and compares the points. The
first test is the alarm for an SDK upgrade: if the SDK's internals moved,
binding fails (records still count, the slow way) and it says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry.metrics import Histogram, NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import Histogram as SDKHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOnExemplarFilter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import SumAggregation, View
from opentelemetry.sdk.trace import TracerProvider

from jobmeter._core import otel_private
from jobmeter._core.bound_histogram import BoundHistogram
from jobmeter._core.instruments import DURATION_BUCKETS

ATTRIBUTES = {"operation.name": "load", "table": "orders", "team": "data"}
VALUES = (0.0004, 0.003, 0.003, 0.2, 7.5, 0.0)

Setup = Callable[[], tuple[MeterProvider, list[InMemoryMetricReader]]]


def _provider(**options: Any) -> tuple[MeterProvider, list[InMemoryMetricReader]]:
    temporality = options.pop("temporality", None)
    readers = [
        InMemoryMetricReader(preferred_temporality=temporality or {})
        for _ in range(options.pop("readers", 1))
    ]
    return MeterProvider(metric_readers=readers, shutdown_on_exit=False, **options), readers


def _histogram(provider: MeterProvider) -> Histogram:
    return provider.get_meter("etl").create_histogram(
        "jobmeter.operation.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )


def _points(reader: InMemoryMetricReader) -> list[tuple[Any, ...]]:
    """Every point as comparable figures (the times of its exemplars left out)."""
    found = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    figures = (
                        (point.count, point.sum, point.min, point.max, tuple(point.bucket_counts))
                        if isinstance(point, HistogramDataPoint)
                        else (point.value,)  # type: ignore[union-attr]
                    )
                    exemplars = sorted(
                        (e.value, e.trace_id, dict(e.filtered_attributes or {}))
                        for e in point.exemplars
                    )
                    found.append((metric.name, dict(point.attributes or {}), figures, exemplars))
    return sorted(found, key=repr)


def _both(setup: Setup, values: Sequence[float] = VALUES) -> tuple[list[Any], list[Any], bool]:
    """(points recorded bound, points recorded with record(), whether it was bound)."""
    bound_provider, bound_readers = setup()
    public_provider, public_readers = setup()
    bound = BoundHistogram(_histogram(bound_provider), dict(ATTRIBUTES))
    public = _histogram(public_provider)
    for value in values:
        bound.record(value)
        public.record(value, ATTRIBUTES)
    was_bound = bound.bound()
    got = [_points(reader) for reader in bound_readers]
    expected = [_points(reader) for reader in public_readers]
    bound_provider.shutdown()
    public_provider.shutdown()
    return got, expected, was_bound


def test_this_sdk_binds_and_records_the_same_points() -> None:
    """Fails when an opentelemetry-sdk upgrade moved what the binding reads."""
    got, expected, was_bound = _both(_provider)
    assert was_bound, "this SDK's internals moved: measure() takes the slow path"
    assert got == expected
    ((point,),) = got
    assert point[2][0] == len(VALUES)


@pytest.mark.parametrize(
    "views",
    [
        [View(instrument_name="jobmeter.operation.duration", attribute_keys={"operation.name"})],
        [View(instrument_name="jobmeter.operation.duration", name="renamed")],
        [View(instrument_name="jobmeter.operation.duration", aggregation=SumAggregation())],
        [
            View(instrument_name="jobmeter.operation.duration", name="a"),
            View(instrument_name="jobmeter.operation.duration", name="b", attribute_keys=set()),
        ],
    ],
    ids=["attribute-keys", "rename", "sum-aggregation", "two-views"],
)
def test_views_of_the_user_apply_as_with_record(views: list[View]) -> None:
    got, expected, was_bound = _both(lambda: _provider(views=views))
    assert was_bound
    assert got == expected


def test_every_reader_gets_every_value() -> None:
    got, expected, was_bound = _both(lambda: _provider(readers=2))
    assert was_bound
    assert got == expected
    assert [points[0][2][0] for points in got] == [len(VALUES)] * 2


def test_delta_temporality_is_not_bound_and_loses_nothing_across_collections() -> None:
    """Delta readers replace the aggregations at every collection: no binding there."""
    delta = {SDKHistogram: AggregationTemporality.DELTA}
    provider, (reader,) = _provider(temporality=delta)
    bound = BoundHistogram(_histogram(provider), dict(ATTRIBUTES))
    counts = []
    for value in VALUES:
        bound.record(value)
        bound.record(value)
        counts += [p[2][0] for p in _points(reader)]
    assert not bound.bound()
    assert counts == [2] * len(VALUES)


def test_exemplars_of_a_sampled_span_are_kept_as_with_record() -> None:
    tracer = TracerProvider().get_tracer("tests")
    for exemplar_filter in (None, AlwaysOnExemplarFilter()):
        options = {} if exemplar_filter is None else {"exemplar_filter": exemplar_filter}
        bound_provider, (bound_reader,) = _provider(**options)
        public_provider, (public_reader,) = _provider(**options)
        bound = BoundHistogram(_histogram(bound_provider), dict(ATTRIBUTES))
        public = _histogram(public_provider)
        with tracer.start_as_current_span("job") as span:
            for value in VALUES:
                bound.record(value)
                public.record(value, ATTRIBUTES)
        assert bound.bound()
        got, expected = _points(bound_reader), _points(public_reader)
        assert got == expected
        trace_ids = {e[1] for e in got[0][3]}
        assert trace_ids == {span.get_span_context().trace_id}


def test_a_reader_added_later_gets_the_values_from_then_on() -> None:
    provider, (first,) = _provider()
    bound = BoundHistogram(_histogram(provider), dict(ATTRIBUTES))
    bound.record(0.1)
    bound.record(0.1)
    second = InMemoryMetricReader()
    provider.add_metric_reader(second)
    bound.record(0.2)
    bound.record(0.2)
    assert bound.bound()
    assert _points(first)[0][2][0] == 4
    assert _points(second)[0][2][0] == 2


def test_after_the_aggregates_are_dropped_records_start_from_zero() -> None:
    """What a forked child does (otel_private.reset_provider): no parent's counts."""
    provider, (reader,) = _provider()
    bound = BoundHistogram(_histogram(provider), dict(ATTRIBUTES))
    for _ in range(5):
        bound.record(0.01)
    otel_private.reset_provider(provider)
    bound.record(0.01)
    bound.record(0.01)
    assert bound.bound()
    assert _points(reader)[0][2][0] == 2


def test_a_proxy_binds_once_its_provider_is_set() -> None:
    proxy_provider = _ProxyMeterProvider()
    histogram = _histogram(proxy_provider)  # type: ignore[arg-type]
    bound = BoundHistogram(histogram, dict(ATTRIBUTES))
    bound.record(0.5)  # no provider yet: dropped, as record() drops it
    assert not bound.bound()
    provider, (reader,) = _provider()
    proxy_provider.on_set_meter_provider(provider)
    for value in VALUES:
        bound.record(value)
    assert bound.bound()
    assert _points(reader)[0][2][0] == len(VALUES)


def test_past_the_sdks_cardinality_limit_values_go_where_record_puts_them() -> None:
    def setup() -> tuple[MeterProvider, list[InMemoryMetricReader]]:
        provider, readers = _provider()
        filler = _histogram(provider)
        for i in range(2000):
            filler.record(1.0, {"i": i})
        return provider, readers

    got, expected, was_bound = _both(setup)
    assert was_bound
    assert got == expected
    overflow = [p for p in got[0] if p[1] == {"otel.metric.overflow": True}]
    assert len(overflow) == 1
    assert overflow[0][2][0] == len(VALUES)


def test_another_api_implementation_takes_the_public_path() -> None:
    histogram = NoOpMeterProvider().get_meter("etl").create_histogram("x")
    bound = BoundHistogram(histogram, dict(ATTRIBUTES))
    bound.record(1.0)
    bound.record(1.0)
    assert not bound.bound()
