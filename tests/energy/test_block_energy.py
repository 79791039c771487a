"""measure(): the machine's energy during a block, as jobmeter.operation.energy by hw.type.

The fake powercap tree is advanced inside the block by known amounts; the
exported joules must be those amounts, a wrap during the block included, and
there must be no series at all where nothing can be read.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobmeter
from _support.fake_nvml import FakeGpu, FakeNvml
from _support.fake_powercap import FakePowercap
from jobmeter import _energy
from jobmeter._core import nvml
from jobmeter._energy import FRESH_S
from jobmeter.testing import InMemoryMetrics, in_memory

ENERGY = "jobmeter.operation.energy"
APPROX = 1e-6


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory(service_name="tests") as metrics:
        yield metrics


def past_fresh() -> None:
    """Let the meter's shared reading age, so that the next block reads the counters."""
    time.sleep(FRESH_S * 2)


def test_block_energy_is_what_the_counters_rose_by(
    powercap: FakePowercap, recorded: InMemoryMetrics
) -> None:
    powercap.intel_server()
    package, core, dram = (powercap.zones[z] for z in ("intel-rapl:0", "intel-rapl:0:0",
                                                       "intel-rapl:0:2"))  # fmt: skip
    ops = jobmeter.MetricsCollector("etl")
    for joules in (12.5, 7.5):
        past_fresh()
        with ops.measure("load", {"table": "orders"}):
            package.add(joules)
            core.add(joules / 2)  # inside the package: not added again
            dram.add(joules / 10)
            past_fresh()
    cpu = recorded.value(ENERGY, {"operation.name": "load", "hw.type": "cpu"})
    assert cpu == pytest.approx(20.0, abs=APPROX)
    assert recorded.value(ENERGY, {"hw.type": "dram"}) == pytest.approx(2.0, abs=APPROX)
    assert not recorded.points(ENERGY, {"hw.type": "gpu"})  # no gpu=True, no GPU read
    (point,) = recorded.points(ENERGY, {"hw.type": "cpu"})
    assert dict(point.attributes or {}) == {
        "operation.name": "load", "table": "orders", "hw.type": "cpu",
    }  # fmt: skip


def test_a_wrap_during_a_block_is_counted(
    powercap: FakePowercap, recorded: InMemoryMetrics
) -> None:
    top = 50_000_000
    zone = powercap.zone("intel-rapl:0", "package-0", start_uj=top - 1_000_000, max_range_uj=top)
    ops = jobmeter.MetricsCollector("etl")
    past_fresh()
    with ops.measure("wraps"):
        zone.add(4.0)
        past_fresh()
    assert zone.value_uj < 4_000_000
    assert recorded.value(ENERGY, {"hw.type": "cpu"}) == pytest.approx(4.0, abs=APPROX)


def test_energy_of_blocks_that_raise_carries_error_type(
    powercap: FakePowercap, recorded: InMemoryMetrics
) -> None:
    zone = powercap.zone("intel-rapl:0", "package-0")
    ops = jobmeter.MetricsCollector("etl")
    past_fresh()

    def fails() -> None:
        with ops.measure("fails"):
            zone.add(3.0)
            past_fresh()
            raise KeyError("x")

    with pytest.raises(KeyError):
        fails()
    energy = recorded.value(ENERGY, {"error.type": "KeyError", "hw.type": "cpu"})
    assert energy == pytest.approx(3.0, abs=APPROX)


def test_consecutive_short_blocks_add_up_to_the_counter(
    powercap: FakePowercap, recorded: InMemoryMetrics
) -> None:
    """Blocks shorter than the counters' millisecond share readings; no joule is lost or doubled."""
    zone = powercap.zone("intel-rapl:0", "package-0")
    ops = jobmeter.MetricsCollector("etl")
    past_fresh()
    with ops.measure("outer", resources=True):
        for _ in range(200):
            with ops.measure("tiny"):
                zone.add(0.01)
        past_fresh()
        with ops.measure("tiny"):  # reads the counter now: the rest comes to it
            past_fresh()
    tiny = recorded.value(ENERGY, {"operation.name": "tiny", "hw.type": "cpu"})
    outer = recorded.value(ENERGY, {"operation.name": "outer", "hw.type": "cpu"})
    assert outer == pytest.approx(2.0, abs=APPROX)
    assert tiny == pytest.approx(2.0, abs=APPROX)


def test_no_counters_no_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               recorded: InMemoryMetrics) -> None:  # fmt: skip
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path))  # an empty sysfs
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("load"):
        pass
    assert recorded.count("jobmeter.operation.duration") == 1
    assert not recorded.points(ENERGY)


@pytest.mark.parametrize("how", ["keyword", "resources", "variable"])
def test_energy_can_be_turned_off(
    how: str, powercap: FakePowercap, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = powercap.zone("intel-rapl:0", "package-0")
    if how == "variable":
        monkeypatch.setenv("JOBMETER_ENERGY", "false")
    ops = jobmeter.MetricsCollector("etl")
    past_fresh()
    with ops.measure("load", energy=how != "keyword", resources=how != "resources"):
        zone.add(1.0)
        past_fresh()
    assert recorded.count("jobmeter.operation.duration") == 1
    assert not recorded.points(ENERGY)


def test_gpu_energy_of_a_block_from_the_counter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorded: InMemoryMetrics
) -> None:
    """With gpu=True, the GPUs the process may use: their energy counter's rise."""
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path))
    gpus = [FakeGpu("GPU-a", "A100", energy_mj=5_000_000), FakeGpu("GPU-b", "A100",
        energy_mj=9_000_000)]  # fmt: skip
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(gpus))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    nvml._reset_for_tests()
    _energy._reset_for_tests()
    ops = jobmeter.MetricsCollector("train")
    with ops.measure("step", gpu=True):
        gpus[0].energy_mj += 40_000  # not visible to this process
        gpus[1].energy_mj += 123_456
    assert recorded.value(ENERGY, {"hw.type": "gpu"}) == pytest.approx(123.456, abs=APPROX)
    assert not recorded.points(ENERGY, {"hw.type": "cpu"})
