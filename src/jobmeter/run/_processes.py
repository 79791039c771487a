"""The per-process view of a sample: the tree's heaviest processes, the rest summed, the ended.

Made from what the sampler has read already (``_proc_files.Figures``: comm and
CPU ticks from stat, VmRSS and VmHWM from status, PSS from smaps_rollup), so it
opens no file of its own except where a name needs one: the executable's
basename when comm (15 bytes at most) may have been cut, and the command line
with ``--record-args``. Both are read for the top processes only, once per
process and program (again after an exec). Each process's CPU share is its
utime+stime since the sample before over the time between them, in percent of
one CPU (a process first seen: since it started); con-duct's ``pcpu`` is
``ps``'s average over the process's whole life instead.
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Sequence
from typing import Any, Final

from jobmeter.run._proc_files import CLOCK_TICKS, Figures, read_file

#: Processes listed per sample unless told otherwise (``jobmeter run --processes``).
DEFAULT_PROCESSES: Final = 10
_COMM_LEN: Final = 15  # TASK_COMM_LEN - 1: a comm this long may have been cut short

# (pid, comm, CPU seconds) of a process the wrapper reaped, read while it was a zombie.
Ended = tuple[int, bytes | None, float]


class _Seen:
    """What the view remembers of one process between samples."""

    __slots__ = ("args", "comm", "cpu", "name", "started", "t")

    def __init__(self, started: int) -> None:
        self.started = started  # tells a reused pid from the process that had it
        self.cpu = 0.0
        self.t = started / CLOCK_TICKS  # seconds after boot: first seen, its share is since then
        self.comm = b""
        self.name = ""
        self.args: list[str] | None = None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")  # a name is bytes; JSON wants valid text


class ProcessView:
    """Builds each sample's ``top_processes``, ``other_processes`` and ``ended_processes``.

    Args:
        limit: the processes listed per sample, the heaviest by RSS (0: none).
        record_args: also list each top process's command line (``--record-args``).
    """

    def __init__(self, limit: int = DEFAULT_PROCESSES, record_args: bool = False) -> None:
        if limit < 0:
            raise ValueError(f"processes must be 0 or more, got {limit!r}")
        self.limit = limit
        self._record_args = record_args
        self._seen: dict[int, _Seen] = {}

    def build(
        self, read: Sequence[tuple[int, Figures]], ended: Sequence[Ended] = ()
    ) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None, list[dict[str, Any]] | None]:
        """The sample's top processes, the rest summed (None: no rest), and the ended ones."""
        now = time.clock_gettime(time.CLOCK_BOOTTIME)  # the clock of stat's starttime
        seen = self._seen
        shares: list[tuple[int, Figures, float, float]] = []
        for pid, figures in read:
            state = seen.get(pid)
            if state is None or state.started != figures.started:
                state = seen[pid] = _Seen(figures.started)
            cpu = figures.cpu_user + figures.cpu_system
            elapsed = now - state.t
            share = max(cpu - state.cpu, 0.0) / elapsed * 100 if elapsed > 0 else 0.0
            state.cpu, state.t = cpu, now
            shares.append((pid, figures, cpu, share))
        ended_entries = self._ended(ended) if ended else None
        if len(seen) > len(shares):
            live = {pid for pid, _ in read}
            for pid in [pid for pid in seen if pid not in live]:
                del seen[pid]
        if not shares:
            return [], None, ended_entries
        if len(shares) > self.limit:
            top = heapq.nlargest(self.limit, shares, key=lambda entry: entry[1].rss)
        else:
            top = sorted(shares, key=lambda entry: entry[1].rss, reverse=True)
        entries = [self._entry(pid, figures, cpu, share) for pid, figures, cpu, share in top]
        rest = None
        if len(shares) > len(top):
            listed = {entry[0] for entry in top}
            others = [entry for entry in shares if entry[0] not in listed]
            known = [figures.pss for _, figures, _, _ in others if figures.pss]
            rest = {
                "count": len(others),
                "rss": sum(figures.rss for _, figures, _, _ in others),
                "pss": sum(known) if known else None,
                "cpu_percent": round(sum(share for *_, share in others), 1),
                "cpu_seconds": round(sum(cpu for _, _, cpu, _ in others), 2),
            }
        return entries, rest, ended_entries

    def _entry(self, pid: int, figures: Figures, cpu: float, share: float) -> dict[str, Any]:
        state = self._seen[pid]
        if state.comm != figures.name:  # first listed, or an exec since
            state.comm = figures.name
            state.name = _name(pid, figures.name)
            state.args = _args(pid) if self._record_args else None
        entry: dict[str, Any] = {
            "pid": pid, "name": state.name, "rss": figures.rss, "pss": figures.pss or None,
            "hwm": figures.hwm, "cpu_percent": round(share, 1), "cpu_seconds": round(cpu, 2),
        }  # fmt: skip
        if state.args is not None:
            entry["args"] = state.args
        return entry

    def _ended(self, ended: Sequence[Ended]) -> list[dict[str, Any]]:
        heaviest = heapq.nlargest(self.limit, ended, key=lambda item: item[2])
        entries = []
        for pid, comm, cpu in heaviest:
            state = self._seen.get(pid)
            # A zombie's exe cannot be read: the name it had when it was last listed, if it was.
            if state is not None and state.name and (comm is None or comm == state.comm):
                name = state.name
            else:
                name = _text(comm) if comm is not None else ""
            entries.append({"pid": pid, "name": name, "cpu_seconds": round(cpu, 2)})
        return entries


def _name(pid: int, comm: bytes) -> str:
    """comm, or the executable's basename where comm is that name cut at 15 bytes."""
    if len(comm) >= _COMM_LEN:
        try:
            executable = os.fsencode(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
        except OSError:  # another user's process, or a kernel thread
            return _text(comm)
        if executable.startswith(comm):
            return _text(executable)
    return _text(comm)


def _args(pid: int) -> list[str] | None:
    """The command line as the process has it now (``--record-args`` only)."""
    try:
        raw = read_file(f"/proc/{pid}/cmdline")
    except OSError:
        return None
    if not raw:
        return []  # a zombie's, or a kernel thread's
    return [_text(arg) for arg in raw.removesuffix(b"\0").split(b"\0")]
