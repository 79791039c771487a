"""The NVML boundary: the only module that imports ``pynvml`` (nvidia-ml-py), lazily.

``nvml()`` returns one process-wide :class:`Nvml`. Its first ``available()``
imports pynvml and calls ``nvmlInit()`` once; without the package, the driver
or a GPU it logs one INFO line and stays off for good. Device handles are
looked up once. A call that fails at collection time (NotSupported, a GPU lost
from the bus) skips that value and is logged once at INFO per kind, never
raised. A forked child forgets its parent's NVML state and initialises again
(the life cycle is ``gpu_calls.GpuBackend``'s). Which GPUs the job may use
follows ``CUDA_VISIBLE_DEVICES`` (``cuda_visible``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Collection, Mapping
from typing import Any

from jobmeter._core import cuda_visible
from jobmeter._core.cuda_visible import MigDevice, Visible
from jobmeter._core.gpu import GpuDevice, GpuSample
from jobmeter._core.gpu_calls import SAMPLE_MAX_AGE_S
from jobmeter._core.nvml_calls import NvmlCalls, describe, text

__all__ = ["SAMPLE_MAX_AGE_S", "Nvml", "nvml"]

_log = logging.getLogger("jobmeter")


class Nvml(NvmlCalls):
    """Process-wide NVML state: started once, quiet when there is no GPU."""

    def __init__(self) -> None:
        super().__init__()
        self._migs: list[MigDevice] | None = None  # None: not listed yet
        self._visible: dict[tuple[str | None, str | None], Visible] = {}

    # -- start, stop -----------------------------------------------------------

    def _open(self) -> list[GpuDevice] | str:
        try:
            module = self._module = importlib.import_module("pynvml")
        except ImportError:
            return "the nvidia-ml-py package is not installed"
        try:
            module.nvmlInit()
        except Exception as exc:  # NVMLError (no library, no driver) or OSError
            return f"NVML did not start: {describe(exc)}"
        try:
            count = int(module.nvmlDeviceGetCount())
            devices = [d for d in (self._device(module, i) for i in range(count)) if d]
        except Exception as exc:
            self._quietly(module.nvmlShutdown)
            return f"NVML could not count GPUs: {describe(exc)}"
        if not devices:
            self._quietly(module.nvmlShutdown)
            return "NVML found no GPU" if count == 0 else "no GPU answered NVML"
        return devices

    def _close(self) -> None:
        self._module.nvmlShutdown()

    def _device(self, module: Any, index: int) -> GpuDevice | None:
        try:
            handle = module.nvmlDeviceGetHandleByIndex(index)
            uuid = text(module.nvmlDeviceGetUUID(handle))
            name = text(module.nvmlDeviceGetName(handle))
        except Exception as exc:
            _log.info("jobmeter: GPU %d did not answer NVML (%s); it is left out",
                      index, describe(exc))  # fmt: skip
            return None
        mig = False
        with contextlib.suppress(Exception):  # NotSupported on GPUs without MIG
            mig = module.nvmlDeviceGetMigMode(handle)[0] == module.NVML_DEVICE_MIG_ENABLE
        if mig:
            _log.info("jobmeter: GPU %d (%s) is in MIG mode; it is reported as one physical "
                      "GPU and its MIG instances are not listed", index, name)  # fmt: skip
        return GpuDevice(index, handle, uuid, name, mig)

    def _forget_devices(self) -> None:
        super()._forget_devices()
        self._migs, self._visible = None, {}

    # -- what the collectors read ----------------------------------------------

    def visible_devices(self, environ: Mapping[str, str] | None = None) -> list[GpuDevice]:
        """The GPUs a CUDA program started with ``environ`` may use (default: this process).

        Read at every call, so that a job which sets ``CUDA_VISIBLE_DEVICES``
        before it starts CUDA is followed.
        """
        devices = self.devices()
        env = os.environ if environ is None else environ
        key = (env.get(cuda_visible.VISIBLE_DEVICES), env.get(cuda_visible.DEVICE_ORDER))
        visible = self._visible.get(key)
        if visible is None:
            visible = cuda_visible.resolve(key[0], devices, self.mig_devices)
            if len(self._visible) >= 16:  # a job that keeps changing it: stay small
                self._visible.clear()
            self._visible[key] = visible
            if cuda_visible.order_is_ambiguous(visible, key[1], devices):
                self.note_once(
                    ("cuda-device-order",),
                    "jobmeter: CUDA_VISIBLE_DEVICES=%s names GPUs by index and CUDA_DEVICE_ORDER "
                    "is not PCI_BUS_ID on a machine with different GPU models: jobmeter reads the "
                    "indices in NVML (nvidia-smi) order, CUDA may number the GPUs otherwise; set "
                    "CUDA_DEVICE_ORDER=PCI_BUS_ID or name the GPUs by UUID",
                    key[0], level=logging.WARNING,
                )  # fmt: skip
        return [d for d in devices if d.uuid in visible.uuids]

    def mig_devices(self) -> list[MigDevice]:
        """The MIG devices of the GPUs in MIG mode, listed on first use."""
        if self._migs is None and self.available():
            self._migs = [mig for d in self._devices if d.mig for mig in self._migs_of(d)]
        return list(self._migs or [])

    def _migs_of(self, device: GpuDevice) -> list[MigDevice]:
        m, found = self._module, []
        for slot in range(self._read(device, "MIG devices", m.nvmlDeviceGetMaxMigDeviceCount) or 0):
            try:  # NotFound: no MIG device in this slot
                handle = m.nvmlDeviceGetMigDeviceHandleByIndex(device.handle, slot)
                uuid = text(m.nvmlDeviceGetUUID(handle))
            except Exception:
                continue
            instances: tuple[int | None, int | None] = (None, None)
            with contextlib.suppress(Exception):  # a pynvml without them
                instances = (int(m.nvmlDeviceGetGpuInstanceId(handle)),
                             int(m.nvmlDeviceGetComputeInstanceId(handle)))  # fmt: skip
            found.append(MigDevice(uuid, device.uuid, *instances))
        return found

    def _sample(self, device: GpuDevice) -> GpuSample:
        m = self._module
        utilization = self._read(device, "utilization", m.nvmlDeviceGetUtilizationRates)
        memory = self._read(device, "memory", m.nvmlDeviceGetMemoryInfo)
        power, energy = self.power_watts(device), self.energy_joules(device)
        temperature = self._read(
            device, "temperature", m.nvmlDeviceGetTemperature, m.NVML_TEMPERATURE_GPU
        )
        return GpuSample(
            device,
            utilization=None if utilization is None else utilization.gpu / 100,
            memory_used=None if memory is None else int(memory.used),
            memory_total=None if memory is None else int(memory.total),
            power=power,
            energy=energy,
            temperature=temperature,
        )

    def energy_joules(self, device: GpuDevice) -> float | None:
        """A fresh read of ``device``'s total-energy counter, in joules; None without one.

        NVML counts millijoules since the driver was loaded (Volta and later).
        """
        if not self.available():
            return None
        energy = self._read(device, "energy", self._module.nvmlDeviceGetTotalEnergyConsumption)
        return None if energy is None else energy / 1000

    def power_watts(self, device: GpuDevice) -> float | None:
        """A fresh read of the power ``device`` draws, in watts (NVML answers milliwatts)."""
        if not self.available():
            return None
        power = self._read(device, "power", self._module.nvmlDeviceGetPowerUsage)
        return None if power is None else power / 1000

    def device_process_memory(self, device: GpuDevice, pids: Collection[int]) -> int | None:
        """Bytes of ``device`` memory used by ``pids``; None if NVML could not tell."""
        if not self.available():
            return None
        m = self._module
        wanted = pids if isinstance(pids, set | frozenset) else set(pids)
        used: dict[int, int] = {}
        answered = False
        for what, call in (
            ("compute processes", m.nvmlDeviceGetComputeRunningProcesses),
            ("graphics processes", m.nvmlDeviceGetGraphicsRunningProcesses),
        ):
            processes = self._read(device, what, call)
            if processes is None:
                continue
            answered = True
            for process in processes:
                if process.pid in wanted:
                    # A process with compute and graphics contexts is listed
                    # twice with its one figure: count it once.
                    bytes_used = int(process.usedGpuMemory or 0)
                    used[process.pid] = max(used.get(process.pid, 0), bytes_used)
        return sum(used.values()) if answered else None


_nvml = Nvml()


def nvml() -> Nvml:
    """The process-wide NVML state."""
    return _nvml


def _reset_for_tests() -> None:
    """Forget NVML state (shutting it down if it was up), so the next use starts again."""
    _nvml._reset_for_tests()
