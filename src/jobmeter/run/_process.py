"""The command's processes: exit codes, output pumps, waiting, and the last SIGKILL."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any


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
