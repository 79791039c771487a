"""GPU figures follow CUDA_VISIBLE_DEVICES: the job's GPUs are labelled, its memory counted there.

A fake two-GPU machine (GPU 0 an H100, GPU 1 an A10) through the fake pynvml,
the one fake allowed; everything above it is real. The measured process holds
3 GiB on the H100 and 1 GiB on the A10, so each sum says which GPUs counted.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics.export import NumberDataPoint

import jobmeter
from _support.fake_nvml import FakeGpu, FakeMigDevice, FakeNvml, NVMLError_GpuIsLost, ProcessInfo
from jobmeter._core import nvml as _nvml
from jobmeter._core.cuda_visible import MigDevice, resolve
from jobmeter._core.gpu import GpuDevice
from jobmeter._core.nvml import nvml
from jobmeter.testing import InMemoryMetrics, in_memory

GIB = 2**30
H100 = "GPU-11111111-2222-3333-4444-555555555555"
A10 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MIG_1 = "MIG-0a0a0a0a-0000-5000-8000-000000000001"  # H100 GPU instance 1
MIG_2 = "MIG-b2b2b2b2-0000-5000-8000-000000000002"  # H100 GPU instance 2
PROCESS = "jobmeter.process.gpu.memory.usage"
OTHER_PID = 999_999


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # the order warning has its own tests
    with in_memory():  # configure() reads the real machine's inventory once, before the fake
        pass
    _nvml._reset_for_tests()
    yield
    _nvml._reset_for_tests()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    me = os.getpid()
    h100 = FakeGpu(H100, "NVIDIA H100 80GB HBM3", memory_total=80 * GIB, power_mw=300_000,
                   compute_processes=[ProcessInfo(me, 3 * GIB)])  # fmt: skip
    a10 = FakeGpu(A10, "NVIDIA A10", mig=None, memory_total=24 * GIB, power_mw=60_000,
                  compute_processes=[ProcessInfo(me, GIB),
                                     ProcessInfo(OTHER_PID, 5 * GIB)])  # fmt: skip
    driver = FakeNvml([h100, a10])
    monkeypatch.setitem(sys.modules, "pynvml", driver)
    return driver


@pytest.fixture
def mig(fake: FakeNvml) -> FakeNvml:
    """The H100 in MIG mode with two MIG devices (slot 1 empty); its processes stay listed."""
    h100 = fake.gpus[0]
    h100.mig = True
    h100.mig_devices = [FakeMigDevice(MIG_1, 1), None, FakeMigDevice(MIG_2, 2)]
    return fake


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def labels(recorded: InMemoryMetrics, name: str = "hw.power") -> dict[str, object]:
    """jobmeter.gpu.visible of each GPU's point of ``name``, by hw.id."""
    found: dict[str, object] = {}
    for point in recorded.points(name):
        attributes = dict(point.attributes or {})
        found[str(attributes["hw.id"])] = attributes["jobmeter.gpu.visible"]
    return found


def process_memory(recorded: InMemoryMetrics) -> dict[str, float]:
    found = {}
    for point in recorded.points(PROCESS):
        assert isinstance(point, NumberDataPoint)
        found[str((point.attributes or {})["hw.id"])] = point.value
    return found


def block_gpu_memory(recorded: InMemoryMetrics) -> list[float]:
    with jobmeter.MetricsCollector("visible.test").measure("train", gpu=True):
        pass
    points = recorded.points("jobmeter.operation.gpu.memory.usage", {"operation.name": "train"})
    return [point.value for point in points if isinstance(point, NumberDataPoint)]


# -- the three views on the two-GPU machine ------------------------------------------

CASES = [
    # value, visible GPUs; the memory sums follow from them
    (None, {H100, A10}),
    ("1", {A10}),
    ("0", {H100}),
    ("1,0", {H100, A10}),
    ("GPU-aaaa", {A10}),  # a UUID prefix that names one GPU
    (A10, {A10}),
    ("GPU-1111,GPU-aaaaaaaa-bbbb", {H100, A10}),
    ("", set()),  # set but empty: no GPU
    ("0,bad,1", {H100}),  # an invalid entry ends the list
    ("-1,0", set()),
    ("2,1", set()),  # past the last GPU
    ("0,,1", {H100}),  # an empty entry is invalid too
    (" 1 ", {A10}),
    ("1gpu", {A10}),  # read like strtoul
    ("+1", {A10}),
    ("0,GPU-aaaa", {H100}),  # the first entry decides: indices, then a UUID ends it
    ("GPU-aaaa,0", {A10}),
    ("GPU-", set()),  # a prefix that fits both GPUs names none
    ("GPU-ffff", set()),
    ("gpu-aaaa", set()),
    ("1,0,1", set()),  # a GPU named twice: CUDA sees none
    ("GPU-aaaa,1", {A10}),
    ("GPU-aaaa,GPU-aaaaaaaa", set()),
]


@pytest.mark.parametrize(("value", "visible"), CASES, ids=[repr(c[0]) for c in CASES])
def test_host_view_labels_every_gpu_and_the_job_views_count_only_visible_ones(
    fake: FakeNvml,
    recorded: InMemoryMetrics,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str | None,
    visible: set[str],
) -> None:
    """hw.* keeps both GPUs with jobmeter.gpu.visible; per-process and per-block count the job's."""
    if value is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    mine = {H100: 3 * GIB, A10: GIB}
    assert labels(recorded) == {H100: H100 in visible, A10: A10 in visible}
    assert labels(recorded, "hw.gpu.memory.limit") == labels(recorded)
    assert process_memory(recorded) == {gpu: mine[gpu] for gpu in visible}
    assert labels(recorded, PROCESS) == dict.fromkeys(visible, True)
    total = sum(mine[gpu] for gpu in visible) if visible else None
    assert nvml().process_memory([os.getpid()]) == total
    assert block_gpu_memory(recorded) == ([] if total is None else [total])
    assert [d.uuid for d in nvml().devices()] == [H100, A10]  # the host view keeps both
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert fake.calls["nvmlDeviceGetMigDeviceHandleByIndex"] == 0  # no MIG listing needed


def test_the_visible_label_reaches_a_prometheus_scrape(
    fake: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    jobmeter.GPUCollector()
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    power = {
        gpu: line for line in lines if line.startswith("hw_power_watts{")
        for gpu in (H100, A10) if f'hw_id="{gpu}"' in line
    }  # fmt: skip
    assert 'jobmeter_gpu_visible="false"' in power[H100]
    assert 'jobmeter_gpu_visible="true"' in power[A10]
    (process,) = [line for line in lines if line.startswith("jobmeter_process_gpu_memory_usage")]
    assert f'hw_id="{A10}"' in process
    assert 'jobmeter_gpu_visible="true"' in process
    assert float(process.rsplit(" ", 1)[1]) == GIB


# -- MIG --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "visible"),
    [
        ("MIG-b2b2", {H100}),
        (MIG_1, {H100}),
        (f"MIG-{H100}/2/0", {H100}),  # the format before driver R470
        ("MIG-GPU-1111/1/0", {H100}),  # with a GPU UUID prefix
        (f"MIG-{H100}/1/1", set()),  # no such compute instance
        (f"MIG-{A10}/1/0", set()),  # a GPU that is not in MIG mode
        ("MIG-ffff", set()),
        ("MIG-", set()),  # fits both MIG devices
        ("MIG-b2b2,GPU-aaaa", {H100, A10}),
        ("MIG-0a0a,MIG-b2b2", {H100}),
        ("MIG-0a0a,MIG-0a0a0a0a", set()),  # one MIG device named twice
        ("0", {H100}),  # a GPU in MIG mode named by index
    ],
)
def test_mig_devices_make_their_physical_gpu_visible(
    mig: FakeNvml,
    recorded: InMemoryMetrics,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    visible: set[str],
) -> None:
    """A MIG device's processes are listed on its parent GPU: the parent is the one counted."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    jobmeter.GPUCollector()
    mine = {H100: 3 * GIB, A10: GIB}
    assert labels(recorded) == {H100: H100 in visible, A10: A10 in visible}
    assert process_memory(recorded) == {gpu: mine[gpu] for gpu in visible}
    total = sum(mine[gpu] for gpu in visible) if visible else None
    assert nvml().process_memory([os.getpid()]) == total


def test_mig_devices_are_listed_once_and_only_when_a_value_names_one(
    mig: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobmeter.GPUCollector()
    recorded.metrics()
    assert mig.calls["nvmlDeviceGetMaxMigDeviceCount"] == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-b2b2")
    for _ in range(3):
        assert labels(recorded) == {H100: True, A10: False}
    assert mig.calls["nvmlDeviceGetMaxMigDeviceCount"] == 1  # the A10 is not in MIG mode
    assert mig.calls["nvmlDeviceGetMigDeviceHandleByIndex"] == 7  # every slot, once
    assert nvml().mig_devices() == [MigDevice(MIG_1, H100, 1, 0), MigDevice(MIG_2, H100, 2, 0)]


def test_a_mig_device_that_does_not_answer_is_left_out(
    mig: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = mig.gpus[0].mig_devices[2]
    assert device is not None
    device.fail["nvmlDeviceGetUUID"] = NVMLError_GpuIsLost()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-b2b2")
    jobmeter.GPUCollector()
    assert labels(recorded) == {H100: False, A10: False}
    assert nvml().mig_devices() == [MigDevice(MIG_1, H100, 1, 0)]


# -- whose environment, and when ---------------------------------------------------------


def test_a_job_that_sets_the_variable_later_is_followed(
    fake: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs often set os.environ["CUDA_VISIBLE_DEVICES"] before they import torch."""
    jobmeter.GPUCollector()
    assert labels(recorded) == {H100: True, A10: True}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert labels(recorded) == {H100: True, A10: False}
    assert process_memory(recorded) == {H100: 3 * GIB}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert process_memory(recorded) == {H100: 3 * GIB, A10: GIB}


def test_process_memory_takes_the_environment_of_the_measured_processes(fake: FakeNvml) -> None:
    """``jobmeter run`` passes the command's environment, which may set its own GPUs."""
    me = os.getpid()
    assert nvml().process_memory([me, OTHER_PID], environ={"CUDA_VISIBLE_DEVICES": "1"}) == 6 * GIB
    assert nvml().process_memory([me], environ={"CUDA_VISIBLE_DEVICES": ""}) is None
    assert nvml().process_memory([me], environ={}) == 4 * GIB  # unset there: every GPU
    assert nvml().process_memory([me]) == 4 * GIB


def test_an_index_counts_the_gpus_that_answered_nvml(
    fake: FakeNvml, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU that NVML cannot open is one that CUDA cannot enumerate either."""
    fake.gpus[0].fail["nvmlDeviceGetHandleByIndex"] = NVMLError_GpuIsLost()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    jobmeter.GPUCollector()
    assert labels(recorded) == {A10: True}
    assert nvml().process_memory([os.getpid()]) == GIB


# -- CUDA_DEVICE_ORDER --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "order", "same_models", "warns"),
    [
        ("1", None, False, True),  # FASTEST_FIRST by default: CUDA may put the H100 first
        ("1", "FASTEST_FIRST", False, True),
        ("1", "PCI_BUS_ID", False, False),
        ("1", None, True, False),  # one model: both orders agree
        ("0,1", None, False, False),  # every GPU: the order picks no other set
        ("GPU-aaaa", None, False, False),  # UUIDs do not depend on the order
        ("", None, False, False),
    ],
)
def test_indices_on_mixed_models_warn_once_unless_the_order_is_pci_bus_id(
    fake: FakeNvml,
    recorded: InMemoryMetrics,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str,
    order: str | None,
    same_models: bool,
    warns: bool,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    if order is None:
        monkeypatch.delenv("CUDA_DEVICE_ORDER")
    else:
        monkeypatch.setenv("CUDA_DEVICE_ORDER", order)
    if same_models:
        fake.gpus[1].name = fake.gpus[0].name
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    for _ in range(2):
        recorded.metrics()
        nvml().process_memory([os.getpid()])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if not warns:
        assert warnings == []
        return
    (warning,) = warnings
    assert warning.startswith(f"jobmeter: CUDA_VISIBLE_DEVICES={value} names GPUs by index")
    assert "set CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPUs by UUID" in warning
    assert labels(recorded) == {H100: False, A10: True}  # still the NVML index


# -- the rules on more GPUs than the fake machine has ------------------------------------


def _gpus(*names: str, mig: tuple[int, ...] = ()) -> list[GpuDevice]:
    return [
        GpuDevice(i, None, f"GPU-{i}{i}{i}{i}0000-0000", name, i in mig)
        for i, name in enumerate(names)
    ]


def test_cuda_enumerates_a_single_mig_device() -> None:
    """Only the first MIG entry counts; GPU entries around it still do."""
    gpus = _gpus("A100", "A100", "A10", mig=(0, 1))
    migs = [MigDevice("MIG-aaaa", gpus[0].uuid, 1, 0), MigDevice("MIG-bbbb", gpus[1].uuid, 1, 0)]
    uuids = [g.uuid for g in gpus]

    def visible(value: str) -> set[str]:
        return set(resolve(value, gpus, lambda: migs).uuids)

    assert visible("MIG-bbbb,MIG-aaaa") == {uuids[1]}
    assert visible("MIG-aaaa,GPU-2222,MIG-bbbb") == {uuids[0], uuids[2]}
    assert visible("MIG-aaaa,MIG-bbbb,bad,GPU-2222") == {uuids[0]}
    assert visible("2,0,1") == set(uuids)


def test_mig_devices_are_not_listed_for_indices_or_gpu_uuids() -> None:
    def refuse() -> list[MigDevice]:
        raise AssertionError("MIG devices listed")

    gpus = _gpus("A100", "A100", mig=(0,))
    assert resolve("1,0", gpus, refuse).by_index
    assert not resolve("GPU-1111,GPU-0000", gpus, refuse).by_index
    assert resolve(None, gpus, refuse).uuids == {gpus[0].uuid, gpus[1].uuid}
    assert resolve("", gpus, refuse).uuids == frozenset()
