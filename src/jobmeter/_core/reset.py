"""The one way back to a clean process (``jobmeter.testing.reset()``): every part that keeps state
registers what it must forget.

Hooks run by order: open backfills close first (they push and export as they
close), then telemetry shuts down and OpenTelemetry's globals are reset, then
collectors forget their figures, so that what one test recorded is never
published to the next test's provider. A part registers on first use, never
at import.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_log = logging.getLogger("jobmeter")

BACKFILLS, TELEMETRY, FIGURES = 0, 50, 100

_lock = threading.Lock()
_hooks: dict[Callable[[], None], int] = {}


def on_reset(hook: Callable[[], None], order: int) -> None:
    """Have ``reset()`` call ``hook`` (once, however often it is registered)."""
    with _lock:
        _hooks.setdefault(hook, order)


def reset(*, close_backfills: bool = True) -> None:
    """Shut down and forget jobmeter's and OpenTelemetry's global metrics state (for tests).

    Args:
        close_backfills: also close the open backfills (as interrupted) and stop
            publishing them; False keeps them open, to be published by the
            provider configured next (``jobmeter.testing.in_memory()``).
    """
    first = BACKFILLS if close_backfills else TELEMETRY
    with _lock:
        hooks = sorted(_hooks.items(), key=lambda item: item[1])
    for hook, order in hooks:
        if order >= first:
            hook()
