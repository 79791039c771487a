"""Samples of a whole process tree: every descendant of the wrapper, found anew each time.

With the wrapper as subreaper, orphans (setsid, double fork) re-parent to it,
so "every descendant of the wrapper" is the whole tree. PSS comes from
/proc/PID/smaps_rollup, so pages that forked workers share are counted once
in total rather than once per worker.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from jobmeter._core.process import read_process


@dataclass
class TreeSample:
    """One sample of the tree: sums over its live processes."""

    t: float
    processes: int = 0
    rss: int = 0
    pss: int = 0
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    read_bytes: int = 0
    write_bytes: int = 0
    threads: int = 0
    open_files: int = 0
    hwm: int = 0  # the largest VmHWM (peak RSS) of a live process
    gpu_memory: int | None = None  # GPU memory the tree holds, where there is a GPU
    cpu_utilization: float = 0.0  # CPUs busy since the previous sample (set by the runner)
    pids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The usage.jsonl record (without pids)."""
        record = asdict(self)
        del record["pids"]
        return record


def _pss_and_hwm(pid: int) -> tuple[int, int]:
    pss = hwm = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    return pss, hwm


class TreeSampler:
    """Samples the descendants of ``root`` (default: this process, the wrapper)."""

    def __init__(
        self, root: int | None = None, procs_file: str | None = None, include_root: bool = False
    ) -> None:
        self._root = psutil.Process(root if root is not None else os.getpid())
        self._include_root = include_root  # a run inside a Python program counts itself
        # With a cgroup of its own, the tree is the cgroup's member list: no scan of
        # every /proc/PID/stat on the machine (psutil's children() reads them all).
        self._procs_file = procs_file
        self._known: dict[int, psutil.Process] = {}

    def _members(self) -> list[psutil.Process]:
        if self._procs_file is not None:
            try:
                with open(self._procs_file, "rb") as procs:
                    pids = [int(line) for line in procs.read().split()]
            except (OSError, ValueError):
                self._procs_file = None  # fall back to the scan from now on
            else:
                members = []
                for pid in pids:
                    process = self._known.get(pid)
                    if process is None:
                        try:
                            process = self._known[pid] = psutil.Process(pid)
                        except psutil.NoSuchProcess:
                            continue
                    members.append(process)
                for gone in set(self._known) - set(pids):
                    del self._known[gone]
                return members
        try:
            children: list[psutil.Process] = self._root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [self._root, *children] if self._include_root else children

    def sample(self) -> TreeSample:
        """Read every live descendant now."""
        sample = TreeSample(t=time.time())
        for process in self._members():
            try:
                figures = read_process(process)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            pss, hwm = _pss_and_hwm(process.pid)
            sample.processes += 1
            sample.pids.append(process.pid)
            sample.rss += figures.rss
            sample.pss += pss or figures.rss
            sample.cpu_user += figures.cpu.user
            sample.cpu_system += figures.cpu.system
            sample.read_bytes += figures.read_bytes
            sample.write_bytes += figures.write_bytes
            sample.threads += figures.threads
            sample.open_files += figures.fds
            sample.hwm = max(sample.hwm, hwm)
        return sample
