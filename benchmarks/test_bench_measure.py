"""pytest-benchmark versions of the measure() cases: ``pytest benchmarks --benchmark-enable``.

Not part of ``make test`` (testpaths is ``tests``), and pyproject's
``--benchmark-disable`` makes them run once each unless enabled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pytest_benchmark.fixture import BenchmarkFixture

import jobmeter
from jobmeter import testing
from jobmeter._core.instruments import DURATION_BUCKETS
from jobmeter._rundata.recorder import Recorder


@pytest.fixture
def provider() -> Iterator[MeterProvider]:
    testing.reset()
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    yield provider
    provider.shutdown()
    testing.reset()


@pytest.fixture
def collector(provider: MeterProvider) -> jobmeter.MetricsCollector:
    return jobmeter.MetricsCollector("bench", meter_provider=provider)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[Recorder]:
    """A run recorded into tmp_path while the test runs (its final drain is not timed here)."""
    recorder = Recorder(tmp_path, interval=1.0).start()
    yield recorder
    recorder.stop()


@pytest.fixture
def histogram(provider: MeterProvider) -> Histogram:
    return provider.get_meter("bench").create_histogram(
        "bench.duration", unit="s", explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
    )


def test_bare_record(benchmark: BenchmarkFixture, histogram: Histogram) -> None:
    def bare_record() -> None:
        histogram.record(0.001, {"operation.name": "load", "table": "orders"})

    benchmark(bare_record)


def test_measure_full(benchmark: BenchmarkFixture, collector: jobmeter.MetricsCollector) -> None:
    def measure_full() -> None:
        with collector.measure("load", {"table": "orders"}):
            pass

    benchmark(measure_full)


def test_measure_duration_only(
    benchmark: BenchmarkFixture, collector: jobmeter.MetricsCollector
) -> None:
    def measure_duration_only() -> None:
        with collector.measure("load", {"table": "orders"}, resources=False):
            pass

    benchmark(measure_duration_only)


@pytest.mark.usefixtures("recording")
def test_measure_full_recording(
    benchmark: BenchmarkFixture, collector: jobmeter.MetricsCollector
) -> None:
    def measure_full_recording() -> None:
        with collector.measure("load", {"table": "orders"}):
            pass

    benchmark(measure_full_recording)


@pytest.mark.usefixtures("recording")
def test_measure_duration_only_recording(
    benchmark: BenchmarkFixture, collector: jobmeter.MetricsCollector
) -> None:
    def measure_duration_only_recording() -> None:
        with collector.measure("load", {"table": "orders"}, resources=False):
            pass

    benchmark(measure_duration_only_recording)
