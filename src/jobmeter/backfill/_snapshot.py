"""A consistent copy of a backfill's figures: what metrics, pushes, checkpoints and bars read.

Counts by label (``error.type`` of failures, reasons of retries and rate-limit
hits) are capped per backfill: past ``LABEL_LIMIT`` distinct values, the rest
are counted under ``OVERFLOW`` and exported with ``otel.metric.overflow=true``
instead of their label, so totals stay exact and memory stays bounded.

``done``, ``failed`` and ``skipped`` count each item's first outcome, so that
they add up to the items finished (the resume position); failed items
processed again by ``track_failed()`` count their new outcome in ``retried``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from jobmeter.backfill._rate import eta as _eta

OUTCOMES: Final = ("done", "failed", "skipped")
# Distinct error types, and reasons, kept per backfill before folding the rest.
LABEL_LIMIT: Final = 100
# Labels longer than this are cut: they are names, not messages.
LABEL_MAX_CHARS: Final = 128
OVERFLOW: Final = "otel.metric.overflow"
UNSPECIFIED: Final = "_OTHER"


def add_label(counts: dict[str, int], label: str, n: int) -> bool:
    """Add ``n`` under ``label`` (the caller holds the lock); False when it was folded."""
    if label in counts:
        counts[label] += n
        return True
    if len(counts) >= LABEL_LIMIT:
        counts[OVERFLOW] = counts.get(OVERFLOW, 0) + n
        return False
    counts[label] = n
    return True


def merged_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for label, n in part.items():
            out[label] = out.get(label, 0) + n
    return out


@dataclass(frozen=True)
class Snapshot:
    """The figures of one backfill (or of several with the same attributes, merged)."""

    started: float
    done: int = 0
    skipped: int = 0
    failed: Mapping[str, int] = field(default_factory=dict)
    retries: Mapping[str, int] = field(default_factory=dict)
    rate_limit_hits: Mapping[str, int] = field(default_factory=dict)
    total: int | None = None
    queue: int | None = None
    rate: float | None = None
    last_success: float | None = None
    deadline: float | None = None
    # Position -> error type of the tracked items failed now (_failures.FAILED_ITEMS_LIMIT).
    failed_items: Mapping[int, str] = field(default_factory=dict)
    failed_items_not_kept: int = 0
    retried: Mapping[str, int] = field(default_factory=dict)  # outcome -> failed items redone

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def retried_total(self) -> int:
        return sum(self.retried.values())

    @property
    def completed(self) -> int:
        """Items finished with any outcome: done, failed or skipped."""
        return self.done + self.skipped + self.failed_total

    @property
    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(self.total - self.completed, 0)

    @property
    def progress(self) -> float | None:
        """Completed / total, at most 1; 1 when nothing was planned; None without a total."""
        if self.total is None:
            return None
        if self.total <= 0:
            return 1.0
        return min(self.completed / self.total, 1.0)

    @property
    def eta(self) -> float | None:
        return _eta(self.remaining, self.rate)

    @staticmethod
    def merge(snapshots: list[Snapshot]) -> Snapshot:
        """Several live backfills with the same name and attributes: one set of figures."""
        if len(snapshots) == 1:
            return snapshots[0]
        totals = [s.total for s in snapshots if s.total is not None]
        queues = [s.queue for s in snapshots if s.queue is not None]
        rates = [s.rate for s in snapshots if s.rate is not None]
        successes = [s.last_success for s in snapshots if s.last_success is not None]
        # The earliest deadline is the one that can be missed first.
        deadlines = [s.deadline for s in snapshots if s.deadline is not None]
        return Snapshot(
            started=min(s.started for s in snapshots),
            done=sum(s.done for s in snapshots),
            skipped=sum(s.skipped for s in snapshots),
            failed=merged_counts(s.failed for s in snapshots),
            retries=merged_counts(s.retries for s in snapshots),
            rate_limit_hits=merged_counts(s.rate_limit_hits for s in snapshots),
            retried=merged_counts(s.retried for s in snapshots),
            total=sum(totals) if totals else None,
            queue=sum(queues) if queues else None,
            rate=sum(rates) if rates else None,
            last_success=max(successes) if successes else None,
            deadline=min(deadlines) if deadlines else None,
        )  # failed positions are each backfill's own (its checkpoint), not merged
