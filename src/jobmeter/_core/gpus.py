"""Every GPU of the machine, whichever library reads it: NVML for NVIDIA, AMD SMI for AMD.

The one place the rest of jobmeter asks about GPUs (the GPU collector, the
machine facts, measure(), ``jobmeter run``). Each function asks both backends
(``nvml`` and ``amdsmi``), each started on first use and quiet without its
GPUs, and puts their answers together: NVIDIA GPUs first, in NVML order, then
AMD GPUs in AMD SMI order. Each backend reads its own visibility variable
(``CUDA_VISIBLE_DEVICES``; ``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES``).
Nothing here raises: a backend that fails logs once and answers nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from jobmeter._core.amdsmi import amdsmi
from jobmeter._core.gpu import AMD, GpuDevice, GpuSample
from jobmeter._core.gpu_calls import GpuBackend
from jobmeter._core.nvml import nvml


def backends() -> tuple[GpuBackend, ...]:
    """The GPU libraries, in the order their GPUs are listed."""
    return nvml(), amdsmi()


def _backend(device: GpuDevice) -> GpuBackend:
    return amdsmi() if device.vendor == AMD else nvml()


def available() -> bool:
    """Whether any GPU library is up with at least one GPU; starts each on first use."""
    started = [backend.available() for backend in backends()]  # each one: no short cut
    return any(started)


def devices() -> list[GpuDevice]:
    """Every GPU of the machine; empty without one."""
    return [device for backend in backends() for device in backend.devices()]


def visible_devices(environ: Mapping[str, str] | None = None) -> list[GpuDevice]:
    """The GPUs a program started with ``environ`` may use (default: this process).

    Each vendor's GPUs follow that vendor's variables, read at every call.
    """
    return [device for backend in backends() for device in backend.visible_devices(environ)]


def energy_joules(device: GpuDevice) -> float | None:
    """A fresh read of ``device``'s total-energy counter, in joules; None without one.

    Never cached: two reads a block apart give the energy of the block. The
    counter runs from when the driver was loaded; only differences mean much.
    """
    return _backend(device).energy_joules(device)


def power_watts(device: GpuDevice) -> float | None:
    """A fresh read of the power ``device`` draws now, in watts; None where it cannot tell."""
    return _backend(device).power_watts(device)


def device_process_memory(device: GpuDevice, pids: Collection[int]) -> int | None:
    """Bytes of ``device`` memory used by ``pids``; None if its library could not tell."""
    return _backend(device).device_process_memory(device, pids)


def process_memory(
    pids: Collection[int], *, environ: Mapping[str, str] | None = None
) -> int | None:
    """Bytes of GPU memory used by ``pids`` on every GPU they may use; None without one.

    ``environ`` is the environment of the processes (default: this one's).
    """
    figures = [backend.process_memory(pids, environ=environ) for backend in backends()]
    known = [figure for figure in figures if figure is not None]
    return sum(known) if known else None


def inventory() -> tuple[str | None, int]:
    """(model name of the first GPU, number of GPUs of every vendor); (None, 0) without one."""
    model: str | None = None
    count = 0
    for backend in backends():
        name, found = backend.inventory()
        model = model or name
        count += found
    return model, count


def samples() -> list[GpuSample]:
    """One sample per GPU of the machine, shared by callers of one collection."""
    return [sample for backend in backends() for sample in backend.samples()]


def note_once(
    key: tuple[str, ...], message: str, *args: object, level: int, exc_info: bool
) -> None:
    """Log ``message`` the first time ``key`` is seen in this process (NVML's notes)."""
    nvml().note_once(key, message, *args, level=level, exc_info=exc_info)


def _reset_for_tests() -> None:
    """Forget every backend's state, so that the next use starts each again."""
    for backend in backends():
        backend._reset_for_tests()
