"""``Backfill.track()`` and ``Backfill.track_failed()``: the loops that count their items.

A mixin of ``Backfill``; the generators are in ``_track``, the failed
positions and held failures in ``_failures``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

from jobmeter.backfill import _args as args
from jobmeter.backfill._track import Counter, Tracked

T = TypeVar("T")


class TrackMethods:
    """``track()`` and ``track_failed()`` of ``Backfill``; it comes after ``CountState`` there."""

    _instruments: Any
    _base: Any
    _total: int | None
    _lock: Any
    _failed_items: dict[int, str]

    @property
    def completed(self) -> int:
        raise NotImplementedError  # CountState's

    def set_total(self, total: int | None) -> None:
        raise NotImplementedError  # Backfill's

    def _confirm_held(self) -> None:
        raise NotImplementedError  # FailureLog's

    def _owner(self) -> Counter:
        return cast("Counter", self)  # a Backfill: CountState has the counting half

    def track(
        self, iterable: Iterable[T], *, timed: bool = True, start: int | None = None
    ) -> Tracked[T]:
        """Wrap ``iterable``: each item counts as done when its loop body ends.

        An item left by ``break`` is not counted. An item left by an exception
        counts as failed (``error.type`` ``_OTHER``) once the program goes on
        with this backfill: the enclosing tracked loop asks for its next item,
        or a new ``track()`` loop starts on this thread. When the exception
        ends the backfill instead (``SystemExit``, Ctrl-C, a crash), the item
        is not counted at all, so the checkpoint stays before it and a resume
        processes it again. A body that counts for this backfill itself
        (``done(n)``, ``failed()``, ``skipped()``) replaces the item's count.

        Each body's time is recorded in ``jobmeter.backfill.item.duration``;
        ``timed=False`` leaves that out for loops of tiny items (the count
        costs ~25 times less). With no total yet, an iterable with ``len()``
        sets it to the items counted so far plus its length.

        Args:
            iterable: the items.
            timed: record each body's time.
            start: the position of the first item, for ``failed_items()``;
                by default ``completed``, the index in ``items`` when the loop
                is ``track(items[bf.completed:])``.
        """
        self._confirm_held()  # the program went on: what an earlier loop left failed counts
        position = self.completed if start is None else args.count("start", start)
        record = self._instruments.item_duration.record if timed else None
        tracked = Tracked(self._owner(), iterable, record, self._base, start=position)
        if self._total is None and tracked._length is not None:
            self.set_total(self.completed + tracked._length)
        return tracked

    def track_failed(self, items: Sequence[T], *, timed: bool = True) -> Tracked[T]:
        """Process the failed items again: ``items[p]`` for each ``p`` in ``failed_items()``.

        Give the same sequence as the loop that failed them (``items`` of
        ``track(items[bf.completed:])``). Each item counts its new outcome in
        ``counts["retried"]`` (``jobmeter.backfill.items.retried``), not again
        in done, failed or skipped, so ``completed`` stays the resume
        position. An item done or skipped now leaves ``failed_items()``; one
        that fails again stays, and one left by an exception that ends the
        backfill is still failed at the next resume.

        Raises:
            ValueError: a failed position is past the end of ``items``.
        """
        self._confirm_held()
        with self._lock:
            positions = sorted(self._failed_items)
        if positions and positions[-1] >= len(items):
            raise ValueError(
                f"items has {len(items)} items, but failed item {positions[-1]} is past its end: "
                "give the sequence the failed loop went through"
            )
        record = self._instruments.item_duration.record if timed else None
        again = [(p, items[p]) for p in positions]
        return Tracked(self._owner(), (), record, self._base, retrying=again)
