"""The peak memory of measured blocks, from the kernel's resettable high-water mark.

Linux keeps the process's peak RSS (``VmHWM``, also in ``ru_maxrss``) and resets
it to the current RSS when 5 is written to ``/proc/self/clear_refs``. Every
block that wants its peak opens a *window*: a reading of the high-water mark
is taken, credited to every window already open, and the mark is reset; when a
window closes, one more reading is credited to every open window. So each
block's peak is the largest of all readings taken while it was open, and every
reading covers the time since the previous reset, which no open window
predates: the peak is the process's peak RSS while the block ran, whichever
thread allocated it, in nested and concurrent blocks alike.

A reading is ``ru_maxrss`` (the ``getrusage`` that ``measure()`` takes anyway),
except where the kernel pinned it: a thread that exits saves the mark of that
moment in ``ru_maxrss``, which a reset does not lower. When a reset leaves
``ru_maxrss`` above the current RSS, readings come from ``VmHWM`` instead (8 us
against 1 us).

A reset lowers the lifetime peak the kernel reports (``ru_maxrss``, ``VmHWM``,
``wait4``, ``/usr/bin/time``). So each reading before a reset is kept as this
process's lifetime peak (``lifetime_peak()``), and while a run records its
recorder leaves it in the run directory (``peak.<pid>``, ``publish()``) at every
interval and at the end, where the run's summary finds it.

Where ``clear_refs`` cannot be written (not Linux, a read-only ``/proc``, a
kernel before 4.0), a window's peak is the lifetime mark at its end if the
block raised it, else the larger of the RSS at its start and end: exact for a
block that set a new record, a lower bound for the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import threading
from pathlib import Path
from typing import Final

from jobmeter._core import fork, probes
from jobmeter._rundata import layout

_log = logging.getLogger("jobmeter")

_getrusage = resource.getrusage
_SELF = resource.RUSAGE_SELF
#: ru_maxrss above the RSS a reset left by more than this means the kernel pinned it.
_PINNED_SLACK: Final = 1 << 20
_KIB: Final = 1024
_hooked = False


class Window:
    """One open block's view of the peak: the largest reading credited to it.

    ``usage`` and ``rss`` are the readings taken at its start, which the block
    uses as its own start figures (one getrusage less).
    """

    __slots__ = ("peak", "rss", "start_mark", "usage")

    def __init__(self, usage: resource.struct_rusage, rss: int) -> None:
        self.usage = usage
        self.rss = self.peak = rss
        self.start_mark = usage.ru_maxrss * _KIB  # the lifetime mark then (fallback only)


class _Tracker:
    """The process's open windows and its view of the high-water mark."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[Window] = []
        self.lifetime = 0
        self.published = 0
        self.published_to: str | None = None
        self.clear_fd = -1
        self.status_fd = -1
        self.resettable: bool | None = None  # None: not tried yet
        self.pinned = False
        self.published_at = float("-inf")  # monotonic s, by publish_block_peak

    def _open_files(self) -> None:
        global _hooked
        if not _hooked:  # at first use: importing jobmeter installs no fork hook
            fork.on_fork_in_child(_after_fork_in_child)
            _hooked = True
        try:
            self.clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
            os.write(self.clear_fd, b"5")
            self.status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
            self.resettable = True
        except OSError as error:
            self.close_files()
            self.resettable = False
            _log.debug("jobmeter: cannot reset the peak RSS (%s); block peaks are lower "
                       "bounds unless a block sets a new peak", error)  # fmt: skip

    def close_files(self) -> None:
        for fd in (self.clear_fd, self.status_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.clear_fd = self.status_fd = -1

    def reading(self) -> int:
        """The high-water mark since the last reset, in bytes."""
        if self.pinned:
            try:
                data = os.pread(self.status_fd, 4096, 0)
                at = data.index(b"VmHWM:")
                return int(data[at + 6 : data.index(b"kB", at)]) * _KIB
            except (OSError, ValueError):
                self.pinned = False  # the file went away: ru_maxrss is all there is
        return _getrusage(_SELF).ru_maxrss * _KIB

    def credit(self, value: int) -> None:
        for window in self.open:
            if value > window.peak:
                window.peak = value

    def reset(self) -> bool:
        """Reset the mark to the current RSS; False where it cannot be."""
        try:
            os.write(self.clear_fd, b"5")
        except OSError:
            self.close_files()
            self.resettable = False
            return False
        return True

    def keep_lifetime(self, value: int) -> None:
        # Published by the run's recorder at its interval (publish()), not here: a
        # growing job would write a file every few blocks.
        if value > self.lifetime:
            self.lifetime = value

    def publish(self, directory: Path) -> None:
        """Leave the lifetime peak in the run directory, since resets hid it from the kernel."""
        lifetime = self.lifetime
        target = str(directory)
        if lifetime <= self.published and target == self.published_to:
            return
        try:
            layout.write_peak(layout.peak_file(Path(directory), os.getpid()), lifetime)
        except OSError:
            return  # the run directory's own writers report a full or missing disk
        self.published, self.published_to = lifetime, target


_tracker = _Tracker()


def open_window() -> Window:
    """Start a block's peak: credit the open windows, reset the mark, add this one."""
    tracker = _tracker
    with tracker.lock:
        if tracker.resettable is None:
            tracker._open_files()
        if tracker.resettable:
            before = tracker.reading()
            tracker.credit(before)
            tracker.keep_lifetime(before)
            if tracker.reset():
                window = Window(_getrusage(_SELF), probes.rss_bytes())
                # A reset sets the mark to the RSS now; more means a thread's exit pinned it.
                tracker.pinned = window.start_mark > window.rss + _PINNED_SLACK
                tracker.open.append(window)
                return window
        window = Window(_getrusage(_SELF), probes.rss_bytes())
        tracker.open.append(window)
        return window


def close_window(window: Window, rss_now: int, mark_now: int) -> int:
    """End a block's peak: one more reading for every open window; this one's peak, bytes.

    ``rss_now`` and ``mark_now`` (``ru_maxrss`` in bytes) come from the readings the
    block took at its end anyway.
    """
    tracker = _tracker
    with tracker.lock:
        if tracker.resettable:
            value = tracker.reading() if tracker.pinned else mark_now
            tracker.credit(max(value, rss_now))
        with contextlib.suppress(ValueError):  # a fork's child starts with no windows
            tracker.open.remove(window)
        if not tracker.resettable:
            risen = mark_now if mark_now > window.start_mark else 0
            window.peak = max(window.peak, rss_now, risen)
        return window.peak


def publish(directory: Path) -> None:
    """Leave this process's lifetime peak in a run directory if it rose (the recorder's
    interval and its end; a crash loses at most one interval, as of every record)."""
    tracker = _tracker
    with tracker.lock:
        if tracker.lifetime <= tracker.published and str(directory) == tracker.published_to:
            return
    tracker.publish(directory)


def publish_block_peak(peak: int, directory: Path, now: float) -> None:
    """Count a closed block's peak in the lifetime peak (blocks measured outside
    ``measure()``, which no recorder drain publishes); publish it at most once a second,
    since each publication writes a file. ``UsageMeter.publish_peak`` publishes the rest."""
    tracker = _tracker
    with tracker.lock:
        tracker.keep_lifetime(peak)
        if now - tracker.published_at < 1.0:
            return
        tracker.published_at = now
    publish(directory)


def lifetime_peak() -> int:
    """This process's peak RSS since it started, in bytes, resets included."""
    tracker = _tracker
    with tracker.lock:
        now = tracker.reading() if tracker.resettable else _getrusage(_SELF).ru_maxrss * _KIB
        tracker.keep_lifetime(now)
        return tracker.lifetime


def _after_fork_in_child() -> None:
    global _tracker
    _tracker = _Tracker()  # the parent's files and windows are the parent's
