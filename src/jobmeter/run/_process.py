"""The command's processes: reaping, exit codes, output pumps, waiting, and the last SIGKILL."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from jobmeter.run._launcher import Spawned, process_name
from jobmeter.run._lifecycle import ReapedUsage
from jobmeter.run._proc_files import zombie
from jobmeter.run._processes import Ended


class Reaper:
    """Reaps every finished child (the wrapper is the tree's subreaper), each with ``wait4``.

    Each process's own rusage gives the largest single-process peak; the
    command's wait status is kept. A command whose process ends under the
    launcher's name never exec'd: ``not_started`` is then its 126 or 127.
    With ``ended``, each reaped process's name and CPU seconds are read while it
    is a zombie, for the next sample's ``ended_processes``.
    """

    def __init__(
        self, spawned: Spawned, usage: ReapedUsage, command: str, *, ended: bool = False
    ) -> None:
        self._spawned = spawned
        self._usage = usage
        # A command named like the launcher cannot be told from it by name.
        names = spawned.launcher_names
        self._names = names if os.path.basename(command)[:15] not in names else frozenset()
        self.status: int | None = None
        self.not_started: int | None = None
        self._ended: list[Ended] | None = [] if ended else None

    def take_ended(self) -> list[Ended] | None:
        """The processes reaped since the last call (None: not asked for)."""
        ended = self._ended
        if ended:
            self._ended = []
        return ended

    @property
    def main_pid(self) -> int:
        """The command's pid."""
        return self._spawned.pid

    def reap(self) -> None:
        """Reap every child that has ended by now."""
        main = self._spawned.pid
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            # Still a zombie, so its name can be read: the launcher's means no exec.
            exited = info.si_code == os.CLD_EXITED
            if pid == main and exited and self._names and process_name(pid) in self._names:
                self.not_started = 127 if info.si_status == 127 else 126
            if self._ended is not None:
                last = zombie(pid)
                if last is not None:
                    self._ended.append((pid, *last))
            try:
                reaped, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue  # reaped elsewhere meanwhile
            if reaped != pid:
                continue
            if pid == main:
                self.status = status
                self._usage.reaped(usage, self._spawned.peak_floor)
                if self._spawned.process.returncode is None:
                    self._spawned.process.returncode = os.waitstatus_to_exitcode(status)
            else:
                self._usage.reaped(usage)


def exit_code(status: int) -> int:
    """The shell's exit status of a wait status: 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def pump(
    source: IO[bytes], stream: Any, log: IO[bytes], on_log_error: Callable[[OSError], None]
) -> None:
    """Copy a child's output to our own stream and its log file, as it comes.

    Neither failing stops the other: a closed terminal still leaves the log,
    a full disk still leaves the terminal (with one warning).
    """
    log_ok = True
    for chunk in iter(lambda: source.read1(65536), b""):  # type: ignore[attr-defined]
        try:
            stream.write(chunk)
            stream.flush()
        except (OSError, ValueError):
            pass
        if log_ok:
            try:
                log.write(chunk)
            except (OSError, ValueError) as error:
                log_ok = False  # a partial log is worse than a marked one: stop here
                if isinstance(error, OSError):
                    on_log_error(error)


def kill_tree(child_pid: int | None, pids: list[int], grace: float) -> None:
    """SIGKILL to the command and every descendant still there, once the grace is over."""
    print(f"jobmeter: the command outlived SIGTERM by {grace:g} s (--kill-grace); "
          "sent SIGKILL", file=sys.stderr)  # fmt: skip
    # The pids are from the sample just taken: too recent to have been reused.
    for pid in ([child_pid] if child_pid is not None else []) + [p for p in pids if p != child_pid]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait(pidfd: int | None, seconds: float) -> None:
    """Sleep until the next sample, waking at once when the main child exits."""
    if pidfd is None:
        time.sleep(seconds)
        return
    with contextlib.suppress(InterruptedError):
        select.select([pidfd], [], [], seconds)
