"""Samples of a whole process tree: every descendant of the wrapper, found anew each time.

With the wrapper as subreaper, orphans (setsid, double fork) re-parent to it,
so "every descendant of the wrapper" is the whole tree: the members of its
cgroup where it has one, else psutil's scan of /proc. PSS comes from
/proc/PID/smaps_rollup, so pages that forked workers share are counted once
in total rather than once per worker. Each process is read from files held
open between samples (``_proc_files``); the heaviest are listed one by one
(``_processes``), from the same reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from jobmeter.run._proc_files import MAX_HELD, Figures, ProcessFiles, read_file
from jobmeter.run._processes import DEFAULT_PROCESSES, Ended, ProcessView

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
    # The heaviest processes by RSS, the others summed, those reaped since the sample before
    # (``_processes``); None where the per-process view is off (``processes=0``).
    top_processes: list[dict[str, Any]] | None = None
    other_processes: dict[str, Any] | None = None
    ended_processes: list[dict[str, Any]] | None = None
    pids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The usage.jsonl record (without pids)."""
        # Not dataclasses.asdict(): it deep-copies every field, at each sample.
        return {name: getattr(self, name) for name in _RECORDED}


_RECORDED = tuple(f.name for f in fields(TreeSample) if f.name != "pids")


class TreeSampler:
    """Samples the descendants of ``root`` (default: this process, the wrapper)."""

    def __init__(
        self,
        root: int | None = None,
        procs_file: str | None = None,
        include_root: bool = False,
        *,
        processes: int = DEFAULT_PROCESSES,
        record_args: bool = False,
        ended: Callable[[], list[Ended] | None] | None = None,
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
        # The per-process view: none at all with processes=0 (nothing kept, nothing listed).
        self._view = ProcessView(processes, record_args) if processes else None
        self._ended = ended  # the processes reaped since the last sample (jobmeter run's reaper)

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
        view = self._view
        read: list[tuple[int, Figures]] = []
        for files in self._members():
            figures = files.read()
            if figures is None:
                continue
            if view is not None:
                read.append((files.pid, figures))
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
        if view is not None:
            ended = self._ended() if self._ended is not None else None
            sample.top_processes, sample.other_processes, sample.ended_processes = view.build(
                read, ended or ()
            )
        return sample

    def close(self) -> None:
        """Close every file held open."""
        for files in self._known.values():
            files.close()
        self._known.clear()
