"""Reading a run's usage.jsonl with DuckDB, and telling a live run from an abandoned one.

DuckDB's ``read_ndjson`` with explicit columns and ``ignore_errors=true`` reads a
million samples in well under a second on two cores, where ``json.loads`` line by
line takes several seconds. A line that is not a JSON object with a ``t`` (a
truncated last line, garbage) comes back as a row of NULLs: those are counted as
skipped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

# The columns of usage.jsonl (docs/run.md); unknown keys are ignored.
COLUMNS: dict[str, str] = {
    "t": "DOUBLE",
    "processes": "BIGINT",
    "rss": "BIGINT",
    "pss": "BIGINT",
    "hwm": "BIGINT",
    "cpu_user": "DOUBLE",
    "cpu_system": "DOUBLE",
    "cpu_user_total": "DOUBLE",
    "cpu_system_total": "DOUBLE",
    "cpu_utilization": "DOUBLE",
    "read_bytes": "BIGINT",
    "write_bytes": "BIGINT",
    "threads": "BIGINT",
    "open_files": "BIGINT",
    "gpu_memory": "BIGINT",
}


def columns_sql() -> str:
    """The ``columns=`` argument of read_ndjson."""
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items()) + "}"


def usage_source(path: Path) -> str:
    """A FROM clause over one usage.jsonl (the path is a bound parameter ``$path``)."""
    options = "ignore_errors=true, format='newline_delimited'"
    return f"read_ndjson($path, columns={columns_sql()}, {options})"


@dataclass
class SampleFigures:
    """What the samples of one run say."""

    lines: int = 0
    samples: int = 0
    first_t: float | None = None
    last_t: float | None = None
    peak_pss: int | None = None
    peak_rss: int | None = None
    peak_hwm: int | None = None
    cpu_user_total: float | None = None
    cpu_system_total: float | None = None
    cpu_utilization_peak: float | None = None
    cpu_utilization_p95: float | None = None
    peak_gpu_memory: int | None = None
    peak_processes: int | None = None
    peak_threads: int | None = None
    peak_read_bytes: int | None = None
    peak_write_bytes: int | None = None

    @property
    def skipped(self) -> int:
        """Lines that were not readable samples."""
        return self.lines - self.samples


_AGGREGATES = """
SELECT count(*), count(t), min(t), max(t), max(pss), max(rss), max(hwm),
       max(cpu_user_total), max(cpu_system_total), max(cpu_utilization),
       quantile_cont(cpu_utilization, 0.95), max(gpu_memory), max(processes),
       max(threads), max(read_bytes), max(write_bytes)
FROM {source}
"""


def read_figures(path: Path) -> SampleFigures:
    """Aggregate one usage.jsonl; a missing or unreadable file gives no samples."""
    if not path.is_file() or path.stat().st_size == 0:
        return SampleFigures()
    with duckdb.connect() as connection:
        row = connection.execute(
            _AGGREGATES.format(source=usage_source(path)), {"path": str(path)}
        ).fetchone()
    assert row is not None
    return SampleFigures(*row)


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
        usage = (directory / "usage.jsonl").resolve()
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
            (p.stat().st_mtime for p in (usage, directory / "run.json") if p.exists()),
            default=0.0,
        )
        return time.time() - newest < max(10 * interval, 60.0)


def _same_host(record: dict[str, Any]) -> bool:
    host = record.get("host")
    name = host.get("host.name") if isinstance(host, dict) else None
    return name is None or name == os.uname().nodename
