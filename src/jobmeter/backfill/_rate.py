"""Smoothed items per second and the time left, on a clock that tests can script.

The rate is an exponentially weighted mean of the instantaneous rates between
updates, with weights that decay with time (time constant ``window``, in
seconds) and a bias correction for the start. With ``c_k`` items counted at
clock time ``t_k`` (``k = 0`` is the backfill's start)::

    dt_k = t_k - t_{k-1}          w_k = exp(-dt_k / window)
    S_k  = w_k * S_{k-1} + (1 - w_k) * (c_k - c_{k-1}) / dt_k
    W_k  = w_k * W_{k-1} + (1 - w_k)          S_0 = W_0 = 0
    rate_k = S_k / W_k            (none before the first update with dt_k > 0)

While the backfill is young (``t - t_0`` much less than the window) this is
the plain mean ``(c - c_0) / (t - t_0)``; later, an item ``age`` seconds old
weighs ``exp(-age / window)``, so the rate follows a change of pace within
about one window. Updates may come at any times (a scrape, a progress
refresh, a log line): the weights depend on elapsed time, not on the number
of updates. ETA is ``(total - completed) / rate``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from jobmeter._core import waits

Clock = Callable[[], float]


class SmoothedRate:
    """The smoothed rate of a count that only grows; thread-safe."""

    __slots__ = ("_clock", "_count", "_lock", "_s", "_time", "_w", "window")

    def __init__(self, count: float, *, window: float, clock: Clock) -> None:
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._time = clock()
        self._count = count
        self._s = 0.0
        self._w = 0.0

    def update(self, count: float) -> float | None:
        """Take the count now; return the smoothed rate (None before any time has passed)."""
        now = self._clock()
        # A SIGTERM handler may interrupt this thread inside the lock: then read, not update.
        with waits.held_or_not(self._lock) as locked:
            if not locked:
                return self._s / self._w if self._w > 0 else None
            dt = now - self._time
            if dt > 0:
                weight = math.exp(-dt / self.window)
                instant = (count - self._count) / dt
                self._s = weight * self._s + (1.0 - weight) * instant
                self._w = weight * self._w + (1.0 - weight)
                self._time = now
                self._count = count
            elif count < self._count:  # a restart of the count (fork): follow it
                self._count = count
            return self._s / self._w if self._w > 0 else None

    def restart(self, count: float) -> None:
        """Forget the history (in a forked child): the next rate is measured from ``count`` now."""
        self._lock = threading.Lock()  # a parent thread may have held it at fork time
        self._time = self._clock()
        self._count = count
        self._s = self._w = 0.0


def eta(remaining: int | None, rate: float | None) -> float | None:
    """Seconds until ``remaining`` items are done at ``rate``; None when unknown."""
    if remaining is None:
        return None
    if remaining <= 0:
        return 0.0
    if rate is None or rate <= 0:
        return None
    return remaining / rate


def format_duration(seconds: float | None) -> str:
    """``2d03h``, ``1h02m``, ``3m05s``, ``12s``, ``<1s``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if 0 < seconds < 0.5:
        return "<1s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        days, hours = divmod(hours, 24)
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_rate(rate: float | None, unit: str) -> str:
    """``12.3 items/s``-style text, with three significant figures."""
    if rate is None:
        return f"? {unit}/s"
    if rate >= 100:
        return f"{rate:,.0f} {unit}/s"
    return f"{rate:.3g} {unit}/s"


def plural(unit: str) -> str:
    """The plural of an English unit name, for display: item → items, batch → batches."""
    if unit.endswith(("s", "x", "ch", "sh")):
        return unit + "es"
    return unit + "s"
