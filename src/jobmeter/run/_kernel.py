"""What the kernel keeps for a process tree: subreaper, cgroup memory peak, rusage.

Sampling every second cannot see a 500 MB spike held for 0.3 s; the kernel
can. A memory cgroup of its own gives the tree's peak (cgroup v2
``memory.peak``, v1 ``memory.max_usage_in_bytes``); ``ru_maxrss`` of reaped
children gives the largest single process's peak. Both are used where the
machine allows, and the run says which source each figure came from.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from pathlib import Path

from jobmeter.run._proc_files import HeldFile

_log = logging.getLogger("jobmeter")

PR_SET_CHILD_SUBREAPER = 36
CGROUP_ROOT = Path("/sys/fs/cgroup")


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a child that calls setsid or double-forks stays ours)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class MemoryCgroup:
    """A memory cgroup for one run, under the wrapper's own; None-safe when not allowed."""

    def __init__(self, path: Path, peak_file: str) -> None:
        self.path = path
        self._peak = HeldFile(str(path / peak_file))  # read at each sample
        self.version = 2 if peak_file == "memory.peak" else 1

    @classmethod
    def create(cls, name: str) -> MemoryCgroup | None:
        """Make ``name`` under this process's memory cgroup, or None if not allowed."""
        for base, peak_file in _candidates():
            _remove_stale(base)
            path = base / name
            try:
                path.mkdir()
            except OSError:
                continue
            if (path / peak_file).exists():
                return cls(path, peak_file)
            _remove(path)
        return None

    @property
    def procs_file(self) -> str:
        """The file a process writes its pid to in order to join."""
        return str(self.path / "cgroup.procs")

    def peak_bytes(self) -> int | None:
        """The highest memory the cgroup was charged (page cache included)."""
        try:
            return int(self._peak.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone; leave it if some remain."""
        self._peak.close()
        if not _remove(self.path):
            _log.info("jobmeter: cgroup %s still has processes; left in place", self.path)


def _candidates() -> list[tuple[Path, str]]:
    """(this process's memory cgroup directory, peak file) for v2 and v1."""
    found = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        hierarchy, controllers, relative = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                if (root / "cgroup.controllers").exists():
                    found.append((root / relative.lstrip("/"), "memory.peak"))
                    break
        elif "memory" in controllers.split(","):
            found.append(
                (CGROUP_ROOT / "memory" / relative.lstrip("/"), "memory.max_usage_in_bytes")
            )
    return found


STALE_AFTER_S = 60.0


def _remove_stale(base: Path) -> None:
    """Remove empty run cgroups that a killed wrapper left behind (rmdir fails if not empty)."""
    try:
        candidates = list(base.glob("jobmeter-*"))
    except OSError:
        return
    for path in candidates:
        try:
            if time.time() - path.stat().st_mtime > STALE_AFTER_S:
                _remove(path)
        except OSError:
            continue


def _remove(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except OSError:
        return False


def join_cgroup(procs_file: str) -> None:
    """In the child, before exec: move itself into the run's cgroup (async-signal-safe calls)."""
    try:
        fd = os.open(procs_file, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # 0 means "the writing process"
        finally:
            os.close(fd)
    except OSError:
        pass
