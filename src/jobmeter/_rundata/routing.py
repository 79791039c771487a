"""The switchboard between what jobmeter measures and the run being recorded, if any.

Sources (the totals behind ``measure()``, DuckDB collectors, backfills)
register when they are made (through ``sources.register``, which also joins
the run a process was started in). While a recorder is active, each source
keeps a pending list of what it measured, and the recorder drains the sources
at its interval: the job's thread only appends to a list. Without a recorder
nothing is kept, and the cost is one attribute check.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Final, Protocol

from jobmeter._core.variables import RUN

_log = logging.getLogger("jobmeter")

#: The run directory a child process records into (set by ``jobmeter run`` and ``Run``).
RUN_ENV: Final = RUN
#: Failures, and spans, kept per process and flush interval; more are counted, not listed.
MAX_EVENTS: Final = 10_000
#: Operations lasting this long or more are also kept as spans (start, end) for plots.
SPAN_MIN_S: Final = 0.1


class Source(Protocol):
    """Something that measures: it keeps pending records while a recorder is active."""

    def recording_started(self) -> None: ...

    def recording_stopped(self) -> None: ...

    def drain_into(self, recorder: Any) -> None: ...


class Events:
    """Failures or spans in the order they happened, bounded; more are counted, not kept."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []
        self.dropped = 0

    def add(self, item: tuple[Any, ...]) -> None:
        if len(self.items) < MAX_EVENTS:
            self.items.append(item)
        else:
            self.dropped += 1

    def take(self) -> list[tuple[Any, ...]]:
        items, self.items = self.items, []
        return items


_lock = threading.RLock()
_sources: weakref.WeakSet[Any] = weakref.WeakSet()
#: The active recorder (a jobmeter._rundata.recorder.Recorder), or None.
active: Any = None
#: Failures (unix time, source, name, error type) of the active recording; None when
#: nothing records. Spans: (collector, name, start, end, error type or None).
failures: Events | None = None
spans: Events | None = None


def register(source: Source) -> None:
    """Make ``source`` known; it starts keeping records at once if a run is recording."""
    with _lock:
        _sources.add(source)
        recording = active is not None
    if recording:
        source.recording_started()


def sources() -> list[Any]:
    """Every live source."""
    with _lock:
        return list(_sources)


def start(recorder: Any) -> None:
    """Route every source's records to ``recorder`` from now on."""
    global active, failures, spans
    with _lock:
        active, failures, spans = recorder, Events(), Events()
        current = list(_sources)
    for source in current:
        source.recording_started()


def stop(recorder: Any) -> None:
    """Stop routing records to ``recorder`` (after its last drain)."""
    global active, failures, spans
    with _lock:
        if active is not recorder:
            return
        active, failures, spans = None, None, None
        current = list(_sources)
    for source in current:
        source.recording_stopped()


def failure(source: str, name: str, error_type: str) -> None:
    """A measured block or statement failed (a no-op unless a run records)."""
    sink = failures
    if sink is not None:
        sink.add((time.time(), source, name, error_type))


def span(collector: str, name: str, seconds: float, error_type: str | None) -> None:
    """A block of SPAN_MIN_S or more just ended (a no-op unless a run records)."""
    sink = spans
    if sink is not None:
        end = time.time()
        sink.add((collector, name, end - seconds, end, error_type))


def after_fork_in_child() -> None:
    """A forked child keeps recording into the same run under its own pid."""
    global _lock
    _lock = threading.RLock()
    for events in (failures, spans):
        if events is not None:
            events.items.clear()
