"""What a run held: its CPUs, memory and GPUs, as a bill would count them (run.json's ``held``).

A job is billed for what it held, not what it used: the cgroup's limits
(``cpu.max`` and ``memory.max`` in cgroup v2; ``cpu.cfs_quota_us`` and
``memory.limit_in_bytes`` in v1), the tightest along the path from the job's
cgroup to the root, else the CPUs it may run on and the machine's memory.
GPUs are those it may use. The store prices runs with these figures and
``advise`` with the advised ones (docs/energy.md#cost). The cgroup tree is
read under ``JOBMETER_SYSFS_PATH`` (default ``/sys``), as the RAPL counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_CGROUP_FILE = "/proc/self/cgroup"


def _number(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ancestors(root: Path, relative: str) -> list[Path]:
    """The cgroup's directory and every one above it, up to ``root``."""
    found, current = [], root / relative.strip("/")
    while True:
        found.append(current)
        if current == root or root not in current.parents:
            return found
        current = current.parent


def _v2_limits(directories: list[Path]) -> tuple[float | None, int | None]:
    cpus: float | None = None
    memory: int | None = None
    for directory in directories:
        quota = (_number(directory / "cpu.max") or "max").split()
        if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]):
            value = int(quota[0]) / int(quota[1])
            cpus = value if cpus is None else min(cpus, value)
        limit = _number(directory / "memory.max") or "max"
        if limit.isdigit():
            memory = int(limit) if memory is None else min(memory, int(limit))
    return cpus, memory


def _v1_limits(cpu: list[Path], mem: list[Path]) -> tuple[float | None, int | None]:
    cpus: float | None = None
    memory: int | None = None
    for directory in cpu:
        quota, period = (
            _number(directory / "cpu.cfs_quota_us"),
            _number(directory / "cpu.cfs_period_us"),
        )
        if quota and period and quota.isdigit() and period.isdigit() and int(period):
            value = int(quota) / int(period)  # -1 (no quota) is not all digits
            cpus = value if cpus is None else min(cpus, value)
    for directory in mem:
        limit = _number(directory / "memory.limit_in_bytes")
        if limit and limit.isdigit():
            memory = int(limit) if memory is None else min(memory, int(limit))
    return cpus, memory


def cgroup_limits(
    sysfs: str = "/sys", cgroup_file: str = _CGROUP_FILE
) -> tuple[float | None, int | None]:
    """(CPUs, memory bytes) the cgroups of this process allow; None where there is no limit."""
    root = Path(sysfs) / "fs" / "cgroup"
    try:
        lines = Path(cgroup_file).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, None
    cpu_dirs: list[Path] = []
    memory_dirs: list[Path] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        if not controllers:  # v2: one hierarchy, at the root or under unified/
            base = root if (root / "cgroup.controllers").exists() else root / "unified"
            v2_cpus, v2_memory = _v2_limits(_ancestors(base, relative))
            if v2_cpus is not None or v2_memory is not None:
                return v2_cpus, v2_memory
            continue
        names = controllers.split(",")
        if "cpu" in names:
            cpu_dirs = _ancestors(root / controllers, relative)
            if not cpu_dirs[0].parent.exists():
                cpu_dirs = _ancestors(root / "cpu", relative)
        if "memory" in names:
            memory_dirs = _ancestors(root / "memory", relative)
    return _v1_limits(cpu_dirs, memory_dirs)


def held_resources(
    memory_total: int,
    usable_cpus: int,
    gpus: int,
    sysfs: str = "/sys",
    cgroup_file: str = _CGROUP_FILE,
) -> dict[str, Any]:
    """run.json's ``held``: the limits of the run's cgroup, else what the machine offers."""
    cpus, memory = cgroup_limits(sysfs, cgroup_file)
    # cgroup v1 says "no limit" with a huge number: what the machine has is the limit then.
    memory = memory if memory is not None and memory < memory_total else None
    cpus = cpus if cpus is not None and cpus < usable_cpus else None
    return {
        "cpus": float(usable_cpus) if cpus is None else cpus,
        "cpus_from": "machine" if cpus is None else "cgroup",
        "memory_bytes": memory_total if memory is None else memory,
        "memory_from": "machine" if memory is None else "cgroup",
        "gpus": gpus,
    }
