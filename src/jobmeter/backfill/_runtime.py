"""The background work of backfills, and their last words at exit and on SIGTERM.

Each backfill that checkpoints, pushes or writes log lines has one daemon
thread that runs those tasks at their intervals. Open backfills are closed at
interpreter exit (as failed when an uncaught exception is ending the program)
and on SIGTERM (as interrupted): a last checkpoint, a last push, the bar put
away. The SIGTERM handler is installed on first need, only from the main
thread and only over the default handler or jobmeter's own; it then shuts
jobmeter's telemetry down (the last OTLP export) and dies by SIGTERM as before.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from jobmeter._core import fork, reset, sdk, signals, threads
from jobmeter.backfill import _metrics

_log = logging.getLogger("jobmeter")


class Closable(Protocol):
    def _close_at_exit(self, status: str) -> None: ...


class Ticker:
    """One daemon thread running ``(interval seconds, task)`` pairs until stopped."""

    def __init__(self, name: str, tasks: list[tuple[float, Callable[[], object]]]) -> None:
        self._tasks = tasks
        self._stop = threading.Event()
        self._failed: set[int] = set()
        self._thread = threading.Thread(target=self._run, name=f"jobmeter-backfill-{name}",
                                        daemon=True)  # fmt: skip

    def start(self) -> None:
        threads.start(self._thread)

    def _run(self) -> None:
        now = time.monotonic()
        due = [now + interval for interval, _ in self._tasks]
        while not self._stop.is_set():
            if self._stop.wait(max(min(due) - time.monotonic(), 0.0)):
                return
            now = time.monotonic()
            for i, (interval, task) in enumerate(self._tasks):
                if now >= due[i]:
                    due[i] = now + interval
                    self._run_task(i, task)

    def _run_task(self, i: int, task: Callable[[], object]) -> None:
        try:
            task()
        except Exception:  # a broken task must not end the thread or reach the job
            if i not in self._failed:
                self._failed.add(i)
                _log.warning("jobmeter: a backfill background task failed", exc_info=True)

    def stop(self) -> None:
        """Stop at the next wake-up; a task in progress finishes in the background."""
        self._stop.set()


_lock = threading.Lock()
_open: dict[int, Closable] = {}
_atexit_registered = False
_sigterm_installed = False


def register(backfill: Closable, *, on_sigterm: bool) -> None:
    """Close ``backfill`` at exit (and on SIGTERM when asked) unless it is closed before."""
    global _atexit_registered
    with _lock:
        _open[id(backfill)] = backfill
        if not _atexit_registered:
            atexit.register(_at_exit)
            fork.on_fork_in_child(_after_fork_in_child)
            reset.on_reset(_close_at_reset, reset.BACKFILLS)
            _atexit_registered = True
    if on_sigterm:
        _install_sigterm()


def unregister(backfill: Closable) -> None:
    with _lock:
        _open.pop(id(backfill), None)


def _take_open() -> list[Closable]:
    with _lock:
        found = list(_open.values())
        _open.clear()
    return found


def _uncaught_exception() -> bool:
    # The default excepthook leaves the uncaught exception here before atexit runs.
    return getattr(sys, "last_exc", None) is not None or hasattr(sys, "last_value")


def _at_exit() -> None:
    status = "failed" if _uncaught_exception() else "succeeded"
    for backfill in _take_open():
        try:
            backfill._close_at_exit(status)
        except Exception:
            _log.debug("jobmeter: closing a backfill at exit failed", exc_info=True)


def _install_sigterm() -> None:
    global _sigterm_installed
    with _lock:
        if _sigterm_installed:
            return
        _sigterm_installed = True
    if not signals.on_sigterm(_close_on_sigterm, signals.BACKFILLS):
        _log.debug("jobmeter: the application handles SIGTERM; close backfills there")
    signals.on_sigterm(_shutdown_telemetry, signals.TELEMETRY)


def _close_on_sigterm() -> None:
    for backfill in _take_open():
        try:
            backfill._close_at_exit("interrupted")
        except Exception:
            _log.debug("jobmeter: closing a backfill on SIGTERM failed", exc_info=True)


def _shutdown_telemetry() -> None:
    telemetry = sdk.current()
    if telemetry is not None:
        telemetry.shutdown()  # bounded; the last OTLP export


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    # The parent's backfills are the parent's to close; a child's own register anew.
    _open.clear()


def _close_at_reset() -> None:
    """Close open backfills as interrupted (``jobmeter.testing.reset()``)."""
    global _sigterm_installed
    for backfill in _take_open():
        backfill._close_at_exit("interrupted")
    _metrics.unpublish_all()
    with _lock:
        _sigterm_installed = False  # the reset puts the default SIGTERM handler back
