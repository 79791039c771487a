"""The AMD SMI boundary: the only module that imports ``amdsmi`` (ROCm's AMD SMI), lazily.

``amdsmi()`` returns one process-wide :class:`AmdSmi`, with the life cycle of
``gpu_calls.GpuBackend``: its first ``available()`` imports amdsmi and calls
``amdsmi_init()`` once; without the package, ``libamd_smi.so``, the amdgpu
driver or a GPU it logs one INFO line and stays off for good. A call that
fails at collection is skipped and logged once per kind, never raised; a
forked child starts its own session. Which GPUs the job may use follows
``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES`` (``rocr_visible``).

Units as amdsmi gives them: activity in percent, VRAM in MiB, power in watts,
temperature in degrees Celsius, the energy counter in ticks of
``counter_resolution`` microjoules, process memory in bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Final

from jobmeter._core import rocr_visible
from jobmeter._core.gpu import AMD, GpuDevice, GpuSample
from jobmeter._core.gpu_calls import GpuBackend, describe

_log = logging.getLogger("jobmeter")

# amdsmi_status_t codes (amdsmi.h) that mean "this GPU will never answer this call".
_NOT_SUPPORTED: Final = frozenset({2, 3})  # AMDSMI_STATUS_NOT_SUPPORTED, _NOT_YET_IMPLEMENTED
_MIB: Final = 2**20
_LIBRARY: Final = "libamd_smi.so"
# amdsmi_get_power_info's socket power, newest name first (7.x, MI300 and later, older).
_POWER_FIELDS: Final = ("socket_power", "current_socket_power", "average_socket_power")


class AmdSmi(GpuBackend):
    """Process-wide AMD SMI state: started once, quiet when there is no AMD GPU."""

    LIBRARY: ClassVar[str] = "AMD SMI"
    OFF_MESSAGE: ClassVar[str] = "jobmeter: no AMD GPU (%s); AMD GPU metrics are off"

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, frozenset[str]] = {}  # uuid -> what ROCR_VISIBLE_DEVICES may say
        self._visible: dict[tuple[str | None, str | None], frozenset[str]] = {}
        self._no_edge: set[str] = set()  # GPUs without an edge sensor (MI200, MI300)

    # -- start, stop -----------------------------------------------------------

    def _open(self) -> list[GpuDevice] | str:
        missing = _missing_library()
        if missing is not None:
            return missing
        try:
            module = importlib.import_module("amdsmi")
        except ImportError:
            return "the amdsmi package is not installed"
        except Exception as exc:  # a libamd_smi.so that does not fit the package
            return f"amdsmi could not be imported: {self._describe(exc)}"
        self._module = module
        try:
            module.amdsmi_init(module.AmdSmiInitFlags.INIT_AMD_GPUS)
        except Exception as exc:  # AmdSmiLibraryException: no driver, no permission
            return f"AMD SMI did not start: {self._describe(exc)}"
        try:
            handles = list(module.amdsmi_get_processor_handles())
            devices = [d for i, h in enumerate(handles) if (d := self._device(module, i, h))]
        except Exception as exc:
            self._quietly(module.amdsmi_shut_down)
            return f"AMD SMI could not list GPUs: {self._describe(exc)}"
        if not devices:
            self._quietly(module.amdsmi_shut_down)
            return "AMD SMI found no GPU" if not handles else "no GPU answered AMD SMI"
        return devices

    def _close(self) -> None:
        self._module.amdsmi_shut_down()

    def _device(self, module: Any, index: int, handle: Any) -> GpuDevice | None:
        try:
            uuid = str(module.amdsmi_get_gpu_device_uuid(handle))
            asic = module.amdsmi_get_gpu_asic_info(handle)
        except Exception as exc:
            _log.info("jobmeter: AMD GPU %d did not answer AMD SMI (%s); it is left out",
                      index, self._describe(exc))  # fmt: skip
            return None
        market_name = str(asic.get("market_name") or "")
        name = market_name if market_name and market_name != "N/A" else "AMD GPU"
        self._names[uuid] = _names(module, handle, uuid, asic)
        return GpuDevice(index, handle, uuid, name, vendor=AMD)

    def _forget_devices(self) -> None:
        super()._forget_devices()
        self._names, self._visible, self._no_edge = {}, {}, set()

    def _describe(self, exc: BaseException) -> str:
        # AmdSmiLibraryException's str() spans lines; its err_info is one.
        info = getattr(exc, "err_info", None)
        return f"{type(exc).__name__}: {info}" if isinstance(info, str) else describe(exc)

    def _is_unsupported(self, exc: Exception) -> bool:
        code = getattr(exc, "get_error_code", None)  # AmdSmiLibraryException
        if callable(code):
            with contextlib.suppress(Exception):
                return int(code()) in _NOT_SUPPORTED
        return isinstance(exc, AttributeError)  # an amdsmi too old to have the call

    # -- what the collectors read ----------------------------------------------

    def visible_devices(self, environ: Mapping[str, str] | None = None) -> list[GpuDevice]:
        """The GPUs a ROCm program started with ``environ`` may use (default: this process).

        Read at every call, so that a job which sets ``ROCR_VISIBLE_DEVICES``
        or ``HIP_VISIBLE_DEVICES`` before it starts ROCm is followed.
        """
        devices = self.devices()
        env = os.environ if environ is None else environ
        key = (
            env.get(rocr_visible.ROCR_VISIBLE_DEVICES),
            env.get(rocr_visible.HIP_VISIBLE_DEVICES),
        )
        visible = self._visible.get(key)
        if visible is None:
            visible = rocr_visible.resolve(*key, devices, self._names_of)
            if len(self._visible) >= 16:  # a job that keeps changing them: stay small
                self._visible.clear()
            self._visible[key] = visible
        return [d for d in devices if d.uuid in visible]

    def _names_of(self, device: GpuDevice) -> frozenset[str]:
        return self._names.get(device.uuid, frozenset())

    def _sample(self, device: GpuDevice) -> GpuSample:
        m = self._module
        activity = self._read(device, "utilization", m.amdsmi_get_gpu_activity) or {}
        vram = self._read(device, "memory", m.amdsmi_get_gpu_vram_usage) or {}
        power, energy = self.power_watts(device), self.energy_joules(device)
        gfx, used, total = (
            _number(activity.get("gfx_activity")),
            _number(vram.get("vram_used")),
            _number(vram.get("vram_total")),
        )
        return GpuSample(
            device,
            utilization=None if gfx is None else gfx / 100,
            memory_used=None if used is None or total is None else int(used) * _MIB,
            memory_total=None if used is None or total is None else int(total) * _MIB,
            power=power,
            energy=energy,
            temperature=_number(
                self._read(device, "temperature", lambda _: self._temperature(device))
            ),
        )

    def _temperature(self, device: GpuDevice) -> Any:
        m = self._module
        current = m.AmdSmiTemperatureMetric.CURRENT
        if device.uuid not in self._no_edge:
            try:
                return m.amdsmi_get_temp_metric(
                    device.handle, m.AmdSmiTemperatureType.EDGE, current
                )
            except Exception as exc:
                if not self._is_unsupported(exc):
                    raise
                self._no_edge.add(device.uuid)
        # Instinct GPUs have no edge sensor: their hotspot (junction) stands in.
        return m.amdsmi_get_temp_metric(device.handle, m.AmdSmiTemperatureType.HOTSPOT, current)

    def energy_joules(self, device: GpuDevice) -> float | None:
        """A fresh read of ``device``'s energy accumulator, in joules; None without one.

        ``amdsmi_get_energy_count`` answers ticks and the microjoules one tick is.
        """
        if not self.available():
            return None
        count = self._read(device, "energy", self._module.amdsmi_get_energy_count)
        if not isinstance(count, Mapping):
            return None
        # amdsmi before 6.1 named the accumulator "power".
        ticks = _number(count.get("energy_accumulator", count.get("power")))
        resolution = _number(count.get("counter_resolution"))
        return None if ticks is None or resolution is None else ticks * resolution / 1e6

    def power_watts(self, device: GpuDevice) -> float | None:
        """A fresh read of the power ``device`` draws, in watts; None where it cannot tell."""
        if not self.available():
            return None
        info = self._read(device, "power", self._module.amdsmi_get_power_info)
        if not isinstance(info, Mapping):
            return None
        return next((w for f in _POWER_FIELDS if (w := _number(info.get(f))) is not None), None)

    def device_process_memory(self, device: GpuDevice, pids: Collection[int]) -> int | None:
        """Bytes of ``device`` VRAM used by ``pids``; None if AMD SMI could not tell."""
        if not self.available():
            return None
        processes = self._read(device, "processes", self._module.amdsmi_get_gpu_process_list)
        if processes is None:
            return None
        wanted = pids if isinstance(pids, set | frozenset) else set(pids)
        used = 0
        for entry in processes:
            info = entry if isinstance(entry, Mapping) else self._process_info(device, entry)
            if info is not None and info.get("pid") in wanted:
                memory = info.get("memory_usage") or {}
                used += int(_number(memory.get("vram_mem", info.get("mem"))) or 0)
        return used

    def _process_info(self, device: GpuDevice, process: Any) -> Mapping[str, Any] | None:
        # amdsmi before 6.1 listed process handles, described one by one.
        call = self._module.amdsmi_get_gpu_process_info
        info = self._read(device, "processes", lambda handle: call(handle, process))
        return info if isinstance(info, Mapping) else None


def _missing_library() -> str | None:
    """Why amdsmi cannot load, found without importing it; None when it may.

    Without ROCm's libamd_smi.so, importing amdsmi prints to the job's standard
    output and then fails: look for the library first, where amdsmi_wrapper
    does (ROCM_HOME or ROCM_PATH, the linker's path, next to the package,
    /opt/rocm).
    """
    if "amdsmi" in sys.modules:  # imported already (or blocked): the import says
        return None
    try:
        spec = importlib.util.find_spec("amdsmi")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        return "the amdsmi package is not installed"
    rocm = os.environ.get("ROCM_HOME") or os.environ.get("ROCM_PATH")
    default = os.path.join(os.environ.get("ROCM_PATH", "/opt/rocm"), "lib", _LIBRARY)
    candidates = [os.path.join(rocm, "lib", _LIBRARY)] if rocm else []
    candidates += [_LIBRARY, os.path.join(os.path.dirname(spec.origin), _LIBRARY), default]
    for candidate in candidates:
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return None
    return f"ROCm's {_LIBRARY} was not found: install amd-smi-lib or set ROCM_PATH"


def _number(value: Any) -> float | None:
    """amdsmi's figure, or None where it says "N/A" (or gives anything but a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _names(module: Any, handle: Any, uuid: str, asic: Mapping[str, Any]) -> frozenset[str]:
    """The lower-case UUIDs ``ROCR_VISIBLE_DEVICES`` may name this GPU by."""
    names = {uuid.lower(), f"gpu-{uuid.lower()}"}
    serial = str(asic.get("asic_serial") or "")
    if serial.lower().startswith("0x"):  # ROCr's UUID is GPU- and this unique id in hex
        names.add(f"gpu-{serial[2:].lower()}")
    with contextlib.suppress(Exception):  # newer amdsmi: the UUID HIP itself reports
        hip = str(module.amdsmi_get_gpu_enumeration_info(handle)["hip_uuid"]).lower()
        if hip and hip != "n/a":
            names.update({hip, hip if hip.startswith("gpu-") else f"gpu-{hip}"})
    return frozenset(names)


_amdsmi = AmdSmi()


def amdsmi() -> AmdSmi:
    """The process-wide AMD SMI state."""
    return _amdsmi


def _reset_for_tests() -> None:
    """Forget AMD SMI state (shutting it down if it was up), so the next use starts again."""
    _amdsmi._reset_for_tests()
