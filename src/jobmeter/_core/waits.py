"""Waiting without holding the job: calls bounded in time, and locks a handler may find held.

Two situations recur wherever jobmeter talks to the outside or shares state
with a signal handler:

- A call that may hang (an export to a dead collector, a push to a gateway
  whose DNS does not answer, Comet retrying): ``bounded()`` runs it in a
  daemon thread and stops waiting after a timeout; the abandoned thread never
  holds the interpreter at exit.
- A lock that the thread asking for it may already hold: Python runs a
  SIGTERM handler in the main thread between two bytecodes, possibly inside
  the very block that holds the lock its final export needs. ``held_or_not()``
  waits a moment, then lets the reader go on without the lock (a copy of a
  list or a few numbers: at worst a value a moment old).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from jobmeter._core import threads

_log = logging.getLogger("jobmeter")

T = TypeVar("T")

#: How long a reader waits for a lock before it reads without it.
LOCK_WAIT_S = 0.1


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How a bounded call ended: ``finished`` in time, with its ``value`` or its ``error``."""

    finished: bool
    value: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Finished in time without raising."""
        return self.finished and self.error is None


def bounded(action: Callable[[], T], timeout_s: float, name: str) -> Outcome[T]:
    """Run ``action`` in a daemon thread called ``name``; wait at most ``timeout_s``.

    Never raises: an exception of ``action`` is the outcome's ``error``. A call
    still running after the timeout goes on in the background, abandoned.
    """
    done = threading.Event()
    results: list[T] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            results.append(action())
        except Exception as error:
            errors.append(error)
        finally:
            done.set()

    threads.start(threading.Thread(target=run, name=name, daemon=True))
    if not done.wait(timeout_s):
        return Outcome(False)
    if errors:
        return Outcome(True, error=errors[0])
    return Outcome(True, results[0] if results else None)


@contextlib.contextmanager
def held_or_not(lock: threading.Lock | threading.RLock, timeout_s: float = LOCK_WAIT_S
                ) -> Iterator[bool]:  # fmt: skip
    """Hold ``lock`` for the block if it can be had within ``timeout_s``; yield whether it is.

    For readers only: a block that finds the lock taken must still be right
    without it (it copies, it does not change).
    """
    locked = lock.acquire(timeout=timeout_s)
    try:
        yield locked
    finally:
        if locked:
            lock.release()


def quietly(action: Callable[[], object]) -> None:
    """Run ``action``; an exception is logged at debug level (cleaning up must not fail)."""
    try:
        action()
    except Exception:
        _log.debug("jobmeter: ignored error during shutdown", exc_info=True)
