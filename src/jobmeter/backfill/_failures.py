"""Which tracked items failed, at which positions, and failures held until the loop goes on.

A mixin of ``CountState`` (the counts of a backfill). Each item that
``track()`` hands out has a position: the ``start`` of its loop (by default
``completed`` when the loop began) plus its index. When an item ends failed,
its position is kept, up to ``FAILED_ITEMS_LIMIT`` of them (the rest are
counted in ``failed_items_not_kept``), and written to the checkpoint, so that
``track_failed()`` can process those items again.

An exception that escapes a loop body cannot be told apart, from inside the
generator, from one that ends the program (``SystemExit``, Ctrl-C, a crash):
both close it. So the item is not counted at once. It is *held*: by the
enclosing tracked loop of the same backfill on the same thread, else by the
thread. It counts as failed when the program goes on with the backfill (the
enclosing loop asks for its next item, or the thread starts a new ``track()``
loop); a held failure still there when the backfill ends is dropped, so the
checkpoint stays before the item and a resume processes it again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from jobmeter.backfill._snapshot import UNSPECIFIED

# Positions of failed items kept per backfill (in memory and in the checkpoint).
FAILED_ITEMS_LIMIT: Final = 1000
RETRIED_OUTCOMES: Final = ("done", "failed", "skipped")

# A held failure: (position, whether the item was a retry of a failed one).
Held = list[tuple[int, bool]]
_EMPTY: Final[Mapping[int, str]] = MappingProxyType({})


class FailureLog:
    """The failed positions of one backfill, the counts of retried items, held failures."""

    _lock: threading.Lock
    _local: threading.local
    _failed: dict[str, int]

    def _add(self, counts: dict[str, int], label: str, n: int, what: str) -> str:
        raise NotImplementedError  # CountState's: count under a capped label, return it

    def _init_failures(self) -> None:
        self._failed_items: dict[int, str] = {}
        self._failed_items_view: Mapping[int, str] | None = _EMPTY  # None: changed since
        self._failed_items_not_kept = 0
        self._retried = dict.fromkeys(RETRIED_OUTCOMES, 0)

    def failed_items(self) -> list[int]:
        """Positions of the tracked items that are failed now, in order; for ``track_failed()``.

        A position is the index of the item in the iterable of its
        ``track()`` loop plus that loop's ``start`` (``completed`` when the
        loop began, so with ``track(items[bf.completed:])`` it is the index in
        ``items``). Up to 1,000 are kept; ``counts["failed_items_not_kept"]``
        says how many more failed. Failures counted outside a ``track()`` loop
        have no position.
        """
        with self._lock:
            return sorted(self._failed_items)

    # -- counting (the caller of _keep holds the lock) -----------------------------------------

    def _keep(self, position: int, label: str) -> None:
        items = self._failed_items
        if position in items or len(items) < FAILED_ITEMS_LIMIT:
            items[position] = label
            self._failed_items_view = None
        else:
            self._failed_items_not_kept += 1

    def _count_item_failed(self, position: int, label: str, n: int) -> None:
        used = self._add(self._failed, label, n, "error types")
        with self._lock:
            self._keep(position, used)

    def _count_retried(self, position: int, outcome: str, n: int, label: str = UNSPECIFIED) -> None:
        """A failed item processed again: its new outcome; it stays in the list only if failed."""
        with self._lock:
            self._retried[outcome] += n
            if outcome == "failed":
                self._keep(position, label)
            elif self._failed_items.pop(position, None) is not None:
                self._failed_items_view = None

    def _failed_items_now(self) -> Mapping[int, str]:
        """A read-only copy for snapshots, made again only after a change (lock held)."""
        view = self._failed_items_view
        if view is None:
            view = self._failed_items_view = MappingProxyType(dict(self._failed_items))
        return view

    # -- held failures ----------------------------------------------------------------------

    def _confirm(self, held: Held) -> None:
        """The program went on past these items: they count as failed now."""
        for position, retrying in held:
            if retrying:
                self._count_retried(position, "failed", 1, UNSPECIFIED)
            else:
                self._count_item_failed(position, UNSPECIFIED, 1)
        held.clear()

    def _hold(self, held: Held, outer: Any) -> None:
        """Keep ``held`` until the enclosing loop (``outer`` cursor) or the thread goes on."""
        if outer is not None:
            outer.pending = [*(outer.pending or ()), *held]
        else:
            self._local.held = [*(getattr(self._local, "held", None) or ()), *held]

    def _confirm_held(self) -> None:
        """A new tracked loop on this thread: the failures it held count now."""
        held = getattr(self._local, "held", None)
        if held:
            self._local.held = None
            self._confirm(held)

    def _drop_held(self) -> None:
        """The backfill ends: failures still held were not gone past; a resume redoes them."""
        self._local.held = None

    def _restore_failures(self, saved: Any) -> None:
        self._failed_items = dict(saved.failed_items)
        self._failed_items_view = None
        self._failed_items_not_kept = saved.failed_items_not_kept
        self._retried = {k: saved.retried.get(k, 0) for k in RETRIED_OUTCOMES}
