"""Leaving without losing data or holding the job: bounded waits and the SIGTERM flush."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

_log = logging.getLogger("jobmeter")

# How far past the export timeout shutdown() and force_flush() may run.
GRACE_S = 0.5


_DEFERRED = {signal.SIGTERM, signal.SIGINT}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends (in the main thread; elsewhere a no-op).

    Python runs signal handlers in the main thread between any two bytecodes:
    a handler that flushes (or re-enters the code it interrupted, holding a
    lock) could end the process between taking records and writing them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:
        _log.debug("jobmeter: ignored error during shutdown", exc_info=True)


def bounded(what: str, action: Callable[[], object], budget_ms: float) -> bool:
    """Run ``action`` in a daemon thread; give up after the budget plus GRACE_S."""
    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except Exception as error:
            failed.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"jobmeter-{what}", daemon=True).start()
    if not done.wait(budget_ms / 1000.0 + GRACE_S):
        _log.warning(
            "jobmeter: %s did not finish within %.0f ms (collector down or slow?); "
            "the last export is dropped and the program goes on",
            what,
            budget_ms,
        )
        return False
    if failed:
        _log.warning("jobmeter: %s failed: %s", what, failed[0])
        return False
    return True


# Callbacks run by jobmeter's SIGTERM handler, by order: backfills close (0), the
# run being recorded writes its last records (50), telemetry exports (100).
BACKFILLS, RUN_RECORD, TELEMETRY = 0, 50, 100
_callbacks: dict[Callable[[], object], int] = {}
_previous: object = None


def on_sigterm(callback: Callable[[], object], order: int) -> bool:
    """Run ``callback`` when SIGTERM ends the process, then die by SIGTERM as before.

    The handler is installed from the main thread only, over the default
    handler or jobmeter's own; an application that handles SIGTERM itself keeps
    it (its exit runs atexit, where jobmeter flushes too). Returns whether the
    handler is in place.
    """
    global _previous
    _callbacks[callback] = order
    if threading.current_thread() is not threading.main_thread():
        return is_our_sigterm_handler(signal.getsignal(signal.SIGTERM))
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current is not signal.SIG_DFL:
        return False
    _previous = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def install_sigterm_flush(shutdown: Callable[[], object]) -> None:
    """On SIGTERM, export the last data before dying, if nobody else handles SIGTERM."""
    on_sigterm(shutdown, TELEMETRY)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    for callback, _ in sorted(_callbacks.items(), key=lambda item: item[1]):
        quietly(callback)
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def is_our_sigterm_handler(handler: object) -> bool:
    """Whether ``handler`` is jobmeter's SIGTERM handler."""
    return handler is _on_sigterm


def remove_sigterm_handler() -> None:
    """Put the default SIGTERM handler back and forget the callbacks (tests' reset)."""
    _callbacks.clear()
    if is_our_sigterm_handler(signal.getsignal(signal.SIGTERM)):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
