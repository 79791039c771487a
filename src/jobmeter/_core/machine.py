"""What machine this is: identity for resource attributes and ``jobmeter info``.

Read once per process (cached): nothing here changes while a job runs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import sys
from typing import Any

from jobmeter._core.environment import read
from jobmeter._core.parse import parse_host_name
from jobmeter._core.variables import HOST_NAME


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


def host_name() -> str | None:
    """This machine's name as ``JOBMETER_HOST_NAME`` says to show it; None for ``omit``."""
    mode = read(HOST_NAME, parse_host_name, "plain", "plain applies")
    if mode == "omit":
        return None
    name = socket.gethostname()
    if mode == "hash":
        return "host-" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:16]
    return name


@functools.cache
def machine_info() -> dict[str, Any]:
    """Host, OS, CPU, memory and GPU facts under OTel (or ``jobmeter.``) attribute names."""
    from jobmeter._core import gpus  # NVIDIA and AMD, started here only when asked

    info: dict[str, Any] = {
        "host.name": host_name(),
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
