"""``Backfill``: counting, reading and ending."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue

from jobmeter._core import fork
from jobmeter._core.instruments import make_key
from jobmeter._core.pushgateway import gateway_url
from jobmeter._rundata import routing, sources
from jobmeter.backfill import _args as args
from jobmeter.backfill import _runtime
from jobmeter.backfill._checkpoint import check_path
from jobmeter.backfill._http import RequestMethods
from jobmeter.backfill._metrics import NAME, instruments_for
from jobmeter.backfill._outputs import Outputs, OutputSettings
from jobmeter.backfill._rate import SmoothedRate
from jobmeter.backfill._snapshot import OUTCOMES
from jobmeter.backfill._state import CountState
from jobmeter.backfill._track import Batch
from jobmeter.backfill._tracking import TrackMethods
from jobmeter.collector import MetricsCollector

_log = logging.getLogger("jobmeter")

SCOPE = "jobmeter.backfill"


class Backfill(CountState, TrackMethods, RequestMethods, MetricsCollector):
    """Progress of a backfill or pipeline: counts, rate, ETA, retries, rate limits, requests.

    Every point carries ``jobmeter.backfill.name`` and the given attributes;
    the instrumentation scope is ``jobmeter.backfill``. Counting is cheap
    (an increment under a lock); the figures are read when a reader collects.
    ``measure()`` works as on every collector. Use it as a ``with`` block, or
    call :meth:`close`: the end is a success unless the block raised.

    Args:
        name: the backfill's name, such as ``orders-2024`` (also the
            Pushgateway ``job``). Keep it stable from run to run.
        total: items planned, if known (see :meth:`set_total`).
        unit: what an item is, for the terminal (``day`` shows ``days``, ``day/s``).
        attributes: attributes added to every point; low-cardinality values only.
        checkpoint: a JSON file to keep the counts in; a restart with the same
            path resumes from them (the directory must exist).
        checkpoint_interval: seconds between checkpoint writes (and one at the end).
        resume: False starts over even when the checkpoint exists.
        pushgateway: Pushgateway URL; defaults to ``JOBMETER_PUSHGATEWAY_URL``.
        push_interval: seconds between pushes (and one at the end).
        push_timeout: seconds one push may take; the end waits at most this plus 1 s.
        push_grouping_key: stable extra labels of the push group, such as
            ``{"worker": "3"}`` when several processes push one backfill.
        progress: show a progress bar when stderr is a terminal, else a log
            line every ``log_interval`` seconds; False shows nothing.
        log_interval: seconds between log lines.
        rate_window: time constant of the smoothed rate, in seconds.
        clock: monotonic seconds for the rate (tests script it); ``time.monotonic``.
        meter_provider: where the instruments live; the global one by default.
        deadline: when the backfill should be finished: Unix seconds or a
            timezone-aware datetime, published as ``jobmeter.backfill.deadline.timestamp``
            for alerts that compare it with the ETA. Not kept in the checkpoint.

    Raises:
        ValueError, TypeError: a bad argument, or a checkpoint that cannot be resumed.

    Example:
        >>> with Backfill("orders-2024", total=365, unit="day", progress=False) as bf:
        ...     for day in bf.track(range(365)):
        ...         pass
        >>> bf.counts["done"]
        365
    """

    def __init__(
        self,
        name: str,
        total: int | None = None,
        unit: str = "item",
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_interval: float = 10.0,
        resume: bool = True,
        pushgateway: str | None = None,
        push_interval: float = 15.0,
        push_timeout: float = 2.0,
        push_grouping_key: Mapping[str, str] | None = None,
        progress: bool = True,
        log_interval: float = 10.0,
        rate_window: float = 30.0,
        clock: Callable[[], float] | None = None,
        meter_provider: MeterProvider | None = None,
        deadline: float | datetime | None = None,
    ) -> None:
        name = args.text("name", name)
        self.unit = args.text("unit", unit)
        total = args.optional_count("total", total)
        self._deadline = args.deadline(deadline)
        settings = OutputSettings(
            checkpoint=None if checkpoint is None else check_path(checkpoint),
            checkpoint_interval=args.seconds("checkpoint_interval", checkpoint_interval),
            pushgateway=gateway_url(pushgateway),
            push_interval=args.seconds("push_interval", push_interval),
            push_timeout=args.seconds("push_timeout", push_timeout),
            push_grouping_key=args.grouping_key(push_grouping_key),
            progress=bool(progress),
            log_interval=args.seconds("log_interval", log_interval),
        )
        window = args.seconds("rate_window", rate_window)
        if attributes is not None and not isinstance(attributes, Mapping):
            raise TypeError(f"attributes must be a mapping of str to attribute values, got "
                            f"{type(attributes).__name__}")  # fmt: skip
        on_global = meter_provider is None or meter_provider is metrics.get_meter_provider()
        super().__init__(SCOPE, attributes={**(attributes or {}), NAME: name},
                         meter_provider=meter_provider)  # fmt: skip
        self.name = name
        self._base: dict[str, AttributeValue] = dict(self.attributes)
        self._key = make_key(self._base)
        self._init_counts()
        if settings.checkpoint is not None and resume:
            self._resume(settings.checkpoint, total)
        else:
            self._total = total
        self._rate = SmoothedRate(self.completed, window=window, clock=clock or time.monotonic)
        self._closing = threading.Lock()
        self._closed = False
        self._instruments = instruments_for(SCOPE, self.meter)
        self._instruments.add(self, global_provider=on_global)
        self._outputs = Outputs(name, self.unit, self._base, self._snapshot, settings)
        _runtime.register(self, on_sigterm=self._outputs.active)
        fork.on_fork_in_child_weak(self, "_after_fork_in_child")
        sources.register(self)

    # -- counting ---------------------------------------------------------------------------

    def done(self, n: int = 1) -> None:
        """Count ``n`` items done."""
        if n.__class__ is not int or n < 0:
            n = args.count("n", n)
        if self._tracking and self._claim("done", n):
            return  # a retried item's new outcome
        with self._lock:
            self._done += n

    def skipped(self, n: int = 1) -> None:
        """Count ``n`` items skipped (already there, filtered out)."""
        if n.__class__ is not int or n < 0:
            n = args.count("n", n)
        if self._tracking and self._claim("skipped", n):
            return
        with self._lock:
            self._skipped += n

    def failed(self, n: int = 1, error_type: str | type[BaseException] | BaseException | None = None
               ) -> None:  # fmt: skip
        """Count ``n`` items failed, by ``error.type`` (a string, an exception or its class).

        In the body of a ``track()`` loop this counts the item in progress, and
        its position is kept for ``failed_items()`` and ``track_failed()``.
        """
        self._count_failed(args.label("error_type", error_type), args.count("n", n))

    def count(self, outcome: str, n: int = 1, *, error_type: Any = None) -> None:
        """Count ``n`` items with ``outcome`` ``"done"``, ``"failed"`` or ``"skipped"``."""
        if error_type is not None and outcome != "failed":
            raise ValueError(f"error_type is for outcome 'failed' only, not {outcome!r}")
        if outcome == "done":
            self.done(n)
        elif outcome == "skipped":
            self.skipped(n)
        elif outcome == "failed":
            self.failed(n, error_type)
        else:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")

    def retry(self, reason: str | type[BaseException] | BaseException | None = None, *,
              n: int = 1) -> None:  # fmt: skip
        """Count a retry (``n`` of them), by reason (such as ``"timeout"`` or an exception)."""
        self._add(self._retries, args.label("reason", reason), args.count("n", n), "reasons")

    def rate_limited(self, retry_after: float | str | None = None, *,
                     reason: str | None = None) -> float | None:  # fmt: skip
        """Count a rate-limit hit; return the wait in seconds asked by ``retry_after``.

        ``retry_after`` is seconds or a ``Retry-After`` header value (seconds or
        an HTTP date); it is recorded in ``jobmeter.backfill.rate_limit.retry_after``.
        An unreadable header counts the hit and returns None.
        """
        wait = args.retry_after(retry_after)
        label = args.label("reason", reason)
        self._add(self._hits, label, 1, "reasons")
        if wait is not None:
            self._instruments.retry_after.record(wait, self._base)
        return wait

    def batch(self, size: int) -> Batch:
        """Record a batch of ``size`` items now; as a ``with`` block, also its duration."""
        size = args.count("size", size)
        self._instruments.batch_size.record(size, self._base)
        return Batch(self._instruments.batch_duration.record, self._base)

    def queue_size(self, size: int | Callable[[], int] | None) -> None:
        """Set the queue size, or a function that returns it when metrics are read (None: unset)."""
        if size is not None and not callable(size):
            size = args.count("size", size)
        self._queue = size

    def set_total(self, total: int | None) -> None:
        """Set the items planned; it cannot be less than the items counted already."""
        total = args.optional_count("total", total)
        with self._lock:
            completed = self._done + self._skipped + sum(self._failed.values())
            if total is not None and total < completed:
                raise ValueError(
                    f"total must be at least the {completed} items counted already "
                    f"(done, failed and skipped), got {total}"
                )
            self._total = total

    # -- ending (the properties that read the counts are CountState's) ----------------------

    @property
    def closed(self) -> bool:
        """Whether the backfill has ended."""
        return self._closed

    def close(self, *, success: bool = True) -> None:
        """End the backfill: last checkpoint, last push (with the last-success time on success)."""
        self._finish("succeeded" if success else "failed")

    def __enter__(self) -> Backfill:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: object, tb: TracebackType | None
    ) -> None:
        self._finish("succeeded" if exc_type is None else "failed")

    def __repr__(self) -> str:
        return f"Backfill({self.name!r})"

    # -- internals --------------------------------------------------------------------------

    def _close_at_exit(self, status: str) -> None:
        self._finish(status)

    def _finish(self, status: str) -> None:
        if not self._closing.acquire(blocking=False):
            return  # closed already, or closing in another frame
        self._closed = True
        self._status = status
        self._drop_held()  # an item left by the exception that ends the backfill: redone
        _runtime.unregister(self)
        if routing.active is not None:  # the last counts, before the backfill is gone
            self.drain_into(routing.active)
        success = None
        if status == "succeeded":
            success = self._last_success = time.time()
        self._outputs.finish(status, success)

    def _after_fork_in_child(self) -> None:
        # A forked worker counts its own items: its series is its own, summed by PromQL.
        # The checkpoint, the push and the terminal stay with the parent.
        self._closing = threading.Lock()
        self._init_counts()
        self._total = None
        self._rate.restart(0)
        self._outputs.drop()
