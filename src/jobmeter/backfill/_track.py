"""The generators of ``track()`` and ``track_failed()``, and ``Backfill.batch()``.

An item counts as done when the loop asks for the next one (or the iterable
ends): its body finished. When the body itself counted something for the
backfill (``done(n)``, ``failed()``, ``skipped()`` from the loop's thread),
that replaces the item's own count: a body that skips an item, or counts the
rows of a batch, is not counted twice.

When the loop is left early, a generator cannot see why: ``break`` and an
exception both close it the same way. ``track()`` tells them apart by the
instruction the loop's frame is at when it drops the iterator: leaving by
``break`` or ``return`` pops the iterator (``POP_TOP``, ``POP_ITER`` on newer
Pythons); an exception leaves from the instruction that raised. An item left
by ``break`` is not counted. An item left by an exception is held (see
``_failures``): it counts as failed, with ``error.type`` ``_OTHER``, only once
the program goes on with the backfill, and not at all when the exception ends
it. tests/backfill/test_backfill.py pins this: a Python that compiles loops
differently fails there first.
"""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from time import perf_counter
from types import FrameType, TracebackType
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.util.types import AttributeValue

from jobmeter.backfill._failures import Held
from jobmeter.collector import error_type

T = TypeVar("T")

_LEAVING_OPS = frozenset(
    dis.opmap[name]
    for name in ("POP_TOP", "POP_ITER", "END_FOR", "RETURN_VALUE", "RETURN_CONST")
    if name in dis.opmap
)


def left_normally(frame: FrameType | None) -> bool:
    """Whether ``frame`` dropped an iterator by leaving the loop (not by an exception)."""
    if frame is None:
        return True
    try:
        return frame.f_code.co_code[frame.f_lasti] in _LEAVING_OPS
    except (IndexError, AttributeError):
        return True


class Cursor:
    """The state one tracked loop shares with the backfill's counting methods."""

    __slots__ = ("claimed", "pending", "position", "retrying", "stopping")

    def __init__(self, *, retrying: bool = False) -> None:
        self.claimed = False
        self.stopping = False
        self.retrying = retrying  # the items are failed ones processed again
        self.position = 0  # of the item in progress
        # Failures of inner loops left by an exception, held until this loop goes on.
        self.pending: Held | None = None


class Counter(Protocol):
    """What track() needs from the backfill."""

    _lock: threading.Lock
    _done: int
    _local: threading.local
    _tracking: int

    def _tracking_changed(self, delta: int) -> None: ...
    def _confirm(self, held: Held) -> None: ...
    def _hold(self, held: Held, outer: Cursor | None) -> None: ...
    def _count_retried(self, position: int, outcome: str, n: int, label: str = ...) -> None: ...


def _abandoned(owner: Counter, cursor: Cursor, outer: Cursor | None) -> None:
    """The loop dropped the tracker with an item in progress: held as failed if by an exception."""
    normally = cursor.stopping
    if not normally:
        try:
            frame: FrameType | None = sys._getframe(2)  # the loop's frame: past this and _run
        except ValueError:
            frame = None
        normally = left_normally(frame)
    held, cursor.pending = cursor.pending or [], None
    if normally:  # break, return, close(): the program goes on past the inner failures
        if held:
            owner._confirm(held)
        return
    if not cursor.claimed:  # a body that counted its item before raising keeps that count
        held.append((cursor.position, cursor.retrying))
    if held:
        owner._hold(held, outer)


def _run(
    owner: Counter,
    iterable: Iterable[T],
    start: int,
    cursor: Cursor,
    record: Callable[[float, Any], None] | None,
    attributes: Any,
) -> Generator[T, None, None]:
    lock = owner._lock
    local = owner._local
    clock = perf_counter
    outer = getattr(local, "cursor", None)
    local.cursor = cursor
    owner._tracking_changed(1)
    position = start - 1
    try:
        if record is None:
            for item in iterable:
                position += 1
                cursor.position = position
                cursor.claimed = False
                try:
                    yield item
                except GeneratorExit:
                    _abandoned(owner, cursor, outer)
                    raise
                if cursor.pending:  # an inner loop's failure: this loop went on past it
                    owner._confirm(cursor.pending)
                if not cursor.claimed:
                    with lock:
                        owner._done += 1
            return
        for item in iterable:
            position += 1
            cursor.position = position
            cursor.claimed = False
            began = clock()
            try:
                yield item
            except GeneratorExit:
                _abandoned(owner, cursor, outer)
                raise
            record(clock() - began, attributes)
            if cursor.pending:
                owner._confirm(cursor.pending)
            if not cursor.claimed:
                with lock:
                    owner._done += 1
    finally:
        local.cursor = outer
        owner._tracking_changed(-1)


def _rerun(
    owner: Counter,
    items: list[tuple[int, T]],
    cursor: Cursor,
    record: Callable[[float, Any], None] | None,
    attributes: Any,
) -> Generator[T, None, None]:
    """Failed items again: each new outcome is a retry's; done or skipped ones leave the list."""
    local = owner._local
    outer = getattr(local, "cursor", None)
    local.cursor = cursor
    owner._tracking_changed(1)
    try:
        for position, item in items:
            cursor.position = position
            cursor.claimed = False
            began = perf_counter()
            try:
                yield item
            except GeneratorExit:
                _abandoned(owner, cursor, outer)
                raise
            if record is not None:
                record(perf_counter() - began, attributes)
            if cursor.pending:
                owner._confirm(cursor.pending)
            if not cursor.claimed:
                owner._count_retried(position, "done", 1)
    finally:
        local.cursor = outer
        owner._tracking_changed(-1)


class Batch:
    """A timed batch: ``with bf.batch(500): ...`` records its duration (and ``error.type``)."""

    __slots__ = ("_attributes", "_record", "_start")

    def __init__(self, record: Callable[..., None], attributes: dict[str, AttributeValue]) -> None:
        self._record = record
        self._attributes = attributes
        self._start = perf_counter()

    def __enter__(self) -> Batch:
        self._start = perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: object, tb: TracebackType | None
    ) -> None:
        attributes = self._attributes
        if exc_type is not None:
            attributes = {**attributes, "error.type": error_type(exc_type)}
        self._record(perf_counter() - self._start, attributes)


class Tracked(Generic[T]):
    """What ``Backfill.track()`` returns: iterate over it once, like the iterable it wraps."""

    __slots__ = ("_cursor", "_gen", "_length")

    def __init__(
        self,
        owner: Counter,
        iterable: Iterable[T],
        record: Callable[[float, Any], None] | None,
        attributes: Any,
        *,
        start: int = 0,
        retrying: list[tuple[int, T]] | None = None,
    ) -> None:
        self._cursor = Cursor(retrying=retrying is not None)
        if retrying is not None:
            self._length: int | None = len(retrying)
            self._gen = _rerun(owner, retrying, self._cursor, record, attributes)
            return
        try:
            self._length = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            self._length = None
        self._gen = _run(owner, iterable, start, self._cursor, record, attributes)

    def __iter__(self) -> Iterator[T]:
        return self._gen

    def __next__(self) -> T:
        return next(self._gen)

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("the tracked iterable has no len()")
        return self._length

    def close(self) -> None:
        """Stop early; the item in progress is not counted."""
        self._cursor.stopping = True
        self._gen.close()
