"""What machine this is: identity for resource attributes and ``jobmeter info``.

Read once per process (cached): nothing here changes while a job runs.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from typing import Any


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _memory_total() -> int:
    """psutil.virtual_memory().total (MemTotal), without importing psutil where sysconf says it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        import psutil

        return int(psutil.virtual_memory().total)


@functools.cache
def machine_info() -> dict[str, Any]:
    """Host, OS, CPU, memory and GPU facts under OTel (or ``jobmeter.``) attribute names."""
    from jobmeter._core import gpus  # NVIDIA and AMD, started here only when asked

    info: dict[str, Any] = {
        "host.name": socket.gethostname(),
        "host.arch": platform.machine().lower(),
        "os.type": sys.platform,
        "os.version": platform.release(),
        "host.cpu.model.name": _cpu_model(),
        "jobmeter.host.cpu.logical_count": os.cpu_count() or 0,
        "jobmeter.host.cpu.usable_count": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count() or 0,
        "jobmeter.host.memory.total": _memory_total(),
    }
    model, count = gpus.inventory()
    info["jobmeter.host.gpu.count"] = count
    if model:
        info["jobmeter.host.gpu.model"] = model
    return {key: value for key, value in info.items() if value is not None}
