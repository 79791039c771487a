"""The real NVML path, on a machine with an NVIDIA GPU and driver.

Marked ``gpu`` and deselected by default (``-m "not gpu"``). On a GPU machine:
``.venv/bin/pytest -m gpu tests/host/test_gpu_real.py -s``; the figures seen are
printed, for docs/gpu.md. Nothing here is faked.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import NumberDataPoint

import jobmeter
from jobmeter._core import nvml as _nvml
from jobmeter._core.gpu import GpuDevice
from jobmeter._core.nvml import nvml
from jobmeter.testing import InMemoryMetrics, in_memory

pytestmark = pytest.mark.gpu

MIB = 2**20
ALLOCATION = 256 * MIB


@pytest.fixture(autouse=True)
def _real_nvml() -> Iterator[None]:
    sys.modules.pop("pynvml", None)
    _nvml._reset_for_tests()
    yield
    _nvml._reset_for_tests()


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def values(recorded: InMemoryMetrics, name: str) -> dict[str, float]:
    """One collection of metric ``name``: value by hw.id."""
    return {
        str((p.attributes or {})["hw.id"]): p.value
        for p in recorded.points(name)
        if isinstance(p, NumberDataPoint)
    }


def gpus(gpu: jobmeter.GPUCollector) -> list[GpuDevice]:
    assert gpu.available, "no NVIDIA GPU and driver answered NVML; run -m gpu on a GPU machine"
    found = nvml().devices()
    assert found
    return found


def test_every_gpu_reports_sane_figures(recorded: InMemoryMetrics) -> None:
    gpu = jobmeter.GPUCollector()
    devices = gpus(gpu)
    names = [
        "hw.gpu.utilization", "hw.gpu.memory.usage", "hw.gpu.memory.limit",
        "hw.gpu.memory.utilization", "hw.power", "hw.energy", "hw.temperature",
        "jobmeter.process.gpu.memory.usage",
    ]  # fmt: skip
    seen = {name: values(recorded, name) for name in names}
    print(f"\nNVML: {len(devices)} GPU(s); inventory {nvml().inventory()}")
    for device in devices:
        figures = {name: seen[name].get(device.uuid) for name in names}
        print(f"GPU {device.index} {device.name} {device.uuid} mig={device.mig}")
        for name, value in figures.items():
            print(f"  {name} = {value}")
        limit, used = figures["hw.gpu.memory.limit"], figures["hw.gpu.memory.usage"]
        assert limit is not None
        assert limit > 1024 * MIB
        assert used is not None
        assert 0 <= used <= limit
        temperature = figures["hw.temperature"]
        assert temperature is not None
        assert 5 <= temperature <= 110
        utilization = figures["hw.gpu.utilization"]
        assert device.mig or utilization is not None  # MIG mode: NVML reports no utilization
        assert utilization is None or 0.0 <= utilization <= 1.0
        power = figures["hw.power"]
        assert power is None or 1.0 <= power <= 2000.0
        energy = figures["hw.energy"]
        assert energy is None or energy > 0
        assert figures["jobmeter.process.gpu.memory.usage"] is not None


def test_energy_counter_does_not_go_backwards(recorded: InMemoryMetrics) -> None:
    gpu = jobmeter.GPUCollector()
    gpus(gpu)
    first = values(recorded, "hw.energy")
    _wait_past_sample_age()
    second = values(recorded, "hw.energy")
    print(f"\nhw.energy J: {first} then {second}")
    assert set(first) == set(second)
    for uuid, joules in first.items():
        assert second[uuid] >= joules


def test_gpu_memory_of_this_process_grows_with_an_allocation(recorded: InMemoryMetrics) -> None:
    allocate = _allocator()
    gpu = jobmeter.GPUCollector()
    gpus(gpu)
    name = "jobmeter.process.gpu.memory.usage"
    if allocate is None:
        figures = values(recorded, name)
        print(f"\nneither torch nor cupy: {name} = {figures}")
        assert all(v >= 0 for v in figures.values())
        return
    keep = allocate(MIB)  # creates the CUDA context, which has its own memory
    before = sum(values(recorded, name).values())
    keep = (keep, allocate(ALLOCATION))
    after = sum(values(recorded, name).values())
    print(f"\n{name}: {before / MIB:.0f} MiB with a CUDA context, {after / MIB:.0f} MiB "
          f"after allocating {ALLOCATION / MIB:.0f} MiB")  # fmt: skip
    if after == 0:
        listed = _nvml_pids()
        if listed and os.getpid() not in listed:
            pytest.xfail(f"NVML lists pids {sorted(listed)} from another pid namespace "
                         f"(a container), not ours ({os.getpid()})")  # fmt: skip
    assert ALLOCATION <= after - before <= ALLOCATION + 64 * MIB
    del keep


def _allocator() -> Any:
    """A function allocating n bytes on GPU 0 with torch or cupy, or None."""
    try:
        torch: Any = importlib.import_module("torch")
        if torch.cuda.is_available():

            def with_torch(n: int) -> Any:
                block = torch.empty(n, dtype=torch.uint8, device="cuda")
                torch.cuda.synchronize()
                return block

            return with_torch
    except ImportError:
        pass
    try:
        cupy: Any = importlib.import_module("cupy")
    except ImportError:
        return None

    def with_cupy(n: int) -> Any:
        block = cupy.empty(n, dtype=cupy.uint8)
        cupy.cuda.Device().synchronize()
        return block

    return with_cupy


def _nvml_pids() -> set[int]:
    module: Any = importlib.import_module("pynvml")
    return {
        p.pid
        for d in nvml().devices()
        for p in module.nvmlDeviceGetComputeRunningProcesses(d.handle)
    }


def _wait_past_sample_age() -> None:
    time.sleep(_nvml.SAMPLE_MAX_AGE_S + 0.05)
