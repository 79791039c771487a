"""AMD GPUs through AMD SMI: the same metrics as NVIDIA's, exact figures from a fake amdsmi.

Everything above amdsmi is real (the SDK, the in-memory reader, the collector,
``_core.amdsmi`` and ``_core.gpus``); amdsmi itself is ``fake_amdsmi.py`` and,
where a test adds NVIDIA GPUs, pynvml is ``fake_nvml.py``. The machine: GPU 0
an MI300X (no edge sensor, as on Instinct cards), GPU 1 a Radeon PRO W7900.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import NumberDataPoint

import jobmeter
from _support import fake_amdsmi
from _support.fake_amdsmi import AmdSmiLibraryException, FakeAmdGpu, FakeAmdSmi, not_supported
from _support.fake_nvml import FakeGpu, FakeNvml
from _support.scripts import run_script
from jobmeter._core import gpus
from jobmeter._core import nvml as _nvml
from jobmeter._core.amdsmi import amdsmi
from jobmeter._core.gpu_calls import SAMPLE_MAX_AGE_S
from jobmeter.testing import InMemoryMetrics, in_memory

GIB = 2**30
MIB = 2**20
MI300X = "1fff74a1-0000-1000-80e4-3b9a37a5ba0b"
W7900 = "5bff7448-0000-1000-8053-a1b2c3d4e5f6"
H100 = "GPU-11111111-2222-3333-4444-555555555555"
VISIBILITY = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "ROCR_VISIBLE_DEVICES",
              "HIP_VISIBLE_DEVICES")  # fmt: skip


def two_amd_gpus() -> list[FakeAmdGpu]:
    me = os.getpid()
    return [
        FakeAmdGpu(MI300X, "AMD Instinct MI300X", asic_serial="0x8053B4F8B4A26F75",
                   hip_uuid="GPU-7c7ab4f8b4a26f75", gfx_activity=37, vram_used_mib=48 * 1024,
                   vram_total_mib=192 * 1024, socket_power_w=512, energy_ticks=64_000_000,
                   edge=None, hotspot=61, processes=[(me, 3 * GIB), (999_999, GIB)]),
        FakeAmdGpu(W7900, "AMD Radeon PRO W7900", asic_serial="0x00000000DEADBEEF",
                   gfx_activity="N/A", vram_used_mib=0, vram_total_mib=48 * 1024,
                   socket_power_w=95, energy_ticks=1_600_000, edge=38, hotspot=44,
                   processes=[(me, 512 * MIB)]),
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in VISIBILITY:
        monkeypatch.delenv(name, raising=False)
    with in_memory():  # the machine facts are read (and cached) before any fake
        pass
    monkeypatch.setitem(sys.modules, "pynvml", None)  # AMD alone, unless a test adds NVIDIA
    gpus._reset_for_tests()
    _nvml.nvml().available()  # NVML's one INFO line falls here, not in the test
    yield
    # Leave both libraries settled on this machine again, as the other tests find them.
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    gpus._reset_for_tests()
    gpus.available()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAmdSmi:
    driver = FakeAmdSmi(two_amd_gpus())
    monkeypatch.setitem(sys.modules, "amdsmi", driver)
    return driver


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def series(recorded: InMemoryMetrics) -> dict[str, dict[str, float]]:
    """One collection: metric -> {hw.id: value}."""
    found: dict[str, dict[str, float]] = {}
    for _, metric in recorded.metrics():
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint)
            hw_id = str((point.attributes or {}).get("hw.id"))
            assert hw_id not in found.setdefault(metric.name, {}), "one point per GPU"
            found[metric.name][hw_id] = point.value
    return found


def labels(recorded: InMemoryMetrics) -> dict[str, object]:
    return {str((p.attributes or {})["hw.id"]): (p.attributes or {})["jobmeter.gpu.visible"]
            for p in recorded.points("hw.power")}  # fmt: skip


def next_collection() -> None:
    time.sleep(SAMPLE_MAX_AGE_S + 0.05)


def infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "jobmeter" and r.levelno == logging.INFO]  # fmt: skip


def test_fake_has_the_names_and_values_of_the_real_amdsmi() -> None:
    """The fake must not drift from amdsmi: read from the package's source, not imported.

    Importing amdsmi needs ROCm's libamd_smi.so; its source says the same without it.
    """
    spec = importlib.util.find_spec("amdsmi")
    if spec is None or spec.origin is None:
        pytest.skip("the amdsmi package is not installed (pip install 'jobmeter[amd]')")
    package = Path(spec.origin).parent
    init, interface, wrapper, exceptions = (
        (package / f"{name}.py").read_text()
        for name in ("__init__", "amdsmi_interface", "amdsmi_wrapper", "amdsmi_exception")
    )
    for call in fake_amdsmi.CALLS:
        assert f"def {call}(" in interface, call
        assert f"import {call}\n" in init, call
    for name, value in fake_amdsmi.STATUS.items():
        assert re.search(rf"^{name} = {value}$", wrapper, re.M), name
    constants = dict(re.findall(r"^(AMDSMI_\w+) = (\d+)$", wrapper, re.M))
    for enum in fake_amdsmi.ENUMS:
        body = re.search(rf"^class {enum.__name__}\(IntEnum\):\n((?:    .*\n)+)", interface, re.M)
        assert body, enum.__name__
        members = dict(re.findall(r"^    (\w+) = amdsmi_wrapper\.(\w+)", body.group(1), re.M))
        for member in enum:
            assert int(constants[members[member.name]]) == member.value, member
    for error in (
        "AmdSmiException",
        "AmdSmiLibraryException",
        "AmdSmiRetryException",
        "AmdSmiTimeoutException",
        "AmdSmiParameterException",
    ):
        assert f"class {error}(" in exceptions, error
        assert f"import {error}\n" in init, error
    assert "def get_error_code(self)" in exceptions


def test_every_metric_of_two_amd_gpus_with_the_nvidia_names_and_vendor_amd(
    fake: FakeAmdSmi, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gpu = jobmeter.GPUCollector(attributes={"team": "ml"})
    assert series(recorded) == {
        "hw.gpu.utilization": {MI300X: 0.37},  # the W7900 answers "N/A"
        "hw.gpu.memory.usage": {MI300X: 48 * GIB, W7900: 0},
        "hw.gpu.memory.limit": {MI300X: 192 * GIB, W7900: 48 * GIB},
        "hw.gpu.memory.utilization": {MI300X: 0.25, W7900: 0.0},
        "hw.power": {MI300X: 512, W7900: 95},
        "hw.energy": {MI300X: 1000.0, W7900: 25.0},  # ticks x 15.625 uJ
        "hw.temperature": {MI300X: 61, W7900: 38},  # MI300X: hotspot, it has no edge sensor
        "jobmeter.process.gpu.memory.usage": {MI300X: 3 * GIB, W7900: 512 * MIB},
    }
    assert gpu.available
    for point in recorded.points("hw.power"):
        attributes = dict(point.attributes or {})
        name = "AMD Instinct MI300X" if attributes["hw.id"] == MI300X else "AMD Radeon PRO W7900"
        assert attributes == {"team": "ml", "hw.id": attributes["hw.id"], "hw.name": name,
                              "hw.vendor": "AMD", "hw.type": "gpu",
                              "jobmeter.gpu.visible": True}  # fmt: skip
    assert infos(caplog) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert fake.calls["amdsmi_init"] == 1
    assert fake.calls["amdsmi_get_gpu_vram_usage"] == 2  # one read per GPU serves three metrics


@pytest.mark.parametrize(
    ("rocr", "hip", "visible"),
    [
        (None, None, {MI300X, W7900}),
        ("1", None, {W7900}),
        ("0,1", None, {MI300X, W7900}),
        ("", None, set()),  # set but empty: no GPU
        ("1,7,0", None, {W7900}),  # an entry that names no GPU ends the list
        ("GPU-00000000DEADBEEF", None, {W7900}),  # ROCr's UUID: the unique id
        ("gpu-00000000deadbeef", None, {W7900}),  # in any case
        ("GPU-7c7ab4f8b4a26f75", None, {MI300X}),  # HIP's UUID, from amdsmi
        (f"GPU-{W7900}", None, {W7900}),  # amdsmi's UUID
        (f"0,GPU-{W7900}", None, {MI300X, W7900}),  # indices and UUIDs mixed
        (None, "1", {W7900}),  # HIP_VISIBLE_DEVICES where ROCR is unset
        ("1", "0", {W7900}),  # HIP indexes what ROCR left: its 0 is the W7900
        ("1", "1", set()),
    ],
)
def test_rocr_and_hip_visible_devices_choose_the_jobs_amd_gpus(
    fake: FakeAmdSmi,
    recorded: InMemoryMetrics,
    monkeypatch: pytest.MonkeyPatch,
    rocr: str | None,
    hip: str | None,
    visible: set[str],
) -> None:
    for name, value in (("ROCR_VISIBLE_DEVICES", rocr), ("HIP_VISIBLE_DEVICES", hip)):
        if value is not None:
            monkeypatch.setenv(name, value)
    jobmeter.GPUCollector()
    assert labels(recorded) == {MI300X: MI300X in visible, W7900: W7900 in visible}
    owned = {MI300X: 3 * GIB, W7900: 512 * MIB}
    assert series(recorded).get("jobmeter.process.gpu.memory.usage", {}) == {
        uuid: owned[uuid] for uuid in visible
    }
    mine = gpus.process_memory([os.getpid()])
    assert mine == (sum(owned[uuid] for uuid in visible) if visible else None)
    env = {"ROCR_VISIBLE_DEVICES": "0"}
    assert [d.uuid for d in gpus.visible_devices(env)] == [MI300X]  # another process's view


def test_energy_and_power_are_fresh_reads_in_joules_and_watts_on_both_vendors(
    fake: FakeAmdSmi, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvidia = FakeNvml([FakeGpu(H100, "NVIDIA H100", power_mw=123_456, energy_mj=987_654_321)])
    monkeypatch.setitem(sys.modules, "pynvml", nvidia)
    _nvml._reset_for_tests()
    h100, mi300x, w7900 = gpus.devices()
    assert [d.vendor for d in (h100, mi300x, w7900)] == ["NVIDIA", "AMD", "AMD"]
    assert gpus.energy_joules(h100) == 987_654.321  # mJ / 1000
    assert gpus.power_watts(h100) == 123.456  # mW / 1000
    assert gpus.energy_joules(mi300x) == 1000.0  # 64e6 ticks x 15.625 uJ
    assert gpus.power_watts(mi300x) == 512
    nvidia.gpus[0].energy_mj += 1_500  # the counters move; the next read, at once, sees it
    fake.gpus[0].energy_ticks += 64_000
    fake.gpus[0].socket_power_w = 640
    assert gpus.energy_joules(h100) == 987_655.821
    assert gpus.energy_joules(mi300x) == 1001.0
    assert gpus.power_watts(mi300x) == 640
    assert fake.calls["amdsmi_get_energy_count"] == 2  # never a cached answer
    fake.gpus[1].fail["amdsmi_get_energy_count"] = not_supported()
    assert gpus.energy_joules(w7900) is None
    assert gpus.energy_joules(w7900) is None
    assert fake.calls["amdsmi_get_energy_count"] == 3  # not supported: not asked again


def test_without_the_amdsmi_package_nothing_is_reported_and_one_info_line_says_why(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # import amdsmi raises ImportError
    caplog.set_level(logging.DEBUG)
    gpu = jobmeter.GPUCollector()
    for _ in range(2):
        assert series(recorded) == {}
    assert not gpu.available
    assert amdsmi().inventory() == (None, 0)
    assert gpus.process_memory([os.getpid()]) is None
    assert [line for line in infos(caplog) if "AMD" in line] == [
        "jobmeter: no AMD GPU (the amdsmi package is not installed); AMD GPU metrics are off"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_without_libamd_smi_the_package_is_not_even_imported(
    recorded: InMemoryMetrics,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The real amdsmi prints to standard output when it cannot load ROCm's library."""
    package = tmp_path / "site" / "amdsmi"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'print("Unable to find libamd_smi.so")\nraise KeyError(1)\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    monkeypatch.setenv("ROCM_PATH", str(tmp_path / "rocm"))  # no lib/libamd_smi.so there
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    assert series(recorded) == {}
    assert "amdsmi" not in sys.modules
    assert capsys.readouterr().out == ""
    assert [line for line in infos(caplog) if "AMD" in line] == [
        "jobmeter: no AMD GPU (ROCm's libamd_smi.so was not found: install amd-smi-lib or set "
        "ROCM_PATH); AMD GPU metrics are off"
    ]


def test_a_driver_that_does_not_load_is_one_info_line_and_no_session_left_open(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FakeAmdSmi(two_amd_gpus(), init_error=AmdSmiLibraryException(34))
    monkeypatch.setitem(sys.modules, "amdsmi", driver)
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    assert series(recorded) == {}
    next_collection()
    assert series(recorded) == {}
    assert [line for line in infos(caplog) if "AMD" in line] == [
        "jobmeter: no AMD GPU (AMD SMI did not start: AmdSmiLibraryException: "
        "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded); AMD GPU metrics are off"
    ]
    assert driver.calls["amdsmi_init"] == 1
    assert driver.sessions == 0


def test_a_call_failing_at_collection_is_skipped_and_noted_once(
    fake: FakeAmdSmi, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    fake.gpus[1].fail["amdsmi_get_temp_metric"] = AmdSmiLibraryException(30)  # busy
    for _ in range(3):
        found = series(recorded)
        assert found["hw.temperature"] == {MI300X: 61}
        assert found["hw.power"] == {MI300X: 512, W7900: 95}
        next_collection()
    del fake.gpus[1].fail["amdsmi_get_temp_metric"]
    assert series(recorded)["hw.temperature"] == {MI300X: 61, W7900: 38}  # back
    assert infos(caplog) == [
        "jobmeter: reading temperature from AMD SMI failed (AmdSmiLibraryException: "
        "AMDSMI_STATUS_BUSY - Device busy); the value is skipped while it fails"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_nvidia_and_amd_gpus_in_one_machine(
    fake: FakeAmdSmi, recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    h100 = FakeGpu(H100, "NVIDIA H100 80GB HBM3", utilization=50, memory_used=20 * GIB,
                   memory_total=80 * GIB, power_mw=300_000, energy_mj=2_000_000)  # fmt: skip
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([h100]))
    _nvml._reset_for_tests()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the job may use no NVIDIA GPU...
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "0")  # ...and the MI300X
    jobmeter.GPUCollector()
    found = series(recorded)
    assert found["hw.power"] == {H100: 300.0, MI300X: 512, W7900: 95}
    assert found["hw.energy"] == {H100: 2000.0, MI300X: 1000.0, W7900: 25.0}
    assert found["hw.gpu.utilization"] == {H100: 0.5, MI300X: 0.37}
    assert found["jobmeter.process.gpu.memory.usage"] == {MI300X: 3 * GIB}
    assert labels(recorded) == {H100: False, MI300X: True, W7900: False}
    vendors = {str((p.attributes or {})["hw.id"]): (p.attributes or {})["hw.vendor"]
               for p in recorded.points("hw.power")}  # fmt: skip
    assert vendors == {H100: "NVIDIA", MI300X: "AMD", W7900: "AMD"}
    assert gpus.inventory() == ("NVIDIA H100 80GB HBM3", 3)
    assert gpus.process_memory([os.getpid()]) == 3 * GIB


def test_a_forked_child_starts_amd_smi_again(fake: FakeAmdSmi) -> None:
    assert amdsmi().available()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its own start, then leave at once
        try:
            uuids = ",".join(d.uuid for d in amdsmi().devices())
            os.write(write, f"{fake.calls['amdsmi_init']} {uuids}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == f"2 {MI300X},{W7900}"  # a second amdsmi_init, new handles in the child
    assert fake.calls["amdsmi_init"] == 1
    assert amdsmi().available()


def test_amd_smi_is_not_imported_before_use_and_is_shut_down_at_exit() -> None:
    out = run_script(
        """
        import atexit, sys
        import jobmeter
        jobmeter.GPUCollector()
        print("amdsmi" in sys.modules)
        from _support.fake_amdsmi import FakeAmdGpu, FakeAmdSmi
        driver = sys.modules["amdsmi"] = FakeAmdSmi([FakeAmdGpu("u-1", "AMD Instinct MI250X")])
        # registered first, so it runs after jobmeter's own exit hook
        atexit.register(lambda: print(driver.calls["amdsmi_shut_down"], driver.sessions))
        from jobmeter._core.amdsmi import amdsmi
        assert amdsmi().available()
        """
    )
    assert out.split() == ["False", "1", "0"]
