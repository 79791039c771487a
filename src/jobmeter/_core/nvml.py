"""The NVML boundary: the only module that imports ``pynvml`` (nvidia-ml-py), lazily.

``nvml()`` returns one process-wide :class:`Nvml`. Its first ``available()``
imports pynvml and calls ``nvmlInit()`` once; without the package, the driver
or a GPU it logs one INFO line and stays off for good. Device handles are
looked up once. A call that fails at collection time (NotSupported, a GPU lost
from the bus) skips that value and is logged once at INFO per kind, never
raised. A forked child forgets its parent's NVML state and initialises again.
Which GPUs the job may use follows ``CUDA_VISIBLE_DEVICES`` (``cuda_visible``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any, Final

from jobmeter._core import cuda_visible, fork, waits
from jobmeter._core.cuda_visible import MigDevice, Visible
from jobmeter._core.gpu import GpuDevice, GpuSample
from jobmeter._core.nvml_calls import NvmlCalls, describe, text

_log = logging.getLogger("jobmeter")

# The callbacks of one collection run within a few milliseconds of each other;
# a sample younger than this is shared instead of asking the driver again.
SAMPLE_MAX_AGE_S: Final = 0.2


class Nvml(NvmlCalls):
    """Process-wide NVML state: started once, quiet when there is no GPU."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._devices: list[GpuDevice] = []
        self._samples: list[GpuSample] = []
        self._sampled_at = float("-inf")
        self._migs: list[MigDevice] | None = None  # None: not listed yet
        self._visible: dict[tuple[str | None, str | None], Visible] = {}
        self._hooked = False
        self._atexit_registered = False

    # -- start, stop, fork ---------------------------------------------------

    def available(self) -> bool:
        """Whether NVML is up with at least one GPU; starts it on the first call."""
        on = self._on
        if on is not None:
            return on
        with self._lock:
            if self._on is None:
                self._on = self._start()
            return self._on

    def _start(self) -> bool:
        if not self._hooked:  # on first use, never at import
            fork.on_fork_in_child(self._after_fork_in_child)
            self._hooked = True
        try:
            module = self._module = importlib.import_module("pynvml")
        except ImportError:
            return self._off("the nvidia-ml-py package is not installed")
        try:
            module.nvmlInit()
        except Exception as exc:  # NVMLError (no library, no driver) or OSError
            return self._off(f"NVML did not start: {describe(exc)}")
        try:
            count = int(module.nvmlDeviceGetCount())
            devices = [d for d in (self._device(module, i) for i in range(count)) if d]
        except Exception as exc:
            self._quietly(module.nvmlShutdown)
            return self._off(f"NVML could not count GPUs: {describe(exc)}")
        if not devices:
            self._quietly(module.nvmlShutdown)
            return self._off("NVML found no GPU" if count == 0 else "no GPU answered NVML")
        self._devices = devices
        if not self._atexit_registered:  # survives fork: the child reuses it
            atexit.register(self._shutdown)
            self._atexit_registered = True
        _log.debug("jobmeter: NVML started with %d GPU(s)", len(devices))
        return True

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

    def _off(self, reason: str) -> bool:
        _log.info("jobmeter: no NVIDIA GPU (%s); GPU metrics are off", reason)
        return False

    def _shutdown(self) -> None:
        """At exit: shut NVML down; later collections report no GPU."""
        if not self._lock.acquire(timeout=1.0):
            return
        try:
            if self._on:
                self._on = False
                self._forget_devices()
                self._quietly(self._module.nvmlShutdown)
        finally:
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The parent's handles belong to its NVML session; the child starts its
        # own. A parent that found no GPU leaves the child without one as well.
        self._lock = threading.Lock()
        self._notes_lock = threading.Lock()
        if self._on:
            self._on = None
        self._forget_devices()

    def _reset_for_tests(self) -> None:
        with self._lock:
            if self._on:
                self._quietly(self._module.nvmlShutdown)
            self._module, self._on = None, None
            self._unsupported, self._noted = set(), set()
            self._forget_devices()

    def _forget_devices(self) -> None:
        self._devices, self._samples, self._sampled_at = [], [], float("-inf")
        self._migs, self._visible = None, {}

    # -- what the collectors read ----------------------------------------------

    def devices(self) -> list[GpuDevice]:
        """The GPUs, in NVML index order; empty without a GPU."""
        return list(self._devices) if self.available() else []

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

    def inventory(self) -> tuple[str | None, int]:
        """(model name of the first GPU, number of GPUs); (None, 0) without a GPU."""
        devices = self.devices()
        return (devices[0].name if devices else None), len(devices)

    def samples(self) -> list[GpuSample]:
        """One sample per GPU, shared by callers within ``SAMPLE_MAX_AGE_S``."""
        if not self.available():
            return []
        # A signal handler's final export may run while this thread holds the
        # lock: after a short wait, answer with the last samples.
        with waits.held_or_not(self._lock) as locked:
            if locked and time.monotonic() - self._sampled_at >= SAMPLE_MAX_AGE_S:
                self._samples = [self._sample(d) for d in self._devices]
                self._sampled_at = time.monotonic()
            return self._samples

    def _sample(self, device: GpuDevice) -> GpuSample:
        m = self._module
        utilization = self._read(device, "utilization", m.nvmlDeviceGetUtilizationRates)
        memory = self._read(device, "memory", m.nvmlDeviceGetMemoryInfo)
        power = self._read(device, "power", m.nvmlDeviceGetPowerUsage)
        energy = self._read(device, "energy", m.nvmlDeviceGetTotalEnergyConsumption)
        temperature = self._read(
            device, "temperature", m.nvmlDeviceGetTemperature, m.NVML_TEMPERATURE_GPU
        )
        return GpuSample(
            device,
            utilization=None if utilization is None else utilization.gpu / 100,
            memory_used=None if memory is None else int(memory.used),
            memory_total=None if memory is None else int(memory.total),
            power=None if power is None else power / 1000,  # mW
            energy=None if energy is None else energy / 1000,  # mJ
            temperature=temperature,
        )

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

    def process_memory(
        self, pids: Collection[int], *, environ: Mapping[str, str] | None = None
    ) -> int | None:
        """Bytes of memory used by ``pids`` on the GPUs they may use; None without one.

        ``environ`` is the environment of the processes (default: this one's),
        whose ``CUDA_VISIBLE_DEVICES`` says which GPUs count.
        """
        figures = [self.device_process_memory(d, pids) for d in self.visible_devices(environ)]
        known = [f for f in figures if f is not None]
        return sum(known) if known else None


_nvml = Nvml()


def nvml() -> Nvml:
    """The process-wide NVML state."""
    return _nvml


def _reset_for_tests() -> None:
    """Forget NVML state (shutting it down if it was up), so the next use starts again."""
    _nvml._reset_for_tests()
