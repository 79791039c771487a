"""GPUCollector and the NVML boundary: exact figures from a fake driver, quiet without a GPU.

Everything above pynvml is real (the SDK, the in-memory reader, the collector,
``_nvml``); pynvml itself is the fake in ``fake_nvml.py`` except where a test
says it uses the real module on this machine.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import DataPointT, Gauge, Metric, NumberDataPoint, Sum

import jobmeter
from _support.fake_nvml import (
    CALLS,
    CONSTANTS,
    ERRORS,
    FakeGpu,
    FakeNvml,
    NVMLError_DriverNotLoaded,
    NVMLError_GpuIsLost,
    NVMLError_LibraryNotFound,
    NVMLError_NotSupported,
    ProcessInfo,
)
from _support.scripts import run_script
from jobmeter._core import nvml as _nvml
from jobmeter._core.nvml import SAMPLE_MAX_AGE_S, nvml
from jobmeter.testing import InMemoryMetrics, in_memory

GIB = 2**30
MIB = 2**20
H100 = "GPU-11111111-2222-3333-4444-555555555555"
A10 = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
GPU_METRICS = (
    "hw.gpu.utilization",
    "hw.gpu.memory.usage",
    "hw.gpu.memory.limit",
    "hw.gpu.memory.utilization",
    "hw.power",
    "hw.energy",
    "hw.temperature",
    "jobmeter.process.gpu.memory.usage",
)


def two_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(H100, "NVIDIA H100 80GB HBM3", utilization=37, memory_used=20 * GIB,
                memory_total=80 * GIB, power_mw=123_456, energy_mj=987_654_321, temperature=45),
        FakeGpu(A10, "NVIDIA A10", utilization=100, memory_used=0, memory_total=24 * GIB,
                power_mw=60_000, energy_mj=5_000, temperature=30),
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Every GPU is the job's unless a test says otherwise (test_gpu_visible.py).
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    # configure() may read the GPU inventory once per process for its resource:
    # let it read the real machine now, so that it never keeps a fake driver's GPUs.
    with in_memory():
        pass
    _nvml._reset_for_tests()
    yield
    _nvml._reset_for_tests()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """The fake driver with two GPUs, installed as ``pynvml`` (reset around by _fresh_nvml)."""
    driver = FakeNvml(two_gpus())
    monkeypatch.setitem(sys.modules, "pynvml", driver)
    return driver


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def collect(recorded: InMemoryMetrics) -> dict[str, Metric]:
    """One collection: every metric by name."""
    return {metric.name: metric for _, metric in recorded.metrics()}


def by_gpu(metric: Metric) -> dict[str, float]:
    """Values of a metric's points by hw.id."""
    return values_by_gpu(metric.data.data_points)


def values_by_gpu(points: Sequence[DataPointT]) -> dict[str, float]:
    values = {}
    for point in points:
        assert isinstance(point, NumberDataPoint)
        values[str((point.attributes or {})["hw.id"])] = point.value
    assert len(values) == len(points), "one point per GPU"
    return values


def gpu_series(found: dict[str, Metric]) -> dict[str, dict[str, float]]:
    return {name: by_gpu(m) for name, m in found.items() if name in GPU_METRICS}


def next_collection() -> None:
    """Let the shared sample age out, so that the next collection reads NVML again."""
    time.sleep(SAMPLE_MAX_AGE_S + 0.05)


def jobmeter_infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "jobmeter" and r.levelno == logging.INFO]  # fmt: skip


def warnings_or_worse(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- the fake is pynvml's double -------------------------------------------------


def test_fake_has_the_names_and_values_of_the_real_pynvml() -> None:
    """The fake must not drift from nvidia-ml-py: same calls, constants and error classes."""
    real = pytest.importorskip("pynvml")
    assert not isinstance(real, FakeNvml)
    for call in CALLS:
        assert callable(getattr(real, call)), call
    for name, value in CONSTANTS.items():
        assert getattr(real, name) == value, name
    for error in ERRORS:
        real_error = getattr(real, error.__name__)
        assert issubclass(real_error, real.NVMLError)
        assert real_error().value == error().value, error.__name__
        assert real.NVMLError(error().value).__class__ is real_error


# -- no GPU --------------------------------------------------------------------


def test_no_gpu_on_this_machine_reports_nothing_with_one_info_line(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """The real pynvml (or its absence) on this machine: no series, one INFO, no error."""
    sys.modules.pop("pynvml", None)  # a fake left by nobody: import the real module or fail
    caplog.set_level(logging.DEBUG)
    gpu = jobmeter.GPUCollector()
    first, second = collect(recorded), collect(recorded)
    if gpu.available:
        pytest.skip("this machine has an NVIDIA GPU: tests/host/test_gpu_real.py covers it")
    assert first == second == {}
    assert nvml().devices() == []
    assert nvml().inventory() == (None, 0)
    assert nvml().process_memory([os.getpid()]) is None
    (info,) = jobmeter_infos(caplog)
    assert info.startswith("jobmeter: no NVIDIA GPU (")
    assert info.endswith("); GPU metrics are off")
    assert warnings_or_worse(caplog) == []
    assert not any(r.exc_info for r in caplog.records)


def test_without_the_nvidia_ml_py_package(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    caplog.set_level(logging.DEBUG)
    gpu = jobmeter.GPUCollector()
    assert collect(recorded) == {}
    assert not gpu.available
    assert jobmeter_infos(caplog) == [
        "jobmeter: no NVIDIA GPU (the nvidia-ml-py package is not installed); GPU metrics are off"
    ]
    assert warnings_or_worse(caplog) == []


@pytest.mark.parametrize(
    ("gpus", "init_error", "reason"),
    [
        (two_gpus(), NVMLError_DriverNotLoaded(), "NVML did not start: NVMLError_DriverNotLoaded"),
        (two_gpus(), NVMLError_LibraryNotFound(), "NVML did not start: NVMLError_LibraryNotFound"),
        ([], None, "NVML found no GPU"),
    ],
    ids=["driver-not-loaded", "library-not-found", "no-gpu"],
)
def test_no_driver_or_no_gpu_is_one_info_line(
    recorded: InMemoryMetrics,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    gpus: list[FakeGpu],
    init_error: NVMLError_DriverNotLoaded | None,
    reason: str,
) -> None:
    driver = FakeNvml(gpus, init_error=init_error)
    monkeypatch.setitem(sys.modules, "pynvml", driver)
    caplog.set_level(logging.DEBUG)
    gpu = jobmeter.GPUCollector()
    for _ in range(3):
        assert collect(recorded) == {}
        next_collection()
    assert not gpu.available
    (info,) = jobmeter_infos(caplog)
    assert info.startswith(f"jobmeter: no NVIDIA GPU ({reason}")
    assert warnings_or_worse(caplog) == []
    assert driver.calls["nvmlInit"] == 1  # tried once, not at every collection
    assert driver.sessions == 0  # a session opened on a machine without GPU is closed again


# -- figures -------------------------------------------------------------------


def test_every_metric_of_two_gpus_with_units_kinds_and_attributes(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.gpus[0].compute_processes = [ProcessInfo(os.getpid(), 3 * GIB)]
    jobmeter.GPUCollector(attributes={"team": "ml"})
    found = collect(recorded)
    assert gpu_series(found) == {
        "hw.gpu.utilization": {H100: 0.37, A10: 1.0},
        "hw.gpu.memory.usage": {H100: 20 * GIB, A10: 0},
        "hw.gpu.memory.limit": {H100: 80 * GIB, A10: 24 * GIB},
        "hw.gpu.memory.utilization": {H100: 0.25, A10: 0.0},
        "hw.power": {H100: 123.456, A10: 60.0},
        "hw.energy": {H100: 987_654.321, A10: 5.0},
        "hw.temperature": {H100: 45, A10: 30},
        "jobmeter.process.gpu.memory.usage": {H100: 3 * GIB, A10: 0},
    }
    kinds = {
        "hw.gpu.utilization": ("ObservableGauge", "1"),
        "hw.gpu.memory.usage": ("ObservableUpDownCounter", "By"),
        "hw.gpu.memory.limit": ("ObservableUpDownCounter", "By"),
        "hw.gpu.memory.utilization": ("ObservableGauge", "1"),
        "hw.power": ("ObservableGauge", "W"),
        "hw.energy": ("ObservableCounter", "J"),
        "hw.temperature": ("ObservableGauge", "Cel"),
        "jobmeter.process.gpu.memory.usage": ("ObservableUpDownCounter", "By"),
    }
    for name, (kind, unit) in kinds.items():
        metric = found[name]
        data = metric.data
        if isinstance(data, Sum):
            seen = "ObservableCounter" if data.is_monotonic else "ObservableUpDownCounter"
        else:
            assert isinstance(data, Gauge), name
            seen = "ObservableGauge"
        assert (seen, metric.unit) == (kind, unit), name
        for point in data.data_points:
            attributes = dict(point.attributes or {})
            gpu_name = "NVIDIA H100 80GB HBM3" if attributes["hw.id"] == H100 else "NVIDIA A10"
            assert attributes == {"team": "ml", "hw.id": attributes["hw.id"],
                                  "hw.name": gpu_name, "hw.vendor": "NVIDIA",
                                  "hw.type": "gpu", "jobmeter.gpu.visible": True}, name  # fmt: skip
    assert warnings_or_worse(caplog) == []
    assert jobmeter_infos(caplog) == []  # a healthy driver logs nothing at INFO


def test_values_follow_the_driver_between_collections(
    fake: FakeNvml, recorded: InMemoryMetrics
) -> None:
    jobmeter.GPUCollector()
    assert by_gpu(collect(recorded)["hw.energy"]) == {H100: 987_654.321, A10: 5.0}
    fake.gpus[0].energy_mj += 250_000
    fake.gpus[1].temperature = 71
    next_collection()
    found = collect(recorded)
    assert by_gpu(found["hw.energy"]) == {H100: 987_904.321, A10: 5.0}
    assert by_gpu(found["hw.temperature"]) == {H100: 45, A10: 71}


def test_energy_not_supported_on_one_card(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.gpus[1].fail["nvmlDeviceGetTotalEnergyConsumption"] = NVMLError_NotSupported()
    jobmeter.GPUCollector()
    for _ in range(3):
        found = collect(recorded)
        assert by_gpu(found["hw.energy"]) == {H100: 987_654.321}
        assert by_gpu(found["hw.power"]) == {H100: 123.456, A10: 60.0}
        next_collection()
    assert jobmeter_infos(caplog) == [
        "jobmeter: GPU 1 (NVIDIA A10) does not report energy; that metric is left out for it"
    ]
    assert warnings_or_worse(caplog) == []
    # Not supported is not asked again.
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 3 + 1


def test_a_call_failing_mid_run_skips_only_that_value(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    assert by_gpu(collect(recorded)["hw.temperature"]) == {H100: 45, A10: 30}
    fake.gpus[0].fail["nvmlDeviceGetTemperature"] = NVMLError_GpuIsLost()
    for _ in range(2):
        next_collection()
        found = collect(recorded)
        assert by_gpu(found["hw.temperature"]) == {A10: 30}
        assert by_gpu(found["hw.power"]) == {H100: 123.456, A10: 60.0}
        assert by_gpu(found["hw.gpu.memory.limit"]) == {H100: 80 * GIB, A10: 24 * GIB}
    del fake.gpus[0].fail["nvmlDeviceGetTemperature"]
    next_collection()
    assert by_gpu(collect(recorded)["hw.temperature"]) == {H100: 45, A10: 30}  # back
    (info,) = jobmeter_infos(caplog)
    assert info.startswith("jobmeter: reading temperature from NVML failed (NVMLError_GpuIsLost")
    assert warnings_or_worse(caplog) == []


def test_a_gpu_lost_from_the_bus_reports_nothing_and_raises_nothing(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector()
    collect(recorded)
    lost = NVMLError_GpuIsLost()
    fake.gpus[1].fail = dict.fromkeys(CALLS, lost)
    next_collection()
    found = collect(recorded)
    for name in GPU_METRICS:
        assert set(by_gpu(found[name])) == {H100}, name
    # One line per kind of value, not per collection or per GPU.
    assert len(jobmeter_infos(caplog)) == 7
    next_collection()
    collect(recorded)
    assert len(jobmeter_infos(caplog)) == 7
    assert warnings_or_worse(caplog) == []


def test_process_memory_counts_only_the_measured_pids(
    fake: FakeNvml, recorded: InMemoryMetrics
) -> None:
    me, other = os.getpid(), 999_999
    fake.gpus[0].compute_processes = [ProcessInfo(me, 512 * MIB), ProcessInfo(other, 4 * GIB)]
    fake.gpus[0].graphics_processes = [ProcessInfo(me, 512 * MIB)]  # the same process, once
    fake.gpus[1].compute_processes = [ProcessInfo(me, None), ProcessInfo(other, GIB)]
    jobmeter.GPUCollector(attributes={"who": "me"})
    jobmeter.GPUCollector("other.gpu", attributes={"who": "other"}, pids=lambda: [other])
    name = "jobmeter.process.gpu.memory.usage"
    mine = values_by_gpu(recorded.points(name, {"who": "me"}))
    theirs = values_by_gpu(recorded.points(name, {"who": "other"}))
    assert mine == {H100: 512 * MIB, A10: 0}
    assert theirs == {H100: 4 * GIB, A10: GIB}
    assert nvml().process_memory([me]) == 512 * MIB
    assert nvml().process_memory({me, other}) == 512 * MIB + 4 * GIB + GIB
    assert nvml().process_memory([]) == 0


def test_pids_that_fail_are_logged_once_and_the_rest_is_reported(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> list[int]:
        raise RuntimeError("no such tree")

    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector(pids=broken)
    for _ in range(2):
        found = collect(recorded)
        assert "jobmeter.process.gpu.memory.usage" not in found
        assert by_gpu(found["hw.power"]) == {H100: 123.456, A10: 60.0}
    (warning,) = warnings_or_worse(caplog)
    assert "pids of GPUCollector('jobmeter.gpu') failed" in warning
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_mig_gpu_is_reported_once_as_the_physical_gpu(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.gpus[0].mig = True
    fake.gpus[0].fail["nvmlDeviceGetUtilizationRates"] = NVMLError_NotSupported()  # as in MIG
    fake.gpus[1].mig = None  # the MIG query is not supported on this card
    jobmeter.GPUCollector()
    found = collect(recorded)
    assert by_gpu(found["hw.gpu.memory.limit"]) == {H100: 80 * GIB, A10: 24 * GIB}
    assert by_gpu(found["hw.gpu.utilization"]) == {A10: 1.0}
    assert [d.mig for d in nvml().devices()] == [True, False]
    assert [d.uuid for d in nvml().devices()] == [H100, A10]
    assert jobmeter_infos(caplog) == [
        "jobmeter: GPU 0 (NVIDIA H100 80GB HBM3) is in MIG mode; it is reported as one "
        "physical GPU and its MIG instances are not listed",
        "jobmeter: GPU 0 (NVIDIA H100 80GB HBM3) does not report utilization; that metric is "
        "left out for it",
    ]
    assert warnings_or_worse(caplog) == []


def test_a_gpu_that_does_not_answer_at_start_is_left_out(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.gpus[0].fail["nvmlDeviceGetUUID"] = NVMLError_GpuIsLost()
    jobmeter.GPUCollector()
    assert by_gpu(collect(recorded)["hw.power"]) == {A10: 60.0}
    assert nvml().inventory() == ("NVIDIA A10", 1)
    (info,) = jobmeter_infos(caplog)
    assert info.startswith("jobmeter: GPU 0 did not answer NVML (NVMLError_GpuIsLost")


def test_docs_table_matches_the_metrics_and_a_real_prometheus_scrape(fake: FakeNvml) -> None:
    """docs/gpu.md lists every GPU metric with its kind, unit and Prometheus name."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "gpu.md"
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in docs.read_text().splitlines()
        if line.startswith("| `")
    ]
    documented = {row[0]: (row[1], row[2], row[3]) for row in rows}
    fake.gpus[0].compute_processes = [ProcessInfo(os.getpid(), MIB)]
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    jobmeter.GPUCollector()
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
        text = response.read().decode()
    exposed = {line.split("{")[0] for line in text.splitlines() if 'hw_id="' in line}
    assert {prometheus for _, _, prometheus in documented.values()} == exposed
    with in_memory() as recorded:
        jobmeter.GPUCollector()
        found = collect(recorded)
    assert set(documented) == set(GPU_METRICS) == set(found)
    for name, metric in found.items():
        data = metric.data
        if isinstance(data, Sum):
            kind = "ObservableCounter" if data.is_monotonic else "ObservableUpDownCounter"
        else:
            assert isinstance(data, Gauge)
            kind = "ObservableGauge"
        assert documented[name][:2] == (kind, metric.unit), name


# -- one start, one lookup, one read per collection ---------------------------------


def test_nvml_starts_once_handles_are_cached_and_callbacks_share_a_read(
    fake: FakeNvml, recorded: InMemoryMetrics
) -> None:
    gpu = jobmeter.GPUCollector()
    assert fake.calls["nvmlInit"] == 0  # nothing happens until a collection
    for _ in range(3):
        found = collect(recorded)
        assert set(found) >= set(GPU_METRICS)
        next_collection()
    assert gpu.available
    assert fake.calls["nvmlInit"] == 1
    assert fake.calls["nvmlDeviceGetCount"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 2
    assert fake.calls["nvmlDeviceGetUUID"] == 2
    # memory usage, limit and utilization come from one read per GPU per collection
    assert fake.calls["nvmlDeviceGetMemoryInfo"] == 3 * 2
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 3 * 2
    assert fake.calls["nvmlShutdown"] == 0


def test_two_collectors_of_one_name_share_instruments_without_warnings(
    fake: FakeNvml, recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """A GPUCollector next to start_host_metrics()'s: both report, the SDK warns of nothing."""
    caplog.set_level(logging.DEBUG)
    jobmeter.GPUCollector(attributes={"who": "a"})
    jobmeter.GPUCollector(attributes={"who": "b"})
    points = collect(recorded)["hw.power"].data.data_points
    assert sorted(
        (str(dict(p.attributes or {})["who"]), str(dict(p.attributes or {})["hw.id"]), p.value)
        for p in points
        if isinstance(p, NumberDataPoint)
    ) == [("a", H100, 123.456), ("a", A10, 60.0), ("b", H100, 123.456), ("b", A10, 60.0)]
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 2  # still one read per GPU
    assert warnings_or_worse(caplog) == []


def test_inventory_for_machine_info(fake: FakeNvml) -> None:
    assert nvml().inventory() == ("NVIDIA H100 80GB HBM3", 2)
    _nvml._reset_for_tests()
    fake.bytes_strings = True  # pynvml before 11 answered bytes
    assert nvml().inventory() == ("NVIDIA H100 80GB HBM3", 2)
    assert [d.uuid for d in nvml().devices()] == [H100, A10]
    _nvml._reset_for_tests()
    fake.gpus = []
    assert nvml().inventory() == (None, 0)


def test_reset_shuts_the_session_down(fake: FakeNvml) -> None:
    assert nvml().available()
    assert fake.sessions == 1
    _nvml._reset_for_tests()
    assert fake.sessions == 0
    assert nvml().available()
    assert fake.calls["nvmlInit"] == 2


# -- import, fork, exit -----------------------------------------------------------


def test_importing_and_creating_a_collector_does_not_touch_nvml() -> None:
    out = run_script(
        """
        import sys
        import jobmeter, jobmeter.host
        jobmeter.GPUCollector()
        print("pynvml" in sys.modules)
        """
    )
    assert out.strip() == "False"


def test_nvml_is_shut_down_at_exit() -> None:
    out = run_script(
        """
        import atexit, sys
        from _support.fake_nvml import FakeGpu, FakeNvml
        driver = sys.modules["pynvml"] = FakeNvml([FakeGpu("GPU-1", "NVIDIA T4")])
        # registered first, so it runs after jobmeter's own exit hook
        atexit.register(lambda: print(driver.calls["nvmlShutdown"], driver.sessions))
        from jobmeter._core.nvml import nvml
        assert nvml().available()
        """
    )
    assert out.split() == ["1", "0"]


def test_a_forked_child_starts_nvml_again(fake: FakeNvml) -> None:
    assert nvml().available()
    assert fake.calls["nvmlInit"] == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its own NVML start, then leave at once
        try:
            devices = nvml().devices()
            report = f"{fake.calls['nvmlInit']} {fake.calls['nvmlDeviceGetHandleByIndex']} "
            report += ",".join(d.uuid for d in devices)
            os.write(write, report.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == f"2 4 {H100},{A10}"  # a second nvmlInit and new handles in the child
    assert fake.calls["nvmlInit"] == 1  # the parent keeps its session
    assert nvml().available()
