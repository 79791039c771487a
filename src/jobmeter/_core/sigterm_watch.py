"""A SIGTERM must end the process when the main thread is waiting in a lock, as the default
action does.

CPython's C handler only records a signal. The Python handler runs later, in
the main thread, between two bytecodes, or when a blocking call returns with
EINTR. Sometimes the signal comes just after the main thread has last checked
for signals and just before it starts to wait: ``sem_wait``, a lock, a pipe.
The C handler then runs before the wait begins, the wait is never
interrupted, and the Python handler never runs. A ``multiprocessing.Pool``
worker blocked in ``SimpleQueue.get`` outlived ``Pool.terminate()``'s SIGTERM
about once in 80 runs that way, and ``Pool.__exit__`` hung. A process with the
default disposition dies whatever it is doing.

So, while jobmeter's handler is installed, this module takes the wakeup fd
(``signal.set_wakeup_fd``), which receives the number of each signal that was
recorded. A thread reads it. If jobmeter's handler has not started 0.2 s after
a SIGTERM, the thread sends SIGTERM again to the main thread alone, which
interrupts its wait. An application that set the wakeup fd first (asyncio's
loop) keeps it, and gets no such help. A forked child gets a pipe and a
thread of its own: one shared with the parent would make the parent act on
the child's signal. SIGTERM is blocked from just before the fork until the
child has its pipe, so that no child signal is written to the parent's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

from jobmeter._core import threads

#: How long the main thread may take to start the handler before the signal is sent again.
RESEND_AFTER_S = 0.2

_watching_pid: int | None = None
_pipe: tuple[int, int] | None = None
_checks: tuple[Callable[[], bool], Callable[[], bool]] | None = None
_lock = threading.Lock()


def watch(handling: Callable[[], bool], ours: Callable[[], bool]) -> None:
    """Start watching, from the main thread, once per process.

    ``handling()`` says whether jobmeter's handler has started, and ``ours()``
    whether SIGTERM's handler is still jobmeter's. While the handler is someone
    else's, the thread does nothing.
    """
    global _watching_pid, _pipe, _checks
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if _watching_pid == os.getpid():
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            _close(read_fd, write_fd)
            return
        if previous != -1:  # the application's: left to it
            signal.set_wakeup_fd(previous)
            _close(read_fd, write_fd)
            return
        if _checks is None and hasattr(os, "register_at_fork"):
            # SIGTERM waits from just before the fork until the child has its own pipe:
            # one written to the parent's would make the parent's thread act on it.
            os.register_at_fork(before=threads.block_for_fork,
                                after_in_parent=threads.restore_after_fork,
                                after_in_child=_after_fork_in_child)  # fmt: skip
        _watching_pid, _pipe, _checks = os.getpid(), (read_fd, write_fd), (handling, ours)
        main = threading.main_thread().ident
        assert main is not None
        thread = threading.Thread(target=_resend, args=(read_fd, main, handling, ours),
                                  name="jobmeter-sigterm", daemon=True)  # fmt: skip
        threads.start(thread)


def _resend(
    read_fd: int, main: int, handling: Callable[[], bool], ours: Callable[[], bool]
) -> None:
    while True:
        try:
            received = os.read(read_fd, 512)
        except OSError:
            return
        if not received:
            return
        if signal.SIGTERM not in received:
            continue
        time.sleep(RESEND_AFTER_S)
        while not handling() and ours():
            signal.pthread_kill(main, signal.SIGTERM)  # interrupts the main thread's wait
            time.sleep(RESEND_AFTER_S)


def _after_fork_in_child() -> None:
    # The wakeup fd is the parent's pipe, and its reader thread is not here: get our own.
    global _watching_pid, _pipe
    try:
        inherited, _pipe, _watching_pid = _pipe, None, None
        if inherited is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(-1)
            _close(*inherited)
            if _checks is not None and _checks[1]():
                watch(*_checks)
    finally:
        threads.restore_after_fork()


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
