"""Whether the wrapper of a run that says "running" is alive, or gone and left it incomplete."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from jobmeter._core.machine import host_name
from jobmeter._rundata.layout import RUN_JSON, USAGE


def _open_files() -> set[str]:
    """Every file some process on this machine holds open (that we may look at)."""
    held: set[str] = set()
    try:
        pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return held
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
    return held


class Liveness:
    """Whether the wrapper that writes a run with status "running" is still alive.

    On the machine that made the run: a wrapper pid in run.json that no
    process has any more means abandoned at once. Otherwise (runs recorded
    before the pid was, or a pid reused by another process) the wrapper holds
    its usage.jsonl open for appending until it ends (the command does not
    inherit it), so a run is alive if and only if some process holds that file
    open. Where /proc cannot tell (another host, no /proc), a run whose files
    have not changed for ``max(10 * interval, 60 s)`` is taken as abandoned.
    """

    def __init__(self) -> None:
        self._held: set[str] | None = None

    def alive(self, record: dict[str, Any], directory: Path) -> bool:
        """True if the run's wrapper is still running."""
        usage = (directory / USAGE).resolve()
        same_host = _same_host(record)
        pid = record.get("pid")
        if same_host and isinstance(pid, int) and pid > 0:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass  # alive, someone else's: the open-file check below decides
        if os.path.isdir("/proc/self/fd") and same_host:
            if self._held is None:
                self._held = _open_files()
            return str(usage) in self._held
        interval = float(record.get("interval_seconds") or 1.0)
        newest = max(
            (p.stat().st_mtime for p in (usage, directory / RUN_JSON) if p.exists()),
            default=0.0,
        )
        return time.time() - newest < max(10 * interval, 60.0)


def _same_host(record: dict[str, Any]) -> bool:
    host = record.get("host")
    name = host.get("host.name") if isinstance(host, dict) else None
    return name is None or name in (os.uname().nodename, host_name())
