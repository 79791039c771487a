"""The instruments of ``Backfill``, one set per meter, shared by every backfill on it.

Counts, totals and timestamps are kept by each backfill under its own lock
and published through asynchronous instruments when a reader collects, so
that counting an item costs a couple of attribute increments. Histograms
(item and batch times, batch sizes, Retry-After, HTTP requests) are recorded
as they happen. Backfills with the same name and attributes that are open at
the same time are merged into one series (counts and rates summed); a new one
replaces closed ones of the same identity.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import fork
from jobmeter._core.otel_private import installed_provider, is_proxy_meter
from jobmeter.backfill._snapshot import OVERFLOW, Snapshot
from jobmeter.collector._totals import DURATION_BUCKETS, Key

_log = logging.getLogger("jobmeter")

NAME: Final = "jobmeter.backfill.name"
OUTCOME: Final = "jobmeter.backfill.outcome"
REASON: Final = "jobmeter.backfill.reason"
ERROR_TYPE: Final = "error.type"
# Items per batch, from single items to a million rows.
BATCH_SIZE_BUCKETS: Final = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000,
    100_000, 200_000, 500_000, 1_000_000,
)  # fmt: skip

Attrs = dict[str, AttributeValue]


class Source(Protocol):
    """What the instruments read from a backfill."""

    _key: Key
    _base: Attrs

    @property
    def closed(self) -> bool: ...
    def _snapshot(self) -> Snapshot: ...


def labelled(base: Attrs, name: str, label: str, **extra: AttributeValue) -> Attrs:
    """``base`` plus ``extra`` plus ``name=label``, or the overflow marker for folded labels."""
    if label == OVERFLOW:
        return {**base, **extra, OVERFLOW: True}
    return {**base, **extra, name: label}


def _observe_items(base: Attrs, s: Snapshot) -> Iterable[Observation]:
    yield Observation(s.done, {**base, OUTCOME: "done"})
    yield Observation(s.skipped, {**base, OUTCOME: "skipped"})
    for label, n in s.failed.items():
        yield Observation(n, labelled(base, ERROR_TYPE, label, **{OUTCOME: "failed"}))


def _by_reason(field: str) -> Callable[[Attrs, Snapshot], Iterable[Observation]]:
    def observe(base: Attrs, s: Snapshot) -> Iterable[Observation]:
        counts: dict[str, int] = getattr(s, field)
        return [Observation(n, labelled(base, REASON, label)) for label, n in counts.items()]

    return observe


def _value(read: Callable[[Snapshot], float | None]) -> Callable[[Attrs, Snapshot], list[Any]]:
    def observe(base: Attrs, s: Snapshot) -> list[Any]:
        value = read(s)
        return [] if value is None else [Observation(value, base)]

    return observe


# (name, kind, unit, description, observe(base attributes, snapshot))
ASYNC_METRICS: Final = (
    ("jobmeter.backfill.items", "counter", "{item}",
     "Items finished, by jobmeter.backfill.outcome (done, failed, skipped); failures by "
     "error.type.", _observe_items),
    ("jobmeter.backfill.items.planned", "up_down_counter", "{item}",
     "Items the backfill plans to process (its total), when known.", _value(lambda s: s.total)),
    ("jobmeter.backfill.progress", "gauge", "1",
     "Finished items over planned items, 0 to 1, when the total is known.",
     _value(lambda s: s.progress)),
    ("jobmeter.backfill.rate", "gauge", "{item}/s",
     "Finished items per second, exponentially smoothed (see docs/backfill.md).",
     _value(lambda s: s.rate)),
    ("jobmeter.backfill.eta", "gauge", "s",
     "Estimated seconds until the planned items are finished: remaining / rate.",
     _value(lambda s: s.eta)),
    ("jobmeter.backfill.retries", "counter", "{retry}",
     "Retries, by jobmeter.backfill.reason.", _by_reason("retries")),
    ("jobmeter.backfill.rate_limit.hits", "counter", "{hit}",
     "Times the backfill was rate limited (throttled), by jobmeter.backfill.reason.",
     _by_reason("rate_limit_hits")),
    ("jobmeter.backfill.queue.size", "up_down_counter", "{item}",
     "Items waiting in the backfill's queue, when reported.", _value(lambda s: s.queue)),
    ("jobmeter.backfill.start.timestamp", "gauge", "s",
     "When the backfill first started (Unix time; kept across resumes).",
     _value(lambda s: s.started)),
    ("jobmeter.backfill.last_success.timestamp", "gauge", "s",
     "When the backfill last ended without an exception (Unix time).",
     _value(lambda s: s.last_success)),
    ("jobmeter.backfill.deadline.timestamp", "gauge", "s",
     "When the backfill should be finished (Unix time), when a deadline was given.",
     _value(lambda s: s.deadline)),
)  # fmt: skip


class Instruments:
    """The backfill instruments of one meter and the backfills they read."""

    def __init__(self, meter: Meter, *, on_global_provider: bool = False) -> None:
        self._on_global = on_global_provider
        self._lock = threading.Lock()
        # Each backfill with the global MeterProvider it was made under (None: none yet).
        self._sources: list[tuple[Source, object]] = []
        self._failed_once = False
        seconds = list(DURATION_BUCKETS)
        self.item_duration = meter.create_histogram(
            "jobmeter.backfill.item.duration", unit="s",
            description="Time the loop body took for each item of Backfill.track().",
            explicit_bucket_boundaries_advisory=seconds,
        )  # fmt: skip
        self.batch_duration = meter.create_histogram(
            "jobmeter.backfill.batch.duration", unit="s",
            description="Time each batch took (Backfill.batch() blocks).",
            explicit_bucket_boundaries_advisory=seconds,
        )  # fmt: skip
        self.batch_size = meter.create_histogram(
            "jobmeter.backfill.batch.size", unit="{item}",
            description="Items per batch.",
            explicit_bucket_boundaries_advisory=list(BATCH_SIZE_BUCKETS),
        )  # fmt: skip
        self.retry_after = meter.create_histogram(
            "jobmeter.backfill.rate_limit.retry_after", unit="s",
            description="How long a rate-limited backfill was asked to wait (Retry-After).",
            explicit_bucket_boundaries_advisory=seconds,
        )  # fmt: skip
        self.http_duration = meter.create_histogram(
            "http.client.request.duration", unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=seconds,
        )  # fmt: skip
        create = {
            "counter": meter.create_observable_counter,
            "gauge": meter.create_observable_gauge,
            "up_down_counter": meter.create_observable_up_down_counter,
        }
        for name, kind, unit, description, observe in ASYNC_METRICS:
            create[kind](name, [self._callback(observe)], unit=unit, description=description)
        fork.on_fork_in_child_weak(self, "_after_fork_in_child")

    def add(self, source: Source) -> None:
        """Publish ``source``; closed backfills of the same identity stop being published."""
        made_under = installed_provider() if self._on_global else None
        with self._lock:
            self._sources = [
                (s, p) for s, p in self._sources if not (s.closed and s._key == source._key)
            ] + [(source, made_under)]

    def _groups(self) -> list[tuple[Attrs, Snapshot]]:
        # Read afresh at every callback: a cached copy could miss the last items at shutdown.
        # A backfill made under an earlier global provider (tests reset it) is not this one's.
        current = installed_provider() if self._on_global else None
        with self._lock:
            self._sources = [(s, p) for s, p in self._sources if p is None or p is current]
            sources = [s for s, _ in self._sources]
        grouped: dict[Key, tuple[Attrs, list[Snapshot]]] = {}
        for source in sources:
            grouped.setdefault(source._key, (source._base, []))[1].append(source._snapshot())
        return [(base, Snapshot.merge(snaps)) for base, snaps in grouped.values()]

    def _callback(
        self, observe: Callable[[Attrs, Snapshot], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            # The SDK logs a failing callback as an ERROR at every collection: once is enough.
            try:
                return [point for base, s in self._groups() for point in observe(base, s)]
            except Exception:
                if not self._failed_once:
                    self._failed_once = True
                    _log.warning("jobmeter: backfill metrics failed; skipped", exc_info=True)
                return []

        return callback

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()


# Backfills on the global provider share one set of instruments per name, made
# with a proxy meter (before configure()) or the real one. A proxy meter's
# instruments are re-bound by OTel to every provider set later and keep the
# name there, so a later set made with the real meter would be dropped by the
# SDK as a duplicate. Explicit providers get one set per meter.
_global: dict[str, tuple[Meter, Instruments]] = {}
_by_meter: weakref.WeakKeyDictionary[Meter, Instruments] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_hooked = False


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


def instruments_for(name: str, meter: Meter, *, global_provider: bool) -> Instruments:
    """The one set of backfill instruments of ``meter``."""
    global _hooked
    with _lock:
        if not _hooked:  # on first use, never at import
            fork.on_fork_in_child(_after_fork_in_child)
            _hooked = True
        if not global_provider:
            found = _by_meter.get(meter)
            if found is None:
                found = _by_meter[meter] = Instruments(meter)
            return found
        known = _global.get(name)
        # A real meter of an earlier global provider (tests reset it) is stale.
        if known is None or not (is_proxy_meter(known[0]) or known[0] is meter):
            known = _global[name] = (meter, Instruments(meter, on_global_provider=True))
        return known[1]


def clear_for_tests() -> None:
    """Stop publishing every backfill; forget instruments bound to a real global meter."""
    with _lock:
        for name, (meter, _) in list(_global.items()):
            if not is_proxy_meter(meter):
                del _global[name]
        every = [i for _, i in _global.values()] + list(_by_meter.values())
    for instruments in every:
        with instruments._lock:
            instruments._sources = []
