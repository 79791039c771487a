"""Leaving without losing data or holding the job: bounded waits and the SIGTERM flush."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

_log = logging.getLogger("jobmeter")

# How far past the export timeout shutdown() and force_flush() may run.
GRACE_S = 0.5


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


def install_sigterm_flush(shutdown: Callable[[], object]) -> None:
    """On SIGTERM, export the last data before dying, if nobody else handles SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        shutdown()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def is_our_sigterm_handler(handler: object) -> bool:
    """Whether ``handler`` is the one install_sigterm_flush() installed."""
    return getattr(handler, "__qualname__", "").startswith("install_sigterm_flush")
