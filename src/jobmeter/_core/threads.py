"""jobmeter's background threads block SIGTERM and SIGINT, so the main thread receives them.

Linux hands a signal sent to the process to any thread that does not block it.
CPython runs Python handlers only in the main thread. A signal that reaches
another thread sets a flag, and the main thread sees that flag only the next
time it runs bytecode. A main thread that is waiting on a lock, a pipe or a
child may never do so. Before this module, a forked ``multiprocessing.Pool``
worker that had recorded into a run stayed blocked in ``SimpleQueue.get``
after ``Pool.terminate()`` sent it SIGTERM, and ``Pool.__exit__`` hung.

A program without jobmeter dies of that SIGTERM whatever thread it reaches.
jobmeter's handler (``signals.on_sigterm``) must keep that true, so every
thread jobmeter starts blocks the two signals. Blocking is inherited: a thread
gets the signal mask of the thread that starts it. The threads that libraries
start on jobmeter's behalf (the OTel SDK's export thread, gRPC's) are created
inside ``masked()``. ``mask_threads_across_fork`` covers the export threads
that the SDK restarts in a forked child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_CAN_MASK = hasattr(signal, "pthread_sigmask")
_saved = threading.local()
_fork_hooks_installed = False


@contextlib.contextmanager
def masked() -> Iterator[None]:
    """Block SIGTERM and SIGINT in this thread for the block. Threads started inside it
    keep them blocked. One that arrives meanwhile waits and is handled when the block ends."""
    if not _CAN_MASK:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start(thread: threading.Thread) -> threading.Thread:
    """Start ``thread`` with SIGTERM and SIGINT blocked in it, and return it."""
    with masked():
        thread.start()
    return thread


def block_for_fork() -> None:
    """A fork hook's ``before``: block SIGTERM and SIGINT until ``restore_after_fork``.

    Each call saves the mask it found on a stack of this thread's. Fork hooks run
    ``before`` in the reverse order of registration and ``after`` in the order of
    registration, so every pair of hooks restores what it saved.
    """
    if _CAN_MASK:
        _saved.__dict__.setdefault("masks", []).append(
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        )


def restore_after_fork() -> None:
    """A fork hook's ``after_in_parent`` or ``after_in_child``: the mask of the matching
    ``block_for_fork``."""
    masks = _saved.__dict__.get("masks")
    if masks:
        signal.pthread_sigmask(signal.SIG_SETMASK, masks.pop())


def mask_threads_across_fork() -> None:
    """Threads that fork handlers registered before this call start in a child block the
    signals too.

    ``before`` hooks run in the reverse order of registration and ``after`` hooks in
    the order of registration. The pair registered here therefore blocks the signals
    before every earlier hook runs and unblocks them after every earlier hook has run,
    the SDK's thread restarts included. Call it once those hooks are registered.
    Later calls do nothing.
    """
    global _fork_hooks_installed
    if _fork_hooks_installed or not _CAN_MASK or not hasattr(os, "register_at_fork"):
        return
    _fork_hooks_installed = True
    os.register_at_fork(
        before=block_for_fork,
        after_in_parent=restore_after_fork,
        after_in_child=restore_after_fork,
    )
