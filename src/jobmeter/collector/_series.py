"""One attribute set of ``measure()``: what a block touches, without a lock.

A ``Bound`` is an attribute set as blocks give it: its duration histogram bound
to the SDK's aggregations (``_core.bound_histogram``) and the ``Series`` its
other figures add to (the overflow series past the cardinality limit). A
``Series`` holds what the asynchronous instruments publish. Blocks touch them
without a lock: the in-flight count is two ``itertools.count`` (entered,
exited), and a block with resources appends one tuple to ``blocks`` (list
appends are atomic under the GIL). Its owner folds those tuples into the
cumulative figures, under its lock, when a reader collects, when a run's
recorder drains, and every ``FOLD_AT`` blocks, so that the list stays short
when nothing collects.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from typing import Any, Final, TypeAlias

from opentelemetry.util.types import AttributeValue

from jobmeter._core.bound_histogram import BoundHistogram
from jobmeter._core.instruments import Attributes, Key

#: Blocks with resources kept unfolded in a series at most (a fold costs ~50 ns a block).
FOLD_AT: Final = 128
#: Error types remembered per attribute set; more are bound at every failure.
FAILURES_KEPT: Final = 64

#: The peak RSS of a block measured without its peak (an int: max() and sort stay in C).
NO_PEAK: Final = -1

# A block with resources: (duration s, CPU user s, CPU system s, read B, written B,
# RSS at the end B, RSS growth B, peak RSS B or NO_PEAK, energy or None).
# Energy is the machine's (cpu J, dram J, gpu J) during the block, None per domain
# the machine does not meter (``_energy.Reading``).
Block = tuple[
    float, float, float, int, int, int, int, int,
    "tuple[float | None, float | None, float | None] | None",
]  # fmt: skip
# While a run records, the figures of folded blocks with resources: duration s, CPU s
# (user and system), RSS B, peak RSS B (NO_PEAK among them where a block had none), and
# the energy J (all domains) of the blocks that metered it, and the bytes they read and
# wrote (one running sum each: [read, written]).
# Arrays of C numbers: keeping Python objects of every block costs the job ~0.5 us a
# block in allocations and cache misses; the recorder makes them objects once.
Pending: TypeAlias = (
    "tuple[array[float], array[float], array[int], array[int], array[float], array[int]]"
)


def new_pending() -> Pending:
    """Empty Pending."""
    return array("d"), array("d"), array("q"), array("q"), array("d"), array("q", (0, 0))


def count_of(counter: itertools.count[int]) -> int:
    """The next value of an ``itertools.count`` (how many were taken), without taking one."""
    return int(repr(counter)[6:-1])  # "count(17)"


class Series:
    """Cumulative figures of one attribute set (``OperationTotals`` publishes them)."""

    __slots__ = (
        "attributes", "blocks", "cpu_system", "cpu_user", "durations", "energy", "entered",
        "exited", "gpu_memory", "growth", "has_resources", "io_read", "io_write", "modes",
        "peak", "pending", "rss",
    )  # fmt: skip

    def __init__(self, attributes: Attributes, recording: bool) -> None:
        self.attributes = dict(attributes)
        # Attribute dicts for the asynchronous points, built once.
        self.modes = (
            {**attributes, "cpu.mode": "user"},
            {**attributes, "cpu.mode": "system"},
            {**attributes, "disk.io.direction": "read"},
            {**attributes, "disk.io.direction": "write"},
            {**attributes, "hw.type": "cpu"},
            {**attributes, "hw.type": "dram"},
            {**attributes, "hw.type": "gpu"},
        )
        self.entered = itertools.count()
        self.exited = itertools.count()
        self.blocks: list[Block] = []  # appended by blocks, folded by the owner
        self.has_resources = False
        self.cpu_user = self.cpu_system = 0.0
        self.io_read = self.io_write = self.rss = self.growth = 0
        self.gpu_memory: int | None = None
        self.peak: int | None = None  # the largest peak RSS of a block with its peak taken
        # Joules of the machine during blocks, per domain (cpu, dram, gpu); None: never metered.
        self.energy: list[float | None] = [None, None, None]
        # While a run records, the durations of blocks without resources (appended by
        # them), and Pending of the others (by the fold); None otherwise.
        self.durations: list[float] | None = [] if recording else None
        self.pending: Pending | None = new_pending() if recording else None

    @property
    def active(self) -> int:
        """Blocks of this set in progress."""
        exited = count_of(self.exited)  # first: a block is entered before it exits
        return count_of(self.entered) - exited

    def fold(self) -> None:
        """Add the blocks appended so far to the totals; the owner's lock is held."""
        blocks = self.blocks
        n = len(blocks)
        if not n:
            return
        # Slice, then delete what was sliced: blocks appended meanwhile stay.
        taken = blocks[:n]
        del blocks[:n]
        durations, users, systems, reads, writes, rss, growth, peaks, energies = zip(
            *taken, strict=True
        )
        self.has_resources = True
        self.cpu_user += sum(users)
        self.cpu_system += sum(systems)
        self.io_read += sum(reads)
        self.io_write += sum(writes)
        self.rss, self.growth = rss[-1], growth[-1]  # the latest block's
        peak = max(peaks)
        if peak != NO_PEAK and (self.peak is None or peak > self.peak):
            self.peak = peak
        pending = self.pending
        for energy in energies:
            if energy is not None:
                self._add_energy(energy)
                if pending is not None:
                    pending[4].append(sum(j for j in energy if j is not None))
        if pending is not None:  # a run records: for its recorder
            pending[0].extend(durations)
            pending[1].extend(map(operator.add, users, systems))
            pending[2].extend(rss)
            if peak != NO_PEAK:
                pending[3].extend(peaks)
            io = pending[5]
            io[0] += sum(reads)
            io[1] += sum(writes)

    def _add_energy(self, energy: tuple[float | None, float | None, float | None]) -> None:
        totals = self.energy
        for domain, joules in enumerate(energy):
            if joules is not None:
                known = totals[domain]
                totals[domain] = joules if known is None else known + joules

    def take(self) -> tuple[list[float], Pending] | None:
        """What a run's recorder gets of the blocks since the last take (the lock is held)."""
        self.fold()
        pending = self.pending
        durations = self._take_durations()
        if pending is None or not (durations or pending[0]):
            return None
        self.pending = new_pending()
        return durations, pending

    def _take_durations(self) -> list[float]:
        """The durations appended since the last take (blocks may append meanwhile)."""
        durations = self.durations
        if not durations:
            return []
        n = len(durations)
        taken = durations[:n]
        del durations[:n]
        return taken


class Bound:
    """An attribute set as ``measure()`` was given it, bound to its series and histogram."""

    __slots__ = ("attributes", "epoch", "failures", "kept", "key", "operation", "owner",
                 "record", "series")  # fmt: skip

    def __init__(
        self,
        owner: Any,
        attributes: dict[str, AttributeValue],
        key: Key,
        series: Series,
        histogram: BoundHistogram,
    ) -> None:
        self.owner = owner  # the OperationTotals
        self.epoch: object = owner.epoch  # stale once the owner forgets its figures
        self.attributes = attributes
        self.operation = str(attributes["operation.name"])
        self.key = key
        self.series = series
        self.record = histogram.record
        self.failures: dict[str, Bound] = {}
        self.kept = False  # whether its owner keeps it for good (collectors then may too)

    def failed(self, error: str) -> Bound:
        """The set with ``error.type`` added, for a block that raised."""
        found = self.failures.get(error)
        if found is None:
            found = self.owner.bind({**self.attributes, "error.type": error})
            if len(self.failures) < FAILURES_KEPT:
                self.failures[error] = found
        return found
