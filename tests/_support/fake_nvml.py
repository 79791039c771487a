"""A fake ``pynvml``: the few NVML calls jobmeter makes, over a list of fake GPUs.

This is the only fake in the tests, at the driver boundary: nothing else can
show two GPUs, a GPU that drops off the bus, a card without an energy counter,
or a card split into MIG devices on a machine that has no GPU. Names,
constants and error classes are those of the real nvidia-ml-py
(``tests/host/test_gpu.py`` checks them against it).
Install it with ``monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([...]))``.
"""

# pynvml's own names: NVMLError_NotSupported, nvmlDeviceGetCount, usedGpuMemory.
# ruff: noqa: N801, N802, N815, N818

from __future__ import annotations

import types
from collections import Counter
from dataclasses import dataclass, field

NVML_TEMPERATURE_GPU = 0
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    """pynvml's base error; ``value`` is the NVML return code."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class NVMLError_Uninitialized(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_UNINITIALIZED)


class NVMLError_InvalidArgument(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_INVALID_ARGUMENT)


class NVMLError_NotSupported(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


class NVMLError_NotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_FOUND)


class NVMLError_DriverNotLoaded(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_DRIVER_NOT_LOADED)


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND)


class NVMLError_FunctionNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_FUNCTION_NOT_FOUND)


class NVMLError_GpuIsLost(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_GPU_IS_LOST)


ERRORS = (
    NVMLError_Uninitialized,
    NVMLError_InvalidArgument,
    NVMLError_NotSupported,
    NVMLError_NotFound,
    NVMLError_DriverNotLoaded,
    NVMLError_LibraryNotFound,
    NVMLError_FunctionNotFound,
    NVMLError_GpuIsLost,
)


@dataclass
class Utilization:
    gpu: int
    memory: int


@dataclass
class MemoryInfo:
    total: int
    free: int
    used: int


@dataclass
class ProcessInfo:
    pid: int
    usedGpuMemory: int | None


@dataclass
class FakeMigDevice:
    """One MIG device (GPU instance, compute instance) of a fake GPU in MIG mode.

    Its processes are listed on the parent GPU, as NVML lists them to a caller
    with the privileges to see them.
    """

    uuid: str  # MIG-…
    gpu_instance: int
    compute_instance: int = 0
    fail: dict[str, NVMLError] = field(default_factory=dict)


@dataclass
class FakeGpu:
    """One fake GPU; tests change its values between collections.

    ``fail`` maps a pynvml function name to the error that call raises.
    ``mig=None`` makes the MIG query raise NotSupported (GPUs without MIG).
    ``mig_devices`` are the MIG devices by slot (None: an empty slot), up to
    ``max_mig_devices``; they exist only while ``mig`` is True.
    """

    uuid: str
    name: str
    utilization: int = 0  # percent
    memory_used: int = 0
    memory_total: int = 16 * 2**30
    power_mw: int = 50_000
    energy_mj: int = 1_000_000
    temperature: int = 40
    mig: bool | None = False
    compute_processes: list[ProcessInfo] = field(default_factory=list)
    graphics_processes: list[ProcessInfo] = field(default_factory=list)
    fail: dict[str, NVMLError] = field(default_factory=dict)
    mig_devices: list[FakeMigDevice | None] = field(default_factory=list)
    max_mig_devices: int = 7


class FakeNvml(types.ModuleType):
    """Stands in for the ``pynvml`` module; ``calls`` counts every call by name."""

    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_DEVICE_MIG_DISABLE = NVML_DEVICE_MIG_DISABLE
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_InvalidArgument = NVMLError_InvalidArgument
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(self, gpus: list[FakeGpu], *, init_error: Exception | None = None) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.bytes_strings = False  # answer names and UUIDs as bytes, like old pynvml
        self.calls: Counter[str] = Counter()
        self.sessions = 0  # nvmlInit minus nvmlShutdown

    def _enter(self, call: str, gpu: FakeGpu | FakeMigDevice | None = None) -> None:
        self.calls[call] += 1
        if call != "nvmlInit" and self.sessions <= 0:
            raise NVMLError_Uninitialized()
        if gpu is not None and call in gpu.fail:
            raise gpu.fail[call]

    def _string(self, text: str) -> str | bytes:
        return text.encode() if self.bytes_strings else text

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise self.init_error
        self.sessions += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.sessions -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        gpu = self.gpus[index]
        self._enter("nvmlDeviceGetHandleByIndex", gpu)
        return gpu

    def nvmlDeviceGetUUID(self, handle: FakeGpu | FakeMigDevice) -> str | bytes:
        self._enter("nvmlDeviceGetUUID", handle)
        return self._string(handle.uuid)

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str | bytes:
        self._enter("nvmlDeviceGetName", handle)
        return self._string(handle.name)

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", handle)
        if handle.mig is None:
            raise NVMLError_NotSupported()
        mode = NVML_DEVICE_MIG_ENABLE if handle.mig else NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> Utilization:
        self._enter("nvmlDeviceGetUtilizationRates", handle)
        return Utilization(gpu=handle.utilization, memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> MemoryInfo:
        self._enter("nvmlDeviceGetMemoryInfo", handle)
        free = handle.memory_total - handle.memory_used
        return MemoryInfo(total=handle.memory_total, free=free, used=handle.memory_used)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetPowerUsage", handle)
        return handle.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetTotalEnergyConsumption", handle)
        return handle.energy_mj

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError_InvalidArgument()
        return handle.temperature

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", handle)
        if handle.mig is None:
            raise NVMLError_NotSupported()
        return handle.max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeMigDevice:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if handle.mig is None:
            raise NVMLError_NotSupported()
        if not handle.mig or not 0 <= index < handle.max_mig_devices:
            raise NVMLError_InvalidArgument()
        found = handle.mig_devices[index] if index < len(handle.mig_devices) else None
        if found is None:
            raise NVMLError_NotFound()
        return found

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeMigDevice) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", handle)
        if not isinstance(handle, FakeMigDevice):
            raise NVMLError_InvalidArgument()  # a physical GPU has no instance id
        return handle.gpu_instance

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeMigDevice) -> int:
        self._enter("nvmlDeviceGetComputeInstanceId", handle)
        if not isinstance(handle, FakeMigDevice):
            raise NVMLError_InvalidArgument()
        return handle.compute_instance

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[ProcessInfo]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
        return list(handle.compute_processes)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeGpu) -> list[ProcessInfo]:
        self._enter("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return list(handle.graphics_processes)


# The pynvml names the fake provides, checked against the real module.
CALLS = sorted(name for name in vars(FakeNvml) if name.startswith("nvml"))
CONSTANTS = {
    name: value for name, value in globals().items() if name.startswith("NVML_")
}  # fmt: skip
