"""jobmeter's one SIGTERM handler, and holding SIGTERM and SIGINT while records are written."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from jobmeter._core import sigterm_watch, threads, waits

_log = logging.getLogger("jobmeter")


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends (in the main thread; elsewhere a no-op).

    Python runs signal handlers in the main thread between any two bytecodes:
    a handler that flushes (or re-enters the code it interrupted, holding a
    lock) could end the process between taking records and writing them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with threads.masked():
        yield


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
    if current is not _on_sigterm:
        if current is not signal.SIG_DFL:
            return False
        _previous = current
        signal.signal(signal.SIGTERM, _on_sigterm)
    # A SIGTERM that comes just as the main thread starts a wait must still end it.
    sigterm_watch.watch(lambda: _handling, _ours)
    return True


def _ours() -> bool:
    return is_our_sigterm_handler(signal.getsignal(signal.SIGTERM))


_handling = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _handling
    if _handling:
        return  # sent again while the handler runs: it ends the process when done
    _handling = True
    for callback, _ in sorted(_callbacks.items(), key=lambda item: item[1]):
        waits.quietly(callback)
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def is_our_sigterm_handler(handler: object) -> bool:
    """Whether ``handler`` is jobmeter's SIGTERM handler."""
    return handler is _on_sigterm


def remove_sigterm_handler() -> None:
    """Put the default SIGTERM handler back and forget the callbacks (tests' reset)."""
    global _handling
    _handling = False
    _callbacks.clear()
    if is_our_sigterm_handler(signal.getsignal(signal.SIGTERM)):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
