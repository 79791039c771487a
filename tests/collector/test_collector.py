"""MetricsCollector.measure(): counts, attributes, errors, threads, async and resources."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint

import jobmeter
from jobmeter._core.instruments import DURATION_BUCKETS
from jobmeter.collector._collector import _BOUND_KEPT
from jobmeter.collector._series import FOLD_AT
from jobmeter.collector._totals import CARDINALITY_LIMIT, SDK_CARDINALITY_LIMIT, SPARE_BOUND
from jobmeter.testing import InMemoryMetrics, in_memory

DURATION = "jobmeter.operation.duration"


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory(service_name="tests") as metrics:
        yield metrics


def test_counts_and_attributes(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl", attributes={"team": "data"})
    user_attributes = {"table": "orders"}
    for _ in range(3):
        with ops.measure("load", user_attributes):
            pass
    with ops.measure("load", {"table": "customers"}):
        pass
    assert user_attributes == {"table": "orders"}  # never mutated
    (point,) = recorded.points(DURATION, {"table": "orders"})
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 3
    assert dict(point.attributes or {}) == {
        "team": "data",
        "table": "orders",
        "operation.name": "load",
    }
    assert recorded.count(DURATION, {"operation.name": "load"}) == 4


def test_duration_is_wall_time_with_seconds_buckets(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("sleep"):
        time.sleep(0.2)
    (point,) = recorded.points(DURATION, {"operation.name": "sleep"})
    assert isinstance(point, HistogramDataPoint)
    assert 0.2 <= point.sum < 2.0
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    # 0.2 s falls in the (0.1, 0.25] bucket, not in one giant first bucket.
    index = DURATION_BUCKETS.index(0.25)
    assert point.bucket_counts[index] == 1


def test_exception_records_error_type_and_propagates_unchanged(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    error = KeyError("missing")
    with pytest.raises(KeyError) as raised, ops.measure("load"):
        raise error
    assert raised.value is error
    (point,) = recorded.points(DURATION, {"operation.name": "load"})
    assert (point.attributes or {})["error.type"] == "KeyError"

    class BadBatchError(Exception):
        pass

    @ops.measure("transform")
    def transform() -> None:
        raise BadBatchError

    with pytest.raises(BadBatchError):
        transform()
    (point,) = recorded.points(DURATION, {"operation.name": "transform"})
    assert (point.attributes or {})["error.type"] == (
        "test_collector.test_exception_records_error_type_and_propagates_unchanged"
        ".<locals>.BadBatchError"
    )
    # The failed block still counts its CPU time, under the same error.type.
    assert recorded.points("jobmeter.operation.cpu.time", {"error.type": "KeyError"})


def test_decorator_keeps_function_identity_and_result(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")

    @ops.measure("add", {"kind": "sync"})
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add(2, 3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert recorded.count(DURATION, {"operation.name": "add", "kind": "sync"}) == 1


def test_async_functions_decorated_run_concurrently(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")

    @ops.measure("fetch")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0.05)
        return n * 2

    async def main() -> list[int]:
        return await asyncio.gather(*(fetch(n) for n in range(10)))

    started = time.perf_counter()
    assert asyncio.run(main()) == [n * 2 for n in range(10)]
    assert time.perf_counter() - started < 0.45  # concurrent, not serialized by measure()
    (point,) = recorded.points(DURATION, {"operation.name": "fetch"})
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 10
    assert point.min >= 0.05


def test_async_with_block_inside_task(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")

    async def job() -> None:
        with ops.measure("step"):
            await asyncio.sleep(0.01)

    async def main() -> None:
        await asyncio.gather(job(), job(), job())

    asyncio.run(main())
    assert recorded.count(DURATION, {"operation.name": "step"}) == 3


def test_sixteen_threads_lose_no_count(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    barrier = threading.Barrier(16)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(1000):
            with ops.measure("tick", {"worker": str(i % 2)}):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorded.count(DURATION, {"operation.name": "tick"}) == 16_000
    assert recorded.count(DURATION, {"worker": "0"}) == 8_000
    assert recorded.value("jobmeter.operation.active", {"operation.name": "tick"}) == 0


def test_nested_blocks_and_reused_measurement(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    step = ops.measure("inner")
    with ops.measure("outer"), step:
        time.sleep(0.01)
        with step:  # the same object nested in itself
            time.sleep(0.01)
    (outer,) = recorded.points(DURATION, {"operation.name": "outer"})
    (inner,) = recorded.points(DURATION, {"operation.name": "inner"})
    assert isinstance(outer, HistogramDataPoint)
    assert isinstance(inner, HistogramDataPoint)
    assert inner.count == 2
    assert outer.sum >= inner.max >= inner.min >= 0.01


def test_active_counts_blocks_in_progress(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("load"), ops.measure("load"):
        assert recorded.value("jobmeter.operation.active", {"operation.name": "load"}) == 2
    assert recorded.value("jobmeter.operation.active", {"operation.name": "load"}) == 0


def test_cpu_time_of_a_busy_block(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("spin"):
        # Until the process has used 0.3 s of CPU (not of wall time: on a busy
        # machine the spin may get a fraction of a core).
        deadline = time.process_time() + 0.3
        total = 0
        while time.process_time() < deadline:
            total += sum(range(1000))  # user-mode work; clock reads stay a small share
    assert total > 0
    user = recorded.value("jobmeter.operation.cpu.time", {"cpu.mode": "user"})
    system = recorded.value("jobmeter.operation.cpu.time", {"cpu.mode": "system"})
    assert 0.25 <= user + system < 3.0
    assert user > system


def test_memory_growth_and_usage(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("allocate"):
        block = bytearray(64 * 1024 * 1024)  # zero-filled pages are touched: RSS grows
    growth = recorded.value("jobmeter.operation.memory.growth", {"operation.name": "allocate"})
    usage = recorded.value("jobmeter.operation.memory.usage", {"operation.name": "allocate"})
    assert len(block) == 64 * 1024 * 1024
    assert 56 * 1024 * 1024 <= growth <= 128 * 1024 * 1024
    assert usage >= growth
    del block
    with ops.measure("free"):
        pass
    assert recorded.value("jobmeter.operation.memory.usage", {"operation.name": "free"}) < usage


def test_disk_writes_are_counted(recorded: InMemoryMetrics, tmp_path: Path) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("write"), (tmp_path / "data.bin").open("wb") as out:
        out.write(os.urandom(8 * 1024 * 1024))
        out.flush()
        os.fsync(out.fileno())
    written = recorded.value("jobmeter.operation.disk.io", {"disk.io.direction": "write"})
    assert 8 * 1024 * 1024 <= written < 64 * 1024 * 1024


def test_resources_false_records_duration_only(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(5):
        with ops.measure("hot", resources=False):
            pass
    assert recorded.count(DURATION, {"operation.name": "hot"}) == 5
    for name in ("cpu.time", "disk.io", "memory.usage", "memory.growth"):
        assert recorded.points(f"jobmeter.operation.{name}", {"operation.name": "hot"}) == []


def test_subclass_adds_its_own_instruments(recorded: InMemoryMetrics) -> None:
    class RowsCollector(jobmeter.MetricsCollector):
        def __init__(self) -> None:
            super().__init__("rows")
            self.rows = self.meter.create_counter("jobmeter.example.rows", unit="{row}")

        def loaded(self, n: int) -> None:
            self.rows.add(n, {"table": "orders"})

    rows = RowsCollector()
    with rows.measure("load"):
        rows.loaded(10)
    rows.loaded(5)
    assert recorded.value("jobmeter.example.rows", {"table": "orders"}) == 15
    assert recorded.count(DURATION, {"operation.name": "load"}) == 1


def test_collectors_with_the_same_name_add_up(recorded: InMemoryMetrics) -> None:
    first = jobmeter.MetricsCollector("etl")
    second = jobmeter.MetricsCollector("etl")
    with first.measure("load"):
        pass
    with second.measure("load"):
        pass
    assert recorded.count(DURATION, {"operation.name": "load"}) == 2
    assert len(recorded.points("jobmeter.operation.cpu.time", {"cpu.mode": "user"})) == 1


def test_collector_created_before_configure_records_after() -> None:
    ops = jobmeter.MetricsCollector("early")  # bound to OTel's proxy provider
    with in_memory() as recorded:
        with ops.measure("load"):
            pass
        assert recorded.count(DURATION, {"operation.name": "load"}) == 1


def test_cardinality_is_capped_with_one_warning(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        for i in range(CARDINALITY_LIMIT + 100):
            with ops.measure("load", {"request.id": str(i)}):
                pass
    cpu_points = recorded.points("jobmeter.operation.cpu.time", {"cpu.mode": "user"})
    assert len(cpu_points) == CARDINALITY_LIMIT + 1
    overflow = [p for p in cpu_points if (p.attributes or {}).get("otel.metric.overflow")]
    assert len(overflow) == 1
    assert len([r for r in caplog.records if "attribute sets" in r.message]) == 1
    # Every block is still counted somewhere: the histogram has the SDK's own cap.
    assert recorded.count(DURATION) == CARDINALITY_LIMIT + 100
    assert recorded.value("jobmeter.operation.active", {"otel.metric.overflow": True}) == 0


@pytest.mark.parametrize("operation", ["", None, 3])
def test_bad_operation_name_is_a_clear_error(operation: object) -> None:
    ops = jobmeter.MetricsCollector("etl", meter_provider=None)
    with pytest.raises(ValueError, match="operation must be a non-empty string"):
        ops.measure(operation)  # type: ignore[arg-type]


def test_bad_collector_arguments() -> None:
    with pytest.raises(ValueError, match="collector name must be a non-empty string"):
        jobmeter.MetricsCollector("")
    with pytest.raises(TypeError, match="attributes must be a mapping"):
        jobmeter.MetricsCollector("etl", attributes=["team"])  # type: ignore[arg-type]


def test_same_name_before_and_after_configure_lose_nothing() -> None:
    """A module-level collector (proxy meter) and a later one of the same name share totals.

    Regression: two stores registered the same asynchronous instruments on one
    real meter and the SDK silently kept only the first callbacks.
    """
    early = jobmeter.MetricsCollector("etl")
    with in_memory() as recorded:
        late = jobmeter.MetricsCollector("etl")
        with early.measure("load"):
            pass
        with late.measure("load"):
            pass
        assert recorded.count(DURATION, {"operation.name": "load"}) == 2
        assert len(recorded.points("jobmeter.operation.cpu.time", {"operation.name": "load"})) == 2
        assert recorded.value("jobmeter.operation.active", {"operation.name": "load"}) == 0


def test_generator_functions_are_measured_over_their_iteration(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")

    @ops.measure("rows")
    def rows(n: int) -> Iterator[int]:
        for i in range(n):
            time.sleep(0.01)
            yield i

    assert list(rows(5)) == [0, 1, 2, 3, 4]
    for row in rows(5):
        if row == 1:
            break  # the consumer stops early: closed, not failed
    points = recorded.points(DURATION, {"operation.name": "rows"})
    assert len(points) == 1  # no error.type series
    (point,) = points
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 2
    assert point.max >= 0.05


def test_async_generator_functions_are_measured(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")

    @ops.measure("pages")
    async def pages() -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield i

    async def main() -> list[int]:
        return [page async for page in pages()]

    assert asyncio.run(main()) == [0, 1, 2]
    (point,) = recorded.points(DURATION, {"operation.name": "pages"})
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 1
    assert point.sum >= 0.03


def test_gpu_memory_of_a_block_when_a_gpu_is_present(
    monkeypatch: pytest.MonkeyPatch, recorded: InMemoryMetrics
) -> None:
    """measure(gpu=True) keeps the GPU memory this process holds at the end of the block.

    The NVML driver is the one boundary tests may fake (CI machines have no GPU).
    """
    import sys

    from _support.fake_nvml import FakeGpu, FakeNvml, ProcessInfo
    from jobmeter._core import nvml as _nvml
    from jobmeter._core.machine import machine_info

    machine_info()  # cached from the real machine before the fake driver is installed
    gib = 2**30
    gpus = [
        FakeGpu("GPU-a", "NVIDIA H100", compute_processes=[ProcessInfo(os.getpid(), 3 * gib)]),
        FakeGpu("GPU-b", "NVIDIA H100", compute_processes=[ProcessInfo(4_000_000, 5 * gib)]),
    ]
    _nvml._reset_for_tests()
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(gpus))
    try:
        ops = jobmeter.MetricsCollector("etl")
        with ops.measure("train", gpu=True):
            pass
        with ops.measure("eval"):  # gpu=False: no GPU query, no point
            pass
        assert recorded.value(
            "jobmeter.operation.gpu.memory.usage", {"operation.name": "train"}
        ) == (3 * gib)
        assert (
            recorded.points("jobmeter.operation.gpu.memory.usage", {"operation.name": "eval"}) == []
        )
    finally:
        _nvml._reset_for_tests()


def test_gpu_memory_without_a_gpu_records_nothing(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("train", gpu=True):
        pass
    assert recorded.count(DURATION, {"operation.name": "train"}) == 1
    assert recorded.points("jobmeter.operation.gpu.memory.usage") == []


def test_values_python_finds_equal_stay_apart_as_in_the_sdk(recorded: InMemoryMetrics) -> None:
    """True, 1 and 1.0 hash alike; a cached binding must not fold one set into another."""
    ops = jobmeter.MetricsCollector("etl")
    for value in (1, True, 1.0, 1, True, 1):
        with ops.measure("load", {"x": value}, resources=False):
            pass
    counts = {
        type(dict(p.attributes or {})["x"]).__name__: p.count
        for p in recorded.points(DURATION, {"operation.name": "load"})
        if isinstance(p, HistogramDataPoint)
    }
    assert counts == {"int": 3, "bool": 2, "float": 1}


def test_attributes_in_another_order_are_one_series(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("load", {"a": "1", "b": "2"}):
        pass
    with ops.measure("load", {"b": "2", "a": "1"}):
        pass
    (point,) = recorded.points(DURATION, {"operation.name": "load"})
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 2
    (usage,) = recorded.points("jobmeter.operation.memory.usage", {"operation.name": "load"})
    assert dict(usage.attributes or {}) == {"a": "1", "b": "2", "operation.name": "load"}


def test_list_values_are_measured_every_time(recorded: InMemoryMetrics) -> None:
    """Unhashable values cannot be cached: each block binds them again, and counts."""
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(3):
        with ops.measure("load", {"tables": ["a", "b"]}):
            pass
    assert recorded.count(DURATION, {"operation.name": "load"}) == 3


def test_a_decorated_function_records_into_each_new_provider() -> None:
    """Bindings made before a reset (or in a fork's parent) are rebound, not reused."""
    ops = jobmeter.MetricsCollector("etl")

    @ops.measure("step")
    def step() -> None:
        pass

    reused = ops.measure("block")
    for calls in (3, 5):
        with in_memory() as recorded:
            for _ in range(calls):
                step()
                with reused:
                    pass
            assert recorded.count(DURATION, {"operation.name": "step"}) == calls
            assert recorded.count(DURATION, {"operation.name": "block"}) == calls
            assert recorded.value("jobmeter.operation.active", {"operation.name": "step"}) == 0


def test_cpu_time_of_many_blocks_adds_up_to_the_process_time(recorded: InMemoryMetrics) -> None:
    """Blocks are folded into the totals in batches; the last, partial batch counts too."""
    ops = jobmeter.MetricsCollector("etl")
    blocks = 2 * FOLD_AT + FOLD_AT // 3
    started = time.process_time()
    for _ in range(blocks):
        with ops.measure("spin"):
            deadline = time.process_time() + 0.001
            while time.process_time() < deadline:
                pass
    spent = time.process_time() - started
    user = recorded.value("jobmeter.operation.cpu.time", {"cpu.mode": "user"})
    system = recorded.value("jobmeter.operation.cpu.time", {"cpu.mode": "system"})
    # All the process's CPU but the few microseconds between blocks was spent in them.
    assert 0.9 * spent <= user + system <= spent


def test_bindings_kept_stay_bounded_with_unbounded_values(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("etl")
    for i in range(_BOUND_KEPT + 10):
        with ops.measure("load", {"request.id": str(i)}, resources=False):
            pass
    assert len(ops._totals._bound) == SDK_CARDINALITY_LIMIT
    assert len(ops._totals._spare) <= SPARE_BOUND
    assert len(ops._bound) == SDK_CARDINALITY_LIMIT  # what its owner keeps, no more
    assert recorded.count(DURATION) == _BOUND_KEPT + 10  # the SDK overflow series too
