"""Samples of the whole machine for HostCollector, one psutil call per group.

CPU utilization is the change of each mode's time over the change of the total
between two samples, not an average since boot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import psutil

# psutil's Linux CPU time fields -> OTel cpu.mode. guest and guest_nice are
# already counted in user and nice by the kernel, so they are left out.
CPU_MODES = {
    "user": "user", "nice": "nice", "system": "system", "idle": "idle", "iowait": "iowait",
    "irq": "interrupt", "softirq": "interrupt", "steal": "steal",
}  # fmt: skip
_SKIPPED_DEVICES = ("loop", "ram")


def cpu_modes(times: Any) -> dict[str, float]:
    """Psutil cpu_times -> seconds by OTel cpu.mode."""
    modes: dict[str, float] = {}
    for field, mode in CPU_MODES.items():
        value = getattr(times, field, None)
        if value is not None:
            modes[mode] = modes.get(mode, 0.0) + value
    return modes


class CpuSample(NamedTuple):
    """Seconds by mode (per logical CPU, or one entry for the machine) and utilization."""

    times: list[dict[str, float]]
    utilization: list[dict[str, float]]


class CpuProbe:
    """System CPU time and utilization over the interval between two samples."""

    def __init__(self, per_cpu: bool) -> None:
        self._per_cpu = per_cpu
        self._previous: list[dict[str, float]] | None = None

    def sample(self) -> CpuSample:
        raw = psutil.cpu_times(percpu=True) if self._per_cpu else [psutil.cpu_times()]
        times = [cpu_modes(t) for t in raw]
        utilization: list[dict[str, float]] = []
        previous, self._previous = self._previous, times
        if previous is not None and len(previous) == len(times):
            for now, before in zip(times, previous, strict=True):
                deltas = {mode: max(now[mode] - before.get(mode, 0.0), 0.0) for mode in now}
                total = sum(deltas.values())
                utilization.append({m: d / total for m, d in deltas.items()} if total else {})
        return CpuSample(times, utilization)


def memory() -> Any:
    """psutil.virtual_memory()."""
    return psutil.virtual_memory()


def swap() -> Any:
    """psutil.swap_memory()."""
    return psutil.swap_memory()


def disks() -> dict[str, Any]:
    """I/O counters of block devices, without loop and RAM disks."""
    counters = psutil.disk_io_counters(perdisk=True) or {}
    return {name: c for name, c in counters.items() if not name.startswith(_SKIPPED_DEVICES)}


def networks() -> dict[str, Any]:
    """I/O counters per network interface."""
    return dict(psutil.net_io_counters(pernic=True) or {})


class FilesystemUsage(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    mode: str
    used: int
    free: int
    reserved: int


def filesystems() -> Iterator[FilesystemUsage]:
    """Usage of mounted real filesystems (psutil's physical partitions), once per device."""
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.device in seen:
            continue
        seen.add(part.device)
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        mode = "ro" if "ro" in part.opts.split(",") else "rw"
        reserved = max(usage.total - usage.used - usage.free, 0)
        yield FilesystemUsage(
            part.device, part.mountpoint, part.fstype, mode, usage.used, usage.free, reserved
        )


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages."""
    return os.getloadavg()
