"""One process's figures from /proc, its files held open and read again at each sample.

At 0.1 s sampling the wrapper's own cost is what it does per sample. psutil
opens, reads and closes six files per process and builds a namedtuple for
each; here the four files a sample needs (``stat``, ``io``, ``smaps_rollup``,
``status``) are opened once and re-read with ``pread`` (a third of the system
time of an open), and only the fields the sample keeps are parsed. A file
held open stays the process's own: once it has ended, a read fails with ESRCH
even if its pid is reused (after an exec smaps_rollup does too, and the files
are opened again). Up to ``MAX_HELD`` processes are held (four
descriptors each, well within the usual limit of 1024); the rest are opened at
each sample.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final, NamedTuple

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
#: Processes whose files are kept open between samples.
MAX_HELD: Final = 64
_FILES: Final = ("stat", "io", "smaps_rollup", "status")
_BUFFER: Final = 16384  # status and smaps_rollup are about 1.5 KB; stat and io less


class Figures(NamedTuple):
    """What one sample keeps of one process."""

    rss: int
    pss: int  # 0 where smaps_rollup cannot be read (the sample then counts the RSS)
    hwm: int  # VmHWM, the process's own peak RSS
    cpu_user: float
    cpu_system: float
    read_bytes: int
    write_bytes: int
    threads: int
    fds: int
    name: bytes  # comm, from stat: the executable's name (15 bytes at most), never arguments
    started: int  # stat's starttime: clock ticks after boot


def _field(data: bytes, key: bytes) -> int:
    """The number after ``key`` (``b"\\nPss:"``) in a /proc key-value file; 0 without it."""
    start = data.find(key)
    if start < 0:
        return 0
    start += len(key)
    end = data.find(b"\n", start)
    return int(data[start:end].split()[0])


class ProcessFiles:
    """The /proc files of one process, opened on first read and held when ``hold``."""

    def __init__(self, pid: int, hold: bool = True) -> None:
        self.pid = pid
        self._hold = hold
        self._fds: list[int | None] | None = None

    def _read_all(self) -> list[bytes | None]:
        """Each file's text; None for one that cannot be read (I/O of another user's process)."""
        if self._fds is None:
            opened: list[int | None] = []
            try:
                opened.extend(_open(f"/proc/{self.pid}/{name}") for name in _FILES)
            except ProcessLookupError:
                for fd in opened:
                    if fd is not None:
                        os.close(fd)
                raise
            self._fds = opened
        texts: list[bytes | None] = []
        for fd in self._fds:
            try:
                texts.append(None if fd is None else os.pread(fd, _BUFFER, 0))
            except ProcessLookupError:
                raise
            except OSError:
                texts.append(None)
        if not self._hold:
            self.close()
        return texts

    def read(self) -> Figures | None:
        """The process's figures now; None once it has ended (or is a zombie)."""
        try:
            stat, io, rollup, status = self._read_all()
        except ProcessLookupError:
            # Ended, or exec'd: smaps_rollup held open still reads the memory map the
            # process had before (ESRCH once it is gone). Opened anew, it reads the new one.
            self.close()
            try:
                stat, io, rollup, status = self._read_all()
            except ProcessLookupError:
                self.close()
                return None
        if not stat:
            return None
        fields = stat.rpartition(b")")[2].split()
        if len(fields) < 22 or fields[0] in (b"Z", b"X"):
            return None  # ended, not reaped yet: its figures are the reaper's
        try:
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            fds = 0
        return Figures(
            # VmRSS, as statm and psutil say: stat's own RSS field lags by a few pages.
            rss=_field(status, b"\nVmRSS:") * 1024 if status else 0,
            pss=_field(rollup, b"\nPss:") * 1024 if rollup else 0,
            hwm=_field(status, b"\nVmHWM:") * 1024 if status else 0,
            cpu_user=int(fields[11]) / CLOCK_TICKS,
            cpu_system=int(fields[12]) / CLOCK_TICKS,
            read_bytes=_field(io, b"read_bytes:") if io else 0,
            write_bytes=_field(io, b"write_bytes:") if io else 0,
            threads=int(fields[17]),
            fds=fds,
            name=stat[stat.find(b"(") + 1 : stat.rfind(b")")],
            started=int(fields[19]),
        )

    def close(self) -> None:
        """Close what is held; the next read opens the files again."""
        fds, self._fds = self._fds, None
        for fd in fds or ():
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProcessLookupError(path) from None
    except OSError:  # not ours to read (io of a setuid program)
        return None


def zombie(pid: int) -> tuple[bytes, float] | None:
    """The comm and CPU seconds (its own utime+stime) of a process that has ended, not reaped."""
    try:
        stat = read_file(f"/proc/{pid}/stat")
    except OSError:
        return None
    fields = stat.rpartition(b")")[2].split()
    if len(fields) < 13:
        return None
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return stat[stat.find(b"(") + 1 : stat.rfind(b")")], cpu


def read_file(path: str) -> bytes:
    """A whole small file, opened and closed again (one open, one or two reads)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class HeldFile:
    """A small file (memory.peak) held open and read again with ``pread``.

    Not for cgroup v1's cgroup.procs: a file held open keeps its first pid list.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def read(self) -> bytes:
        """The whole file now; raises OSError when it cannot be read."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        chunks = []
        offset = 0
        while chunk := os.pread(self._fd, 65536, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the file; idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
