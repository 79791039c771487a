"""What a run held: its CPUs, memory and GPUs, as a bill would count them (run.json's ``held``).

A job is billed for what it held, not what it used: the cgroup's limits
(``cpu.max`` and ``memory.max`` in cgroup v2; ``cpu.cfs_quota_us`` and
``memory.limit_in_bytes`` in v1), the tightest along the path from the job's
cgroup to the root, else the CPUs it may run on and the machine's memory.
Inside a Slurm job without such limits (no cgroup plugin), what Slurm
allotted is the request: ``SLURM_CPUS_PER_TASK``, and ``SLURM_MEM_PER_NODE``
or ``SLURM_MEM_PER_CPU`` (MiB) times the CPUs; only those numbers are kept.
Kubernetes sets its limits as cgroup limits, which are read as above.
GPUs are those it may use. The store prices runs with these figures and
``advise`` with the advised ones (docs/energy.md#cost). The cgroup tree is
read under ``JOBMETER_SYSFS_PATH`` (default ``/sys``), as the RAPL counters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def _count(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and int(text) > 0 else None


def slurm_request(environ: Mapping[str, str]) -> tuple[float | None, int | None]:
    """(CPUs, memory bytes) Slurm allotted the job this process runs in; None where unset."""
    if not environ.get("SLURM_JOB_ID"):
        return None, None
    cpus = _count(environ.get("SLURM_CPUS_PER_TASK"))
    per_node = _count(environ.get("SLURM_MEM_PER_NODE"))
    per_cpu = _count(environ.get("SLURM_MEM_PER_CPU"))
    memory = None
    if per_node is not None:
        memory = per_node * 2**20
    elif per_cpu is not None:
        memory = per_cpu * 2**20 * (cpus or _count(environ.get("SLURM_CPUS_ON_NODE")) or 1)
    return (None if cpus is None else float(cpus)), memory


def held_resources(
    memory_total: int,
    usable_cpus: int,
    gpus: int,
    sysfs: str = "/sys",
    cgroup_file: str = _CGROUP_FILE,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """run.json's ``held``: the limits of the run's cgroup, else what Slurm allotted, else
    what the machine offers."""
    cpus, memory = cgroup_limits(sysfs, cgroup_file)
    # cgroup v1 says "no limit" with a huge number: what the machine has is the limit then.
    memory = memory if memory is not None and memory < memory_total else None
    cpus = cpus if cpus is not None and cpus < usable_cpus else None
    slurm_cpus, slurm_memory = slurm_request(os.environ if environ is None else environ)
    cpus_from = "machine" if cpus is None else "cgroup"
    memory_from = "machine" if memory is None else "cgroup"
    if cpus is None and slurm_cpus is not None:
        cpus, cpus_from = slurm_cpus, "slurm"
    if memory is None and slurm_memory is not None:
        memory, memory_from = slurm_memory, "slurm"
    return {
        "cpus": float(usable_cpus) if cpus is None else cpus,
        "cpus_from": cpus_from,
        "memory_bytes": memory_total if memory is None else memory,
        "memory_from": memory_from,
        "gpus": gpus,
    }
