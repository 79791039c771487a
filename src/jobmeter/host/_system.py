"""Samples of the whole machine for HostCollector, one read per group.

On Linux each group is one /proc file (``_procfs``); elsewhere, or where a
file is not in the expected shape, psutil. CPU utilization is the change of
each mode's time over the change of the total between two samples, not an
average since boot. The list of mounted file systems is re-read only when the
kernel says it changed (``MountTable``); their usage is read every time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import psutil

from jobmeter.host import _procfs

_log = logging.getLogger("jobmeter")
T = TypeVar("T")

# psutil's Linux CPU time fields -> OTel cpu.mode. guest and guest_nice are
# already counted in user and nice by the kernel, so they are left out.
CPU_MODES = {
    "user": "user", "nice": "nice", "system": "system", "idle": "idle", "iowait": "iowait",
    "irq": "interrupt", "softirq": "interrupt", "steal": "steal",
}  # fmt: skip
_SKIPPED_DEVICES = ("loop", "ram")
_fell_back: set[str] = set()


def _fast(group: str, fast: Callable[[], T], slow: Callable[[], T]) -> T:
    """``fast()`` (the /proc read), or psutil's ``slow()`` from its first ValueError on."""
    if _procfs.AVAILABLE and group not in _fell_back:
        try:
            return fast()
        except (ValueError, IndexError):
            _fell_back.add(group)
            _log.info("jobmeter: /proc is not as expected for %s; psutil reads it", group,
                      exc_info=True)  # fmt: skip
    return slow()


def cpu_modes(times: Any) -> dict[str, float]:
    """Psutil cpu_times -> seconds by OTel cpu.mode."""
    modes: dict[str, float] = {}
    for field, mode in CPU_MODES.items():
        value = getattr(times, field, None)
        if value is not None:
            modes[mode] = modes.get(mode, 0.0) + value
    return modes


def _psutil_cpu_times(per_cpu: bool) -> list[dict[str, float]]:
    raw = psutil.cpu_times(percpu=True) if per_cpu else [psutil.cpu_times()]
    return [cpu_modes(t) for t in raw]


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
        per_cpu = self._per_cpu
        times = _fast("cpu", lambda: _procfs.cpu_times(per_cpu),
                      lambda: _psutil_cpu_times(per_cpu))  # fmt: skip
        utilization: list[dict[str, float]] = []
        previous, self._previous = self._previous, times
        if previous is not None and len(previous) == len(times):
            for now, before in zip(times, previous, strict=True):
                deltas = {mode: max(now[mode] - before.get(mode, 0.0), 0.0) for mode in now}
                total = sum(deltas.values())
                utilization.append({m: d / total for m, d in deltas.items()} if total else {})
        return CpuSample(times, utilization)


def _psutil_memory() -> tuple[_procfs.Memory, _procfs.Swap]:
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    return (
        _procfs.Memory(mem.total, mem.used, mem.free, getattr(mem, "buffers", 0),
                       getattr(mem, "cached", 0)),
        _procfs.Swap(swap.total, swap.used, swap.free),
    )  # fmt: skip


def memory() -> tuple[_procfs.Memory, _procfs.Swap]:
    """Memory and swap: psutil's virtual_memory() and swap_memory() figures."""
    return _fast("memory", _procfs.meminfo, _psutil_memory)


def _psutil_disks() -> dict[str, tuple[int, int, int, int]]:
    counters = psutil.disk_io_counters(perdisk=True) or {}
    return {name: (c.read_bytes, c.write_bytes, c.read_count, c.write_count)
            for name, c in counters.items() if not name.startswith(_SKIPPED_DEVICES)}  # fmt: skip


def disks() -> dict[str, tuple[int, int, int, int]]:
    """(read bytes, written bytes, reads, writes) of block devices, without loop and RAM disks."""
    return _fast("disk", _procfs.diskstats, _psutil_disks)


def _psutil_networks() -> dict[str, tuple[int, int, int, int, int, int]]:
    counters = psutil.net_io_counters(pernic=True) or {}
    return {name: (c.bytes_recv, c.bytes_sent, c.packets_recv, c.packets_sent, c.errin, c.errout)
            for name, c in counters.items()}  # fmt: skip


def networks() -> dict[str, tuple[int, int, int, int, int, int]]:
    """(bytes, packets, errors) received then sent, per network interface."""
    return _fast("network", _procfs.net_dev, _psutil_networks)


class FilesystemUsage(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    mode: str
    used: int
    free: int
    reserved: int


class MountTable:
    """psutil's physical partitions, once per device, re-read when the mount table changes.

    On Linux the kernel flags /proc/self/mounts (POLLPRI) at every mount and
    unmount; elsewhere the partitions are read at every collection.
    """

    def __init__(self) -> None:
        self._partitions: list[Any] | None = None
        self._poll: Any = None
        self._pid = -1
        self._fd = -1

    def _changed(self) -> bool:
        if self._pid != os.getpid():  # a forked child watches with its own descriptor
            self._watch()
            return True
        return self._poll is None or bool(self._poll.poll(0))

    def _watch(self) -> None:
        self.close()
        self._pid = os.getpid()
        try:
            self._fd = os.open("/proc/self/mounts", os.O_RDONLY | os.O_CLOEXEC)
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
        except (OSError, AttributeError):  # no /proc, or no poll()
            self.close()

    def close(self) -> None:
        """Let go of the mount table's descriptor."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._poll = -1, None

    def partitions(self) -> list[Any]:
        if self._changed() or self._partitions is None:
            seen: set[str] = set()
            found = []
            for part in psutil.disk_partitions(all=False):
                if part.device not in seen:
                    seen.add(part.device)
                    found.append(part)
            self._partitions = found
        return self._partitions

    def usage(self) -> list[FilesystemUsage]:
        """Usage of each mounted real filesystem now (psutil.disk_usage's arithmetic)."""
        found = []
        for part in self.partitions():
            try:
                total, used, free = _disk_usage(part.mountpoint)
            except OSError:
                continue
            mode = "ro" if "ro" in part.opts.split(",") else "rw"
            found.append(FilesystemUsage(part.device, part.mountpoint, part.fstype, mode,
                                         used, free, max(total - used - free, 0)))  # fmt: skip
        return found


def _disk_usage(path: str) -> tuple[int, int, int]:
    """(total, used, free) bytes, as psutil.disk_usage (which has a macOS twist)."""
    if not _procfs.AVAILABLE:
        usage = psutil.disk_usage(path)
        return usage.total, usage.used, usage.free
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return total, total - st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages."""
    return os.getloadavg()
