"""One place for what a forked child must redo, so that it measures itself.

A child inherits its parent's open files, aggregates and identity. Modules
register a callback here; the single ``os.register_at_fork`` hook (installed on
first use, never at import) runs them in registration order in the child.
``generation`` counts forks in this line of processes: a block that started
before a fork sees a different value when it ends in the child.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

_log = logging.getLogger("jobmeter")

generation = 0
_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()
_installed = False


def on_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every forked child (kept strongly; use for module state)."""
    global _installed
    with _lock:
        _callbacks.append(callback)
        if not _installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_run_in_child)
            _installed = True


def on_fork_in_child_weak(owner: object, method_name: str) -> None:
    """Call ``owner.method_name()`` in a forked child while ``owner`` is alive."""
    ref = weakref.ref(owner)

    def call() -> None:
        target = ref()
        if target is not None:
            getattr(target, method_name)()

    on_fork_in_child(call)


def _run_in_child() -> None:
    global generation, _lock
    generation += 1
    _lock = threading.Lock()
    for callback in _callbacks:
        try:
            callback()
        except Exception:  # a broken hook must not break the child
            _log.warning("jobmeter: a fork hook failed", exc_info=True)
