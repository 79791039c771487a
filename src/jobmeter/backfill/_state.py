"""The counts of a backfill, the snapshot of them that every output reads, and reading them.

A mixin of ``Backfill``: the counting methods there touch these attributes
directly, so that counting an item is an increment under one lock. The public
properties that read the counts (``total``, ``completed``, ``counts``, ``rate``,
``eta``, ``progress``) live here, next to the snapshot they come from; the
failed positions and held failures are ``_failures.FailureLog``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobmeter._core import waits
from jobmeter.backfill import _args as args
from jobmeter.backfill._checkpoint import CheckpointError, load
from jobmeter.backfill._failures import FailureLog
from jobmeter.backfill._rate import SmoothedRate
from jobmeter.backfill._snapshot import OVERFLOW, Snapshot, add_label

_log = logging.getLogger("jobmeter")


class CountState(FailureLog):
    """Counts by outcome and label, the total, the queue, timestamps; one lock."""

    name: str
    _total: int | None
    _deadline: float | None
    _rate: SmoothedRate

    def _init_counts(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._tracking = 0
        self._done = self._skipped = 0
        self._failed: dict[str, int] = {}
        self._retries: dict[str, int] = {}
        self._hits: dict[str, int] = {}
        self._started = time.time()
        self._last_success: float | None = None
        self._queue: int | Callable[[], int] | None = None
        self._warned: set[str] = set()
        self._status = "running"
        self._init_failures()

    # -- reading ----------------------------------------------------------------------------

    @property
    def total(self) -> int | None:
        """Items planned, or None."""
        return self._total

    @property
    def completed(self) -> int:
        """Items finished with any outcome (done + failed + skipped): where to resume from."""
        return self._done + self._skipped + sum(self._failed.values())

    @property
    def counts(self) -> dict[str, Any]:
        """The counts now: done, failed (by error type), skipped, retries, rate-limit hits.

        Each item counts once, by its first outcome; ``retried`` counts the
        new outcomes of failed items processed again by ``track_failed()``,
        and ``failed_items_not_kept`` the failed items past the positions kept.
        """
        s = self._snapshot()
        return {"done": s.done, "failed": dict(s.failed), "skipped": s.skipped,
                "retries": dict(s.retries), "rate_limit_hits": dict(s.rate_limit_hits),
                "completed": s.completed, "total": s.total, "retried": dict(s.retried),
                "failed_items_not_kept": s.failed_items_not_kept}  # fmt: skip

    @property
    def rate(self) -> float | None:
        """Smoothed items per second (docs/backfill.md has the formula); None at first."""
        return self._snapshot().rate

    @property
    def eta(self) -> float | None:
        """Seconds until the planned items are finished; None without a total or a rate."""
        return self._snapshot().eta

    @property
    def progress(self) -> float | None:
        """Finished over planned items, 0 to 1; None without a total."""
        return self._snapshot().progress

    # -- the run being recorded (jobmeter._rundata.routing): progress is read at each drain --------

    def recording_started(self) -> None:
        """Nothing to keep per item: the counts are read when the recorder drains."""

    def recording_stopped(self) -> None:
        """Nothing kept to drop."""

    def drain_into(self, recorder: Any) -> None:
        """Hand the counts now to the run's recorder (it writes a line when they changed)."""
        recorder.add_progress(self.name, self._snapshot(), self._status)

    def _claim(self, outcome: str, n: int) -> bool:
        """The body of this thread's tracked item counted it; True when that was a retry's count."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            return False
        cursor.claimed = True
        if cursor.retrying:
            self._count_retried(cursor.position, outcome, n)
        return bool(cursor.retrying)

    def _count_failed(self, label: str, n: int) -> None:
        cursor = getattr(self._local, "cursor", None) if self._tracking else None
        if cursor is None:
            self._add(self._failed, label, n, "error types")
            return
        cursor.claimed = True
        if cursor.retrying:
            self._count_retried(cursor.position, "failed", n, label)
        else:
            self._count_item_failed(cursor.position, label, n)

    def _tracking_changed(self, delta: int) -> None:
        with self._lock:
            self._tracking += delta

    def _add(self, counts: dict[str, int], label: str, n: int, what: str) -> str:
        """Count ``n`` under ``label``; return the label counted (``OVERFLOW`` once folded)."""
        with self._lock:
            kept = add_label(counts, label, n)
        if kept:
            return label
        if what not in self._warned:
            self._warned.add(what)
            _log.warning(
                "jobmeter: backfill %r has more than %d distinct %s; the rest are counted with "
                "otel.metric.overflow=true. Keep ids and messages out of them.",
                self.name, len(counts) - 1, what,
            )  # fmt: skip
        return OVERFLOW

    def _resume(self, path: Path, total: int | None) -> None:
        """Take the counts from the checkpoint at ``path``, if there is one, and set the total."""
        saved = load(path, self.name)
        if saved is not None:
            self._restore(saved)
            total = saved.total if total is None else total
            if total is not None and total < self.completed:
                raise CheckpointError(path, f"total={total} is less than the "
                                      f"{self.completed} items it already counted")  # fmt: skip
        self._total = total

    def _restore(self, saved: Snapshot) -> None:
        self._done, self._skipped = saved.done, saved.skipped
        self._failed = dict(saved.failed)
        self._retries = dict(saved.retries)
        self._hits = dict(saved.rate_limit_hits)
        self._started = saved.started
        self._last_success = saved.last_success
        self._restore_failures(saved)

    def _snapshot(self) -> Snapshot:
        # A SIGTERM handler may run while this thread holds the lock.
        with waits.held_or_not(self._lock):
            done, skipped, total = self._done, self._skipped, self._total
            failed, retries, hits = dict(self._failed), dict(self._retries), dict(self._hits)
            failed_items, not_kept = self._failed_items_now(), self._failed_items_not_kept
            retried = dict(self._retried)
        rate = self._rate.update(done + skipped + sum(failed.values()))
        return Snapshot(started=self._started, done=done, skipped=skipped, failed=failed,
                        retries=retries, rate_limit_hits=hits, total=total,
                        queue=self._queue_now(), rate=rate,
                        last_success=self._last_success, deadline=self._deadline,
                        failed_items=failed_items, failed_items_not_kept=not_kept,
                        retried=retried)  # fmt: skip

    def _queue_now(self) -> int | None:
        queue = self._queue
        if queue is None or isinstance(queue, int):
            return queue
        try:
            return args.count("queue size", queue())
        except Exception:
            if "queue" not in self._warned:
                self._warned.add("queue")
                _log.warning("jobmeter: the queue size function of backfill %r failed; the queue "
                             "size is left out", self.name, exc_info=True)  # fmt: skip
            return None
