"""Linux: the host groups read straight from /proc, with psutil's arithmetic.

psutil builds a namedtuple per call, reads /proc/vmstat for swap figures that
are not reported, and sums the same file twice for memory and swap; reading
the files here costs a fifth of that. Each function returns what the psutil
call it replaces would, for the fields HostCollector reports (the tests
compare them with psutil). A file in an unexpected shape raises ValueError,
and the group falls back to psutil (``_system``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import NamedTuple

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SECTOR_SIZE = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own
AVAILABLE = os.path.exists("/proc/self/stat")
_SKIPPED_DEVICES = (b"loop", b"ram")


def read_file(path: str) -> bytes:
    """The whole file, in as few system calls as it takes."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _pread_all(fd)
    finally:
        os.close(fd)


def _pread_all(fd: int) -> bytes:
    data = os.pread(fd, 65536, 0)
    if len(data) == 65536:  # /proc/stat of a large machine
        while chunk := os.pread(fd, 65536, len(data)):
            data += chunk
    return data


class KeptFiles:
    """/proc files kept open and re-read with pread: half the cost of opening them each time.

    A kept descriptor is counted in ``process.unix.file_descriptor.count``
    (one per file: the four machine files and three of the watched process;
    ``_system.MountTable`` keeps an eighth). A forked child, or a descriptor
    closed under us (a daemonizing ``closerange``), opens them again.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def read(self, path: str) -> bytes:
        if self._pid != os.getpid():  # a forked child: its copies of the parent's go
            self._lock = threading.Lock()
            self.close()
            self._pid = os.getpid()
        fd = self._fds.get(path)
        if fd is not None:
            try:
                return _pread_all(fd)
            except OSError as error:
                self.forget(path)
                if isinstance(error, ProcessLookupError):  # the process has gone
                    raise
                return self.read(path)  # closed under us: opened again
        with self._lock:
            fd = self._fds.get(path)
            if fd is None:
                fd = self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return _pread_all(fd)

    def forget(self, path: str) -> None:
        """Close and forget one file (a process that is no longer watched)."""
        fd = self._fds.pop(path, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for path in list(self._fds):
            self.forget(path)


kept = KeptFiles()


def cpu_times(per_cpu: bool) -> list[dict[str, float]]:
    """Seconds by OTel cpu.mode, for the machine or per logical CPU (psutil's cpu_times)."""
    lines = kept.read("/proc/stat").split(b"\n")
    rows = [line for line in lines if line.startswith(b"cpu")]
    if not rows:
        raise ValueError("no cpu line in /proc/stat")
    ticks = CLOCK_TICKS
    found = []
    for line in rows[1:] if per_cpu else rows[:1]:
        f = line.split()
        if len(f) < 9:
            raise ValueError(f"unexpected /proc/stat line {line!r}")
        modes = {"user": int(f[1]) / ticks, "nice": int(f[2]) / ticks,
                 "system": int(f[3]) / ticks, "idle": int(f[4]) / ticks,
                 "iowait": int(f[5]) / ticks,
                 "interrupt": 0.0 + int(f[6]) / ticks + int(f[7]) / ticks,
                 "steal": int(f[8]) / ticks}  # fmt: skip
        found.append(modes)
    return found


class Memory(NamedTuple):
    """psutil.virtual_memory()'s figures that are reported."""

    total: int
    used: int
    free: int
    buffers: int
    cached: int


class Swap(NamedTuple):
    """psutil.swap_memory()'s figures that are reported."""

    total: int
    used: int
    free: int


_MEMINFO_KEYS = (b"MemTotal", b"MemFree", b"MemAvailable", b"Buffers", b"Cached",
                 b"SReclaimable", b"SwapTotal", b"SwapFree")  # fmt: skip


def meminfo() -> tuple[Memory, Swap]:
    """Memory and swap from one read of /proc/meminfo, as psutil computes them."""
    values: dict[bytes, int] = {}
    wanted = len(_MEMINFO_KEYS)
    for line in kept.read("/proc/meminfo").split(b"\n"):
        key, _, rest = line.partition(b":")
        if key in _MEMINFO_KEYS:
            values[key] = int(rest.split()[0]) * 1024
            if len(values) == wanted:
                break
    try:
        total, free, available = values[b"MemTotal"], values[b"MemFree"], values[b"MemAvailable"]
        buffers, cached = values[b"Buffers"], values[b"Cached"] + values.get(b"SReclaimable", 0)
        swap_total, swap_free = values[b"SwapTotal"], values[b"SwapFree"]
    except KeyError as missing:  # old kernels: psutil estimates
        raise ValueError(f"/proc/meminfo has no {missing}") from None
    if available == 0:  # a kernel bug psutil works around (psutil #1915)
        raise ValueError("/proc/meminfo: MemAvailable is 0")
    if available > total:  # inside some containers
        available = free
    memory = Memory(total, total - available, free, buffers, cached)
    return memory, Swap(swap_total, swap_total - swap_free, swap_free)


def diskstats() -> dict[str, tuple[int, int, int, int]]:
    """(read bytes, written bytes, reads, writes) per block device but loop and RAM disks."""
    found = {}
    for line in kept.read("/proc/diskstats").split(b"\n"):
        f = line.split()
        if not f:
            continue
        if len(f) == 14 or len(f) >= 18:
            reads, read_sectors, writes, written_sectors = f[3], f[5], f[7], f[9]
        elif len(f) == 7:  # a partition on Linux 2.6
            reads, read_sectors, writes, written_sectors = f[3], f[4], f[5], f[6]
        else:
            raise ValueError(f"unexpected /proc/diskstats line {line!r}")
        if f[2].startswith(_SKIPPED_DEVICES):
            continue
        found[f[2].decode()] = (int(read_sectors) * SECTOR_SIZE, int(written_sectors) * SECTOR_SIZE,
                                int(reads), int(writes))  # fmt: skip
    return found


def net_dev() -> dict[str, tuple[int, int, int, int, int, int]]:
    """(bytes, packets, errors) received then sent, per network interface."""
    found = {}
    for line in kept.read("/proc/net/dev").split(b"\n")[2:]:
        name, colon, rest = line.rpartition(b":")
        if not colon:
            continue
        f = rest.split()
        found[name.strip().decode()] = (int(f[0]), int(f[8]), int(f[1]), int(f[9]),
                                        int(f[2]), int(f[10]))  # fmt: skip
    return found


class ProcessFigures(NamedTuple):
    """One process's figures, as ``_core.process.read_process`` gives them, and page faults."""

    cpu_user: float
    cpu_system: float
    children_user: float
    children_system: float
    rss: int
    vms: int
    threads: int
    fds: int
    read_bytes: int
    write_bytes: int
    ctx_voluntary: int
    ctx_involuntary: int
    faults_minor: int
    faults_major: int


def process(pid: int, keep: bool = False) -> ProcessFigures:
    """One process from /proc/PID; ProcessLookupError when it has gone.

    I/O and file descriptors read as 0 where they are not allowed, as with
    psutil. With ``keep``, its files stay open for the next read (``kept``).
    """
    base = f"/proc/{pid}/"
    read = kept.read if keep else read_file
    try:
        stat = read(base + "stat")
        status = read(base + "status")
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    f = stat.rsplit(b")", 1)[1].split()
    voluntary = _status_field(status, b"\nvoluntary_ctxt_switches:")
    involuntary = _status_field(status, b"\nnonvoluntary_ctxt_switches:")
    read_bytes = written = 0
    try:
        io = read(base + "io")
        read_bytes = _status_field(io, b"\nread_bytes:")
        written = _status_field(io, b"\nwrite_bytes:")
    except (PermissionError, FileNotFoundError):
        pass
    try:
        fds = len(os.listdir(base + "fd"))
    except (PermissionError, FileNotFoundError):
        fds = 0
    ticks = CLOCK_TICKS
    return ProcessFigures(
        int(f[11]) / ticks, int(f[12]) / ticks, int(f[13]) / ticks, int(f[14]) / ticks,
        int(f[21]) * PAGE_SIZE, int(f[20]), int(f[17]), fds, read_bytes, written,
        voluntary, involuntary, int(f[7]), int(f[9]),
    )  # fmt: skip


def _status_field(text: bytes, key: bytes) -> int:
    """The number after ``key`` (which starts with a newline) in a /proc status-like file."""
    at = text.find(key)
    if at < 0:
        return 0
    start = at + len(key)
    end = text.find(b"\n", start)
    return int(text[start:] if end < 0 else text[start:end])
