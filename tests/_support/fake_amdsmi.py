"""A fake ``amdsmi``: the few AMD SMI calls jobmeter makes, over a list of fake AMD GPUs.

The second fake of the tests, like ``fake_nvml.py`` at the driver boundary
only: nothing else can show AMD GPUs, an Instinct card without an edge
sensor, or a call that starts failing, on a machine without one. Function
names, return shapes (dicts with amdsmi's keys, ``"N/A"`` where amdsmi says
so), enum values, status codes and exception classes are those of the real
amdsmi 7.x package (``amdsmi_interface.py``, ``amdsmi_wrapper.py``,
``amdsmi_exception.py``); ``tests/host/test_amd_gpu.py`` checks them against
its source where the package is installed. Units as amdsmi gives them: VRAM
in MiB, power in W, temperature in degrees Celsius, the energy accumulator in
ticks of ``counter_resolution`` microjoules, process memory in bytes.
Install it with ``monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi([...]))``.
"""

# amdsmi's own names: AmdSmiLibraryException, AMDSMI_STATUS_*.
# ruff: noqa: N818

from __future__ import annotations

import types
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NOT_YET_IMPLEMENTED = 3
AMDSMI_STATUS_TIMEOUT = 8
AMDSMI_STATUS_RETRY = 9
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
NA = "N/A"

_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_NOT_YET_IMPLEMENTED:
        "AMDSMI_STATUS_NOT_YET_IMPLEMENTED - Feature not yet implemented",
    AMDSMI_STATUS_TIMEOUT: "AMDSMI_STATUS_TIMEOUT - Timeout in API call",
    AMDSMI_STATUS_RETRY: "AMDSMI_STATUS_RETRY - Retry operation",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    AMDSMI_STATUS_BUSY: "AMDSMI_STATUS_BUSY - Device busy",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
}  # fmt: skip


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 4294967295
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8
    INIT_AMD_APUS = 3


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    JUNCTION = 1
    VRAM = 2


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0
    MAX = 1
    MIN = 2


class AmdSmiException(Exception):
    """Base smi exception class"""


class AmdSmiLibraryException(AmdSmiException):
    """An amdsmi_status_t other than success; ``get_error_code()`` gives it."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _INFO.get(
            err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"
        )

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_code(self) -> int:
        return self.err_code

    def get_error_info(self, detailed: bool = True) -> str:
        return self.err_info if detailed else self.err_info.split(" - ")[0]


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_RETRY)


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_TIMEOUT)


class AmdSmiParameterException(AmdSmiException):
    def __init__(self, received: object, expected: type, msg: str | None = None) -> None:
        super().__init__(msg)
        self.err_code = None
        self.err_msg = msg or f"Invalid parameter:\nActual type: {type(received)}\n" + (
            f"Expected type: {expected}"
        )

    def __str__(self) -> str:
        return self.err_msg


# For the annotations inside FakeAmdSmi, whose attributes of these names hide the classes.
_Flags = AmdSmiInitFlags
_Sensor = AmdSmiTemperatureType
_Metric = AmdSmiTemperatureMetric

ERRORS = (AmdSmiLibraryException, AmdSmiRetryException, AmdSmiTimeoutException)


def not_supported() -> AmdSmiLibraryException:
    return AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)


@dataclass
class FakeAmdGpu:
    """One fake AMD GPU; tests change its values between collections.

    ``fail`` maps an amdsmi function name to the error that call raises;
    ``edge=None`` makes the edge sensor NotSupported (Instinct cards), so the
    hotspot is read. ``processes`` are ``(pid, VRAM bytes)``.
    """

    uuid: str  # what amdsmi_get_gpu_device_uuid answers
    market_name: str
    asic_serial: str = "0x0000000000000000"  # ROCr's GPU-<16 hex digits> id
    hip_uuid: str | None = None  # amdsmi_get_gpu_enumeration_info's; None: no such call
    gfx_activity: int | str = 0  # percent
    vram_used_mib: int = 0
    vram_total_mib: int = 192 * 1024
    socket_power_w: int | str = 300
    energy_ticks: int = 0
    counter_resolution_uj: float = 15.625
    edge: int | None = 40
    hotspot: int = 55
    processes: list[tuple[int, int]] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)


class FakeAmdSmi(types.ModuleType):
    """Stands in for the ``amdsmi`` module; ``calls`` counts every call by name."""

    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric
    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiRetryException = AmdSmiRetryException
    AmdSmiTimeoutException = AmdSmiTimeoutException
    AmdSmiParameterException = AmdSmiParameterException

    def __init__(self, gpus: list[FakeAmdGpu], *, init_error: Exception | None = None) -> None:
        super().__init__("amdsmi")
        self.gpus = gpus
        self.init_error = init_error
        self.calls: Counter[str] = Counter()
        self.sessions = 0  # amdsmi_init minus amdsmi_shut_down

    def _enter(self, call: str, gpu: FakeAmdGpu | None = None) -> None:
        self.calls[call] += 1
        if call != "amdsmi_init" and self.sessions <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        if gpu is not None and call in gpu.fail:
            raise gpu.fail[call]

    def amdsmi_init(self, flag: object = _Flags.INIT_AMD_GPUS) -> None:
        self._enter("amdsmi_init")
        if not isinstance(flag, _Flags):
            raise AmdSmiParameterException(flag, _Flags)
        if self.init_error is not None:
            raise self.init_error
        self.sessions += 1

    def amdsmi_shut_down(self) -> None:
        self._enter("amdsmi_shut_down")
        self.sessions -= 1

    def amdsmi_get_processor_handles(self) -> list[FakeAmdGpu]:
        self._enter("amdsmi_get_processor_handles")
        return list(self.gpus)

    def amdsmi_get_gpu_device_uuid(self, handle: FakeAmdGpu) -> str:
        self._enter("amdsmi_get_gpu_device_uuid", handle)
        return handle.uuid

    def amdsmi_get_gpu_asic_info(self, handle: FakeAmdGpu) -> dict[str, Any]:
        self._enter("amdsmi_get_gpu_asic_info", handle)
        return {"market_name": handle.market_name, "vendor_id": "0x1002",
                "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
                "asic_serial": handle.asic_serial, "device_id": "0x74a1"}  # fmt: skip

    def amdsmi_get_gpu_enumeration_info(self, handle: FakeAmdGpu) -> dict[str, Any]:
        self._enter("amdsmi_get_gpu_enumeration_info", handle)
        if handle.hip_uuid is None:
            raise not_supported()
        index = self.gpus.index(handle)
        return {"drm_render": 128 + index, "drm_card": index, "hsa_id": index + 1,
                "hip_id": index, "hip_uuid": handle.hip_uuid}  # fmt: skip

    def amdsmi_get_gpu_activity(self, handle: FakeAmdGpu) -> dict[str, Any]:
        self._enter("amdsmi_get_gpu_activity", handle)
        return {"gfx_activity": handle.gfx_activity, "umc_activity": NA, "mm_activity": NA}

    def amdsmi_get_gpu_vram_usage(self, handle: FakeAmdGpu) -> dict[str, Any]:
        self._enter("amdsmi_get_gpu_vram_usage", handle)
        return {"vram_total": handle.vram_total_mib, "vram_used": handle.vram_used_mib}

    def amdsmi_get_power_info(self, handle: FakeAmdGpu) -> dict[str, Any]:
        self._enter("amdsmi_get_power_info", handle)
        return {"socket_power": handle.socket_power_w, "current_socket_power": NA,
                "average_socket_power": NA, "gfx_voltage": NA, "soc_voltage": NA,
                "mem_voltage": NA, "power_limit": 750}  # fmt: skip

    def amdsmi_get_energy_count(self, handle: FakeAmdGpu) -> dict[str, Any]:
        self._enter("amdsmi_get_energy_count", handle)
        return {"energy_accumulator": handle.energy_ticks,
                "counter_resolution": handle.counter_resolution_uj,
                "timestamp": 1_700_000_000_000_000}  # fmt: skip

    def amdsmi_get_temp_metric(
        self, handle: FakeAmdGpu, sensor_type: _Sensor, metric: _Metric
    ) -> int:
        self._enter("amdsmi_get_temp_metric", handle)
        if metric != _Metric.CURRENT:
            raise AmdSmiLibraryException(AMDSMI_STATUS_INVAL)
        if sensor_type == _Sensor.EDGE:
            if handle.edge is None:
                raise not_supported()
            return handle.edge
        if sensor_type == _Sensor.HOTSPOT:
            return handle.hotspot
        raise not_supported()

    def amdsmi_get_gpu_process_list(self, handle: FakeAmdGpu) -> list[dict[str, Any]]:
        self._enter("amdsmi_get_gpu_process_list", handle)
        return [
            {"name": "python3", "pid": pid, "mem": vram,
             "engine_usage": {"gfx": 0, "enc": 0},
             "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": vram},
             "cu_occupancy": NA}
            for pid, vram in handle.processes
        ]  # fmt: skip


# The amdsmi names the fake provides, checked against the real package's source.
CALLS = sorted(name for name in vars(FakeAmdSmi) if name.startswith("amdsmi_"))
ENUMS = (AmdSmiInitFlags, AmdSmiTemperatureType, AmdSmiTemperatureMetric)
STATUS = {name: value for name, value in globals().items() if name.startswith("AMDSMI_STATUS_")}
