"""HostCollector as a metric producer: what each reader of a provider gets, and when.

Every reader is real (InMemoryMetricReader, the OTel Prometheus reader scraped
through prometheus_client); the figures are checked against psutil and
against what the test itself did between two collections.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from opentelemetry.metrics import set_meter_provider
from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter, ObservableGauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    InMemoryMetricReader,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.metrics.view import DropAggregation, View

import jobmeter
from jobmeter._core import otel_private
from jobmeter.host import HostCollector, _system

MIB = 1024 * 1024
PROCESS_ONLY: dict[str, Any] = {"cpu": False, "memory": False, "disk": False, "network": False,
                "filesystem": False, "load": False, "gpu": False}  # fmt: skip


def _metrics(data: MetricsData | None) -> dict[str, Metric]:
    assert data is not None
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics}  # fmt: skip


def _value(data: MetricsData | None, name: str, **attributes: object) -> float:
    points = [p for p in _metrics(data)[name].data.data_points
              if all((p.attributes or {}).get(k) == v for k, v in attributes.items())]  # fmt: skip
    assert len(points) == 1, points
    point = points[0]
    assert isinstance(point, NumberDataPoint)
    return point.value


def _burn(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(i * i for i in range(1000))


@pytest.fixture
def provider() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    made = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield made, reader
    made.shutdown()


def test_each_collection_of_each_reader_reads_anew(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """Back to back, no sleep: each reader's collection sees what happened just before it."""
    made, first = provider
    second = InMemoryMetricReader()
    made.add_metric_reader(second)  # a reader added after the collector still gets its points
    HostCollector(meter_provider=made, **PROCESS_ONLY)
    before = _value(first.get_metrics_data(), "process.memory.usage")
    held = b"x" * (100 * MIB)
    seen_first = _value(first.get_metrics_data(), "process.memory.usage")
    seen_second = _value(second.get_metrics_data(), "process.memory.usage")
    assert seen_first - before == pytest.approx(100 * MIB, rel=0.05)
    assert seen_second == pytest.approx(seen_first, rel=0.01)
    assert seen_second == pytest.approx(psutil.Process().memory_info().rss, rel=0.02)
    del held


def test_points_carry_the_scope_start_time_and_kinds_of_sdk_instruments(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    made, reader = provider
    created = time.time_ns()
    host = HostCollector(meter_provider=made, gpu=False)
    with host.measure("load"):  # the SDK's own points of the same scope
        pass
    time.sleep(0.05)
    data = reader.get_metrics_data()
    assert data is not None
    [resource_metrics] = data.resource_metrics
    [scope] = [s for s in resource_metrics.scope_metrics if s.scope.name == "jobmeter.host"]
    assert scope.scope.version == jobmeter.__version__
    names = {m.name for m in scope.metrics}
    assert {"jobmeter.operation.duration", "process.cpu.time", "system.memory.usage"} <= names
    by_name = {m.name: m for m in scope.metrics}
    cpu = by_name["process.cpu.time"].data
    assert isinstance(cpu, Sum)
    assert cpu.is_monotonic
    assert cpu.aggregation_temporality is AggregationTemporality.CUMULATIVE
    [point, *_] = cpu.data_points
    assert created <= point.start_time_unix_nano < point.time_unix_nano <= time.time_ns()
    usage = by_name["process.memory.usage"].data
    assert isinstance(usage, Sum)
    assert not usage.is_monotonic
    load = by_name["system.cpu.load_average.1m"].data
    assert isinstance(load, Gauge)
    gauge_point: Any = load.data_points[0]
    assert gauge_point.start_time_unix_nano is None  # as the SDK's gauge points
    later = _metrics(reader.get_metrics_data())["process.cpu.time"].data.data_points[0]
    assert later.start_time_unix_nano == point.start_time_unix_nano  # one start per series


def test_delta_reader_gets_the_change_since_its_own_last_collection(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """Against a cumulative reader of the same provider, the ground truth of the change."""
    made, cumulative = provider
    delta = InMemoryMetricReader(
        preferred_temporality={ObservableCounter: AggregationTemporality.DELTA}
    )
    made.add_metric_reader(delta)
    HostCollector(meter_provider=made, **PROCESS_ONLY)
    first_total = _value(cumulative.get_metrics_data(), "process.cpu.time", **{"cpu.mode": "user"})
    first = delta.get_metrics_data()
    assert _value(first, "process.cpu.time", **{"cpu.mode": "user"}) >= first_total
    _burn(0.3)
    second = delta.get_metrics_data()
    total = _value(cumulative.get_metrics_data(), "process.cpu.time", **{"cpu.mode": "user"})
    change = _value(second, "process.cpu.time", **{"cpu.mode": "user"})
    assert change == pytest.approx(total - first_total, abs=0.03)
    assert change >= 0.25
    sums = _metrics(second)
    cpu = sums["process.cpu.time"].data
    assert isinstance(cpu, Sum)
    assert cpu.aggregation_temporality is AggregationTemporality.DELTA
    earlier = _metrics(first)["process.cpu.time"].data.data_points[0]
    assert cpu.data_points[0].start_time_unix_nano == earlier.time_unix_nano
    memory = sums["process.memory.usage"].data  # up-down counters stay cumulative
    assert isinstance(memory, Sum)
    assert memory.aggregation_temporality is AggregationTemporality.CUMULATIVE


def test_reader_that_drops_gauges_gets_none(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    made, _ = provider
    dropping = InMemoryMetricReader(preferred_aggregation={ObservableGauge: DropAggregation()})
    made.add_metric_reader(dropping)
    HostCollector(meter_provider=made, gpu=False)
    names = set(_metrics(dropping.get_metrics_data()))
    assert "system.memory.usage" in names
    assert not {"system.memory.utilization", "system.cpu.load_average.1m"} & names


def test_views_apply_to_host_metrics() -> None:
    """A view that selects a host metric puts the collector on SDK instruments: it applies."""
    reader = InMemoryMetricReader()
    view = View(instrument_name="system.memory.usage", name="memory.renamed")
    made = MeterProvider(metric_readers=[reader], views=[view], shutdown_on_exit=False)
    HostCollector(meter_provider=made, gpu=False, process=False)
    names = set(_metrics(reader.get_metrics_data()))
    assert "memory.renamed" in names
    assert "system.memory.usage" not in names
    assert "system.disk.io" in names  # the others as without the view
    made.shutdown()


def test_a_failing_group_warns_once_and_the_rest_is_exported(
    provider: tuple[MeterProvider, InMemoryMetricReader],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    made, reader = provider
    host = HostCollector(meter_provider=made, gpu=False)

    def broken() -> dict[str, tuple[int, int, int, int]]:
        raise OSError("diskstats is gone")

    monkeypatch.setattr(_system, "disks", broken)
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        first = set(_metrics(reader.get_metrics_data()))
        second = set(_metrics(reader.get_metrics_data()))
    # (system.cpu.utilization has no point when no CPU time passed in between)
    assert first - {"system.cpu.utilization"} == second - {"system.cpu.utilization"}
    assert "system.disk.io" not in first
    assert {"system.network.io", "process.cpu.time", "system.memory.usage"} <= first
    [warning] = [r for r in caplog.records if "disk figures" in r.getMessage()]
    assert repr(host) in warning.getMessage()
    assert warning.exc_info is not None


def test_shutdown_takes_the_collector_off_every_reader(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    made, reader = provider
    sdk_collect = reader._collect
    host = HostCollector(meter_provider=made, gpu=False)
    other = HostCollector("other.host", meter_provider=made, **PROCESS_ONLY)
    host.shutdown()
    data = reader.get_metrics_data()
    assert data is not None
    scopes = {s.scope.name for rm in data.resource_metrics for s in rm.scope_metrics}
    assert "jobmeter.host" not in scopes
    assert "other.host" in scopes
    other.shutdown()
    assert reader._collect == sdk_collect  # the readers collect from the SDK alone again
    assert otel_private.measurement_consumer(host.meter) is not None


def test_two_collectors_of_one_name_add_their_process_and_share_the_machine(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    made, reader = provider
    HostCollector(meter_provider=made, gpu=False)
    HostCollector(meter_provider=made, pid=os.getppid(), gpu=False)
    metrics = _metrics(reader.get_metrics_data())
    pids = {(p.attributes or {}).get("process.pid") for p in
            metrics["process.memory.usage"].data.data_points}  # fmt: skip
    assert pids == {None, os.getppid()}
    memory = [frozenset((p.attributes or {}).items())
              for p in metrics["system.memory.usage"].data.data_points]  # fmt: skip
    assert len(memory) == len(set(memory)) == 4


def test_collector_made_before_a_provider_reports_once_one_is_set() -> None:
    host = HostCollector(**PROCESS_ONLY)  # OTel's proxy meter: no provider yet
    reader = InMemoryMetricReader()
    made = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        set_meter_provider(made)
        rss = _value(reader.get_metrics_data(), "process.memory.usage")
        assert rss == pytest.approx(psutil.Process().memory_info().rss, rel=0.05)
    finally:
        host.shutdown()
        otel_private.reset_api_globals()
        made.shutdown()


def test_prometheus_scrape_shows_host_metrics() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, generate_latest

    reader = PrometheusMetricReader()
    made = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        HostCollector(meter_provider=made, **PROCESS_ONLY)
        text = generate_latest(REGISTRY).decode()
        [line] = [s for s in text.splitlines() if s.startswith("process_memory_usage_bytes")]
        assert float(line.split()[-1]) == pytest.approx(psutil.Process().memory_info().rss,
                                                        rel=0.05)  # fmt: skip
        assert 'process_cpu_time_seconds_total{cpu_mode="user"' in text
    finally:
        made.shutdown()  # the reader leaves the registry
