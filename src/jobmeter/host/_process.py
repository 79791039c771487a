"""Samples of one process, or of a whole process tree, for HostCollector.

The pid is resolved at every sample, so a forked worker reports itself. In a
tree, processes that end between two samples take their figures with them; the
counters are kept monotonic so that a reader never sees them go backwards.
On Linux a process is read from /proc/PID (``_procfs``), elsewhere through
psutil (``_core.process``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

from jobmeter._core.process import read_process
from jobmeter.host import _procfs

# Counters kept monotonic in a tree, by field name.
_COUNTERS = (
    "cpu_user", "cpu_system", "read_bytes", "write_bytes",
    "ctx_voluntary", "ctx_involuntary", "faults_minor", "faults_major",
)  # fmt: skip


@dataclass
class ProcessSample:
    """Figures of one process (or tree) at one moment."""

    pid: int
    at: float
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    rss: int = 0
    vms: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    threads: int = 0
    fds: int = 0
    ctx_voluntary: int = 0
    ctx_involuntary: int = 0
    faults_minor: int = 0
    faults_major: int = 0
    utilization: dict[str, float] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # the processes read: root first


def _page_faults(pid: int) -> tuple[int, int]:
    """(minor, major) page faults from /proc/PID/stat; psutil has no call for them."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[7]), int(fields[9])  # minflt, majflt (fields 10 and 12)
    except (OSError, IndexError, ValueError):
        return 0, 0


def _read(process: psutil.Process, root: bool) -> _procfs.ProcessFigures:
    """One process's figures; raises psutil.NoSuchProcess when it has gone."""
    if _procfs.AVAILABLE:
        try:  # the root's files stay open; a tree's children come and go
            return _procfs.process(process.pid, keep=root)
        except ProcessLookupError:
            raise psutil.NoSuchProcess(process.pid) from None
    figures = read_process(process)
    cpu = figures.cpu
    return _procfs.ProcessFigures(
        cpu.user, cpu.system, cpu.children_user, cpu.children_system, figures.rss, figures.vms,
        figures.threads, figures.fds, figures.read_bytes, figures.write_bytes,
        figures.ctx_voluntary, figures.ctx_involuntary, *_page_faults(process.pid),
    )  # fmt: skip


def _add(sample: ProcessSample, process: psutil.Process, root: bool) -> None:
    figures = _read(process, root)
    sample.threads += figures.threads
    sample.fds += figures.fds
    sample.read_bytes += figures.read_bytes
    sample.write_bytes += figures.write_bytes
    sample.cpu_user += figures.cpu_user + (figures.children_user if root else 0.0)
    sample.cpu_system += figures.cpu_system + (figures.children_system if root else 0.0)
    sample.rss += figures.rss
    sample.vms += figures.vms
    sample.ctx_voluntary += figures.ctx_voluntary
    sample.ctx_involuntary += figures.ctx_involuntary
    sample.faults_minor += figures.faults_minor
    sample.faults_major += figures.faults_major


class ProcessProbe:
    """Reads a pid (default: this process, whichever it is now), or its whole tree."""

    def __init__(self, pid: int | None = None, tree: bool = False) -> None:
        self._pid = pid
        self._tree = tree
        self._process: psutil.Process | None = None
        self._previous: ProcessSample | None = None
        self._cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1

    def sample(self) -> ProcessSample | None:
        """A new sample, with utilization over the time since the previous one."""
        pid = os.getpid() if self._pid is None else self._pid
        if self._process is None or self._process.pid != pid:
            try:
                self._process = psutil.Process(pid)
            except psutil.NoSuchProcess:
                return None
            self._previous = None  # a new process (a forked child): a new baseline
        sample = ProcessSample(pid=pid, at=time.monotonic())
        try:
            _add(sample, self._process, root=True)
        except psutil.NoSuchProcess:
            return None
        sample.pids.append(pid)
        if self._tree:
            for child in self._children():
                try:
                    _add(sample, child, root=False)
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                sample.pids.append(child.pid)
        previous, self._previous = self._previous, sample
        if previous is not None:
            if self._tree:
                for name in _COUNTERS:  # a child that ended without being reaped
                    setattr(sample, name, max(getattr(sample, name), getattr(previous, name)))
            elapsed = (sample.at - previous.at) * self._cpus
            if elapsed > 0:
                sample.utilization = {
                    "user": max(sample.cpu_user - previous.cpu_user, 0.0) / elapsed,
                    "system": max(sample.cpu_system - previous.cpu_system, 0.0) / elapsed,
                }
        return sample

    def pids(self) -> list[int]:
        """The processes a sample would read now (root first), without reading them."""
        pid = os.getpid() if self._pid is None else self._pid
        if not self._tree:
            return [pid] if self._pid is None or psutil.pid_exists(pid) else []
        try:
            process = self._process
            if process is None or process.pid != pid:
                process = psutil.Process(pid)
            return [pid, *(child.pid for child in process.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def _children(self) -> list[psutil.Process]:
        assert self._process is not None
        try:
            return self._process.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
