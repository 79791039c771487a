"""One process read through psutil in one pass: what the host collector and the run sampler sum."""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import psutil


class ProcessFigures(NamedTuple):
    """What psutil tells of one process in one read (``oneshot``)."""

    cpu: Any  # psutil's pcputimes: user, system, children_user, children_system
    rss: int
    vms: int
    threads: int
    fds: int
    read_bytes: int
    write_bytes: int
    ctx_voluntary: int
    ctx_involuntary: int


def read_process(process: psutil.Process) -> ProcessFigures:
    """One process's figures; raises psutil.NoSuchProcess when it has gone.

    File descriptors and I/O read as 0 where they are not allowed.
    """
    with process.oneshot():
        cpu = process.cpu_times()
        memory = process.memory_info()
        switches = process.num_ctx_switches()
        threads = process.num_threads()
        fds = 0
        with contextlib.suppress(psutil.AccessDenied, AttributeError):
            fds = process.num_fds()
        read = written = 0
        try:
            io = process.io_counters()
            read, written = io.read_bytes, io.write_bytes
        except (psutil.AccessDenied, AttributeError):
            pass
    return ProcessFigures(cpu, memory.rss, memory.vms, threads, fds, read, written,
                          switches.voluntary, switches.involuntary)  # fmt: skip
