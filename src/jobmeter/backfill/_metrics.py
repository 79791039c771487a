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
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core.instruments import Instrument, Key, PerMeter, histogram, observe
from jobmeter._core.otel_private import installed_provider
from jobmeter.backfill._snapshot import OVERFLOW, Snapshot

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
Observe = Callable[[Attrs, Snapshot], Iterable[Observation]]


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


def _observe_retried(base: Attrs, s: Snapshot) -> Iterable[Observation]:
    # Only once a failed item was processed again: most backfills never do.
    if s.retried_total:
        for outcome in ("done", "failed", "skipped"):
            yield Observation(s.retried.get(outcome, 0), {**base, OUTCOME: outcome})


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


# Recorded as they happen; docs/metrics.md lists them.
ITEM_DURATION: Final = Instrument(
    "jobmeter.backfill.item.duration",
    "histogram",
    "s",
    "Time the loop body took for each item of Backfill.track().",
)
BATCH_DURATION: Final = Instrument(
    "jobmeter.backfill.batch.duration",
    "histogram",
    "s",
    "Time each batch took (Backfill.batch() blocks).",
)
BATCH_SIZE: Final = Instrument(
    "jobmeter.backfill.batch.size", "histogram", "{item}", "Items per batch."
)
RETRY_AFTER: Final = Instrument(
    "jobmeter.backfill.rate_limit.retry_after",
    "histogram",
    "s",
    "How long a rate-limited backfill was asked to wait (Retry-After).",
)
HTTP_DURATION: Final = Instrument(
    "http.client.request.duration", "histogram", "s", "Duration of HTTP client requests."
)
# (instrument, observe(base attributes, snapshot)); docs/metrics.md lists them.
ASYNC_METRICS: Final[tuple[tuple[Instrument, Observe], ...]] = (
    (Instrument("jobmeter.backfill.items", "counter", "{item}",
                "Items finished, by jobmeter.backfill.outcome (done, failed, skipped); "
                "failures by error.type."),
     _observe_items),
    (Instrument("jobmeter.backfill.items.retried", "counter", "{item}",
                "Failed items processed again (Backfill.track_failed()), by their new "
                "jobmeter.backfill.outcome; jobmeter.backfill.items keeps their first outcome."),
     _observe_retried),
    (Instrument("jobmeter.backfill.items.planned", "up_down_counter", "{item}",
                "Items the backfill plans to process (its total), when known."),
     _value(lambda s: s.total)),
    (Instrument("jobmeter.backfill.progress", "gauge", "1",
                "Finished items over planned items, 0 to 1, when the total is known."),
     _value(lambda s: s.progress)),
    (Instrument("jobmeter.backfill.rate", "gauge", "{item}/s",
                "Finished items per second, exponentially smoothed (see docs/backfill.md)."),
     _value(lambda s: s.rate)),
    (Instrument("jobmeter.backfill.eta", "gauge", "s",
                "Estimated seconds until the planned items are finished: remaining / rate."),
     _value(lambda s: s.eta)),
    (Instrument("jobmeter.backfill.retries", "counter", "{retry}",
                "Retries, by jobmeter.backfill.reason."),
     _by_reason("retries")),
    (Instrument("jobmeter.backfill.rate_limit.hits", "counter", "{hit}",
                "Times the backfill was rate limited (throttled), by jobmeter.backfill.reason."),
     _by_reason("rate_limit_hits")),
    (Instrument("jobmeter.backfill.queue.size", "up_down_counter", "{item}",
                "Items waiting in the backfill's queue, when reported."),
     _value(lambda s: s.queue)),
    (Instrument("jobmeter.backfill.start.timestamp", "gauge", "s",
                "When the backfill first started (Unix time; kept across resumes)."),
     _value(lambda s: s.started)),
    (Instrument("jobmeter.backfill.last_success.timestamp", "gauge", "s",
                "When the backfill last ended without an exception (Unix time)."),
     _value(lambda s: s.last_success)),
    (Instrument("jobmeter.backfill.deadline.timestamp", "gauge", "s",
                "When the backfill should be finished (Unix time), when a deadline was given."),
     _value(lambda s: s.deadline)),
)  # fmt: skip


class Instruments:
    """The backfill instruments of one meter and the backfills they read."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        # Each backfill with the global MeterProvider it was made under (None: none yet).
        self._sources: list[tuple[Source, object]] = []
        self._failed_once = False
        self.item_duration = histogram(meter, ITEM_DURATION)
        self.batch_duration = histogram(meter, BATCH_DURATION)
        self.batch_size = histogram(meter, BATCH_SIZE, BATCH_SIZE_BUCKETS)
        self.retry_after = histogram(meter, RETRY_AFTER)
        self.http_duration = histogram(meter, HTTP_DURATION)
        for instrument, observe_points in ASYNC_METRICS:
            observe(meter, instrument, self._callback(observe_points))

    def add(self, source: Source, *, global_provider: bool) -> None:
        """Publish ``source``; closed backfills of the same identity stop being published.

        ``global_provider``: ``source`` is on the global MeterProvider, and is
        published only while the provider it was made under is the global one.
        """
        made_under = installed_provider() if global_provider else None
        with self._lock:
            self._sources = [
                (s, p) for s, p in self._sources if not (s.closed and s._key == source._key)
            ] + [(source, made_under)]

    def _groups(self) -> list[tuple[Attrs, Snapshot]]:
        # Read afresh at every callback: a cached copy could miss the last items at shutdown.
        # A backfill made under an earlier global provider (tests reset it) is not this one's.
        current = installed_provider()
        with self._lock:
            self._sources = [(s, p) for s, p in self._sources if p is None or p is current]
            sources = [s for s, _ in self._sources]
        grouped: dict[Key, tuple[Attrs, list[Snapshot]]] = {}
        for source in sources:
            grouped.setdefault(source._key, (source._base, []))[1].append(source._snapshot())
        return [(base, Snapshot.merge(snaps)) for base, snaps in grouped.values()]

    def _callback(self, observe: Observe) -> Callable[[CallbackOptions], Iterable[Observation]]:
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

    def after_fork_in_child(self) -> None:
        """New locks: a parent thread may have held them at fork time."""
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Stop publishing every backfill (a reset)."""
        with self._lock:
            self._sources = []


# One set per meter (backfills of one name on one provider share it); a forked
# child's set has new locks.
_per_meter: PerMeter[Instruments] = PerMeter(
    lambda name, meter: Instruments(meter), after_fork=Instruments.after_fork_in_child
)


def instruments_for(name: str, meter: Meter) -> Instruments:
    """The one set of backfill instruments of ``meter``."""
    return _per_meter.get(name, meter)


def unpublish_all() -> None:
    """Stop publishing every backfill (when a reset closes them)."""
    for instruments in _per_meter.values():
        instruments.forget()
