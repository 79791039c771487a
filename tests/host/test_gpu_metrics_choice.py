"""Choosing GPU metrics: JOBMETER_GPU_METRICS and GPUCollector(metrics=...).

A fake one-GPU machine (fake pynvml, the driver boundary); everything above it
is real. A metric that is not chosen has no instrument at all: it is absent
from the export, and its callback never asks the driver.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import pytest

import jobmeter
from _support.fake_nvml import FakeGpu, FakeNvml, ProcessInfo
from jobmeter._core import gpus
from jobmeter.host import HostCollector
from jobmeter.testing import InMemoryMetrics, in_memory

GIB = 2**30
H100 = "GPU-11111111-2222-3333-4444-555555555555"
MEMORY = {
    "hw.gpu.memory.usage",
    "hw.gpu.memory.limit",
    "hw.gpu.memory.utilization",
    "jobmeter.process.gpu.memory.usage",
}
ALL = MEMORY | {"hw.gpu.utilization", "hw.power", "hw.energy", "hw.temperature"}
ACCEPTED = "memory, utilization, power, energy, temperature (comma-separated)"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("JOBMETER_GPU_METRICS", "JOBMETER_STRICT", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    with in_memory():  # the machine facts are read (and cached) before the fake
        pass
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    gpus._reset_for_tests()
    yield
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    gpus._reset_for_tests()
    gpus.available()  # settled on this machine again, as the other tests find it


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    gpu = FakeGpu(H100, "NVIDIA H100", utilization=40, memory_used=20 * GIB, memory_total=80 * GIB,
                  power_mw=250_000, energy_mj=3_000_000, temperature=50,
                  compute_processes=[ProcessInfo(os.getpid(), 2 * GIB)])  # fmt: skip
    driver = FakeNvml([gpu])
    monkeypatch.setitem(sys.modules, "pynvml", driver)
    return driver


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def exported(recorded: InMemoryMetrics) -> dict[str, float]:
    """The GPU metrics of one collection: name -> the H100's value."""
    found = {}
    for _, metric in recorded.metrics():
        if metric.name in ALL:
            (point,) = metric.data.data_points
            found[metric.name] = point.value  # type: ignore[union-attr]
    return found


def test_by_default_all_five_are_reported(fake: FakeNvml, recorded: InMemoryMetrics) -> None:
    gpu = jobmeter.GPUCollector()
    assert gpu.metrics == {"memory", "utilization", "power", "energy", "temperature"}
    assert exported(recorded) == {
        "hw.gpu.utilization": 0.4,
        "hw.gpu.memory.usage": 20 * GIB,
        "hw.gpu.memory.limit": 80 * GIB,
        "hw.gpu.memory.utilization": 0.25,
        "hw.power": 250.0,
        "hw.energy": 3000.0,
        "hw.temperature": 50,
        "jobmeter.process.gpu.memory.usage": 2 * GIB,
    }


def test_the_variable_chooses_and_the_others_have_no_instrument(
    fake: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMETER_GPU_METRICS", " Power, energy ")
    assert jobmeter.GPUCollector().metrics == {"power", "energy"}
    assert exported(recorded) == {"hw.power": 250.0, "hw.energy": 3000.0}
    # No process memory instrument: its callback, which reads the process lists, never ran.
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 0


def test_memory_covers_the_device_and_the_process_memory(
    fake: FakeNvml, recorded: InMemoryMetrics
) -> None:
    jobmeter.GPUCollector(metrics=["memory"])
    assert exported(recorded) == {
        "hw.gpu.memory.usage": 20 * GIB,
        "hw.gpu.memory.limit": 80 * GIB,
        "hw.gpu.memory.utilization": 0.25,
        "jobmeter.process.gpu.memory.usage": 2 * GIB,
    }


def test_the_keyword_wins_over_the_variable(
    fake: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMETER_GPU_METRICS", "power")
    jobmeter.GPUCollector(metrics=("temperature", "utilization"))
    assert exported(recorded) == {"hw.temperature": 50, "hw.gpu.utilization": 0.4}


def test_an_empty_keyword_reports_no_gpu_metric(fake: FakeNvml, recorded: InMemoryMetrics) -> None:
    assert jobmeter.GPUCollector(metrics=[]).metrics == frozenset()
    assert exported(recorded) == {}


def test_an_unknown_name_in_the_variable_warns_once_and_the_default_applies(
    fake: FakeNvml,
    recorded: InMemoryMetrics,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("JOBMETER_GPU_METRICS", "power,fans")
    assert jobmeter.GPUCollector().metrics == {
        "memory", "utilization", "power", "energy", "temperature"
    }  # fmt: skip
    jobmeter.GPUCollector("second.gpu")
    assert set(exported(recorded)) == ALL
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"jobmeter: JOBMETER_GPU_METRICS='power,fans' is invalid: unknown GPU metric 'fans'; "
        f"accepted: {ACCEPTED}; it is ignored and the default applies"
    ]


def test_an_unknown_name_in_the_variable_is_an_error_in_strict_mode(
    fake: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMETER_GPU_METRICS", "power,fanz")
    monkeypatch.setenv("JOBMETER_STRICT", "true")
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        jobmeter.GPUCollector()
    assert str(raised.value) == (
        f"JOBMETER_GPU_METRICS='power,fanz' is invalid: unknown GPU metric 'fanz'; "
        f"accepted: {ACCEPTED}"
    )
    assert exported(recorded) == {}


def test_an_unknown_keyword_value_raises_even_when_not_strict(
    fake: FakeNvml, recorded: InMemoryMetrics
) -> None:
    with pytest.raises(ValueError, match="unknown GPU metric 'clocks'") as raised:
        jobmeter.GPUCollector(metrics=["power", "clocks"])
    assert isinstance(raised.value, jobmeter.ConfigurationError)
    assert raised.value.setting == "metrics"
    assert exported(recorded) == {}  # nothing was registered


def test_collectors_sharing_instruments_each_report_their_own_choice(
    fake: FakeNvml, recorded: InMemoryMetrics
) -> None:
    """A second collector of the same name adds the instruments it needs, only for itself."""
    jobmeter.GPUCollector(attributes={"who": "a"}, metrics=["power"])
    jobmeter.GPUCollector(attributes={"who": "b"}, metrics=["power", "energy"])
    who = {
        name: sorted(str((p.attributes or {})["who"]) for p in recorded.points(name))
        for name in ("hw.power", "hw.energy", "hw.temperature")
    }
    assert who == {"hw.power": ["a", "b"], "hw.energy": ["b"], "hw.temperature": []}


def test_host_collector_follows_the_variable(
    fake: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMETER_GPU_METRICS", "temperature")
    host = HostCollector(cpu=False, memory=False, disk=False, network=False, filesystem=False,
                         load=False, process=False)  # fmt: skip
    assert host.gpu is not None
    assert exported(recorded) == {"hw.temperature": 50}
