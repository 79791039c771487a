"""Samples of a whole process tree: every descendant of the wrapper, found anew each time.

With the wrapper as subreaper, orphans (setsid, double fork) re-parent to it,
so "every descendant of the wrapper" is the whole tree: the members of its
cgroup where it has one, else psutil's scan of /proc. PSS comes from
/proc/PID/smaps_rollup, so pages that forked workers share are counted once
in total rather than once per worker. Each process is read from files held
open between samples (``_proc_files``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from jobmeter.run._proc_files import MAX_HELD, ProcessFiles, read_file

if TYPE_CHECKING:
    import psutil


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
    # Joules the machine used since the run started, where it meters them (set by the runner).
    energy_cpu: float | None = None
    energy_dram: float | None = None
    energy_gpu: float | None = None
    pids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The usage.jsonl record (without pids)."""
        # Not dataclasses.asdict(): it deep-copies every field, at each sample.
        return {name: getattr(self, name) for name in _RECORDED}


_RECORDED = tuple(f.name for f in fields(TreeSample) if f.name != "pids")


class TreeSampler:
    """Samples the descendants of ``root`` (default: this process, the wrapper)."""

    def __init__(
        self, root: int | None = None, procs_file: str | None = None, include_root: bool = False
    ) -> None:
        self._root_pid = root if root is not None else os.getpid()
        self._root: psutil.Process | None = None  # for the scan, where there is no cgroup
        self._include_root = include_root  # a run inside a Python program counts itself
        # With a cgroup of its own, the tree is the cgroup's member list: no scan of
        # every /proc/PID/stat on the machine (psutil's children() reads them all).
        # Opened anew at each sample, not held: cgroup v1 serves a file held open the pid
        # list it made first for as long as it is read again within a second.
        self._procs = procs_file
        self._known: dict[int, ProcessFiles] = {}

    def _pids(self) -> list[int]:
        if self._procs is not None:
            try:
                return [int(line) for line in read_file(self._procs).split()]
            except (OSError, ValueError):
                self._procs = None  # fall back to the scan from now on
        import psutil  # the scan only: a run in a cgroup of its own reads no psutil

        try:
            if self._root is None:
                self._root = psutil.Process(self._root_pid)
            children: list[psutil.Process] = self._root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        pids = [child.pid for child in children]
        return [self._root_pid, *pids] if self._include_root else pids

    def _members(self) -> list[ProcessFiles]:
        pids = self._pids()
        known = self._known
        members = []
        for pid in pids:
            files = known.get(pid)
            if files is None:
                files = known[pid] = ProcessFiles(pid, hold=len(known) < MAX_HELD)
            members.append(files)
        if len(known) > len(pids):
            for gone in set(known) - set(pids):
                known.pop(gone).close()
        return members

    def sample(self) -> TreeSample:
        """Read every live descendant now."""
        sample = TreeSample(t=time.time())
        for files in self._members():
            figures = files.read()
            if figures is None:
                continue
            sample.processes += 1
            sample.pids.append(files.pid)
            sample.rss += figures.rss
            sample.pss += figures.pss or figures.rss
            sample.cpu_user += figures.cpu_user
            sample.cpu_system += figures.cpu_system
            sample.read_bytes += figures.read_bytes
            sample.write_bytes += figures.write_bytes
            sample.threads += figures.threads
            sample.open_files += figures.fds
            sample.hwm = max(sample.hwm, figures.hwm)
        return sample

    def close(self) -> None:
        """Close every file held open."""
        for files in self._known.values():
            files.close()
        self._known.clear()
