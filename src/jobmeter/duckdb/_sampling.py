"""Sampled profiling: which executions of a query shape run with DuckDB's profiler on.

DuckDB's profiler times every operator of every chunk, whatever
``tracked_metrics`` says: measured on DuckDB 2.0 with jobmeter's lean settings,
it adds about 45 µs to a ``SELECT 42`` (0.2 ms of DuckDB's time) and 2 to 6 %
to queries of 1 ms to 0.25 s (TPC-H at scale factor 0.1, a 60-million-row
aggregate). So a shape's first execution is profiled, then one in ``k``,
with ``k`` chosen from the shape's measured duration ``d`` so that the
profiler's expected cost, ``FIXED_COST_S + RELATIVE_COST * d`` per profiled
execution (reading and parsing the profile included), stays within ``budget``
of the shape's time, and at least ``min_rate`` of its executions are profiled.
The relative cost does not fall for long queries, so long shapes are not
always profiled: at the default 0.25 % budget a long shape has one execution
in 25 profiled, a ``SELECT 42`` one in about 125. Only the first execution is
always profiled (``first=1``): each early profile of a long query costs 6 %
of it, so a shape run 25 times would spend 0.7 % of its time on three first
profiles alone, more than the budget; the blocks give the figures after it.

After the first ones, a shape's executions are cut in blocks of ``k``
and one execution of each block is profiled, at a position that moves from
block to block (the golden-ratio sequence): deterministic, so a shape run
``first + n * k`` times at a fixed ``k`` is profiled exactly ``first + n``
times, and without the aliasing of every ``k``-th execution when a loop goes
through its partitions in a cycle.
Switching the profiler between two statements is ``disable_profiling()`` /
``enable_profiling()`` on the connection, which set DuckDB's client settings
directly without running a statement (0.07 µs each, against 110 µs for a
``SET``); the profiler is only switched when the decision changes.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

from jobmeter.duckdb._profile import QueryProfile
from jobmeter.duckdb._totals import Figures

# The profiler's cost per profiled execution: a fixed part (DuckDB's setup, the
# read of the profile, its parse) and a part proportional to the query's time.
# Measured by benchmarks/bench_duckdb.py and on single queries, DuckDB 2.0.1.
FIXED_COST_S: Final = 50e-6
RELATIVE_COST: Final = 0.06
# Shapes with a sampling state of their own per database; the rest share one.
MAX_SAMPLED_SHAPES: Final = 4096
_OTHER: Final = "(other)"
_GOLDEN: Final = 0.6180339887498949  # positions within blocks: frac(n * golden ratio)
_KEPT_BLOCKS: Final = 8  # blocks whose profile is kept for executions not yet recorded


@dataclass(frozen=True, slots=True)
class ProfileSampling:
    """How many executions of each query shape DuckDB's profiler runs for.

    Duration, returned rows and errors are recorded for every execution; the
    profiler's figures (CPU time, rows scanned, bytes, row groups, phase and
    operator times) come from the profiled ones and are scaled to all
    executions of their shape.

    Args:
        first: the first executions of each shape, always profiled (at least 1).
        budget: the share of a shape's time its profiling may cost, from 0 to 1.
        min_rate: the smallest share of a shape's executions that is profiled,
            whatever it costs, from 0 to 1 (1 profiles every execution).

    Example:
        >>> ProfileSampling(first=1, budget=0.005, min_rate=0.001).interval(0.01)
        13
    """

    first: int = 1
    budget: float = 0.0025
    min_rate: float = 0.001

    def __post_init__(self) -> None:
        if not isinstance(self.first, int) or isinstance(self.first, bool) or self.first < 1:
            raise ValueError(f"first must be an int >= 1, got {self.first!r}")
        for name in ("budget", "min_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
        if self.budget == 0 and self.min_rate == 0:
            raise ValueError("budget and min_rate are both 0: nothing would be profiled")

    def rate(self, seconds: float) -> float:
        """The share of a shape's executions that is profiled.

        Args:
            seconds: the shape's average duration in DuckDB.

        Returns:
            From ``min_rate`` to 1: what keeps the profiler within ``budget``.
        """
        fitting = self.budget * seconds / (FIXED_COST_S + RELATIVE_COST * seconds)
        return min(1.0, max(self.min_rate, fitting))

    def interval(self, seconds: float) -> int:
        """The block size ``k``: one execution in ``k`` is profiled.

        Args:
            seconds: the shape's average duration in DuckDB.

        Returns:
            ``ceil(1 / rate(seconds))``, at least 1.
        """
        return max(1, math.ceil(1.0 / self.rate(seconds) - 1e-9))


class ShapeSamples:
    """One query shape's sampling: its blocks of executions and what their profiles said.

    ``block``, ``left``, ``countdown``, ``executions`` and ``seconds`` move in
    the job's thread (a lost update between two threads only shifts a
    sample); the profiles are the query instruments' (under their lock).
    """

    __slots__ = (
        "block", "blocks", "countdown", "executions", "figures", "latest", "left", "phase",
        "profiled", "sampling", "seconds",
    )  # fmt: skip

    def __init__(self, sampling: ProfileSampling) -> None:
        self.sampling = sampling
        self.block = 0  # the current block: 1 .. first are one execution each
        self.left = 0  # executions of the current block not started yet
        self.countdown = 0  # executions until the block's profiled one (<= 0: it started)
        self.phase = 0.0  # where in a block its profiled execution falls, 0 to 1
        self.executions = 0  # executions finished (profiled or not)
        self.seconds = 0.0  # their duration in DuckDB
        self.profiled = 0  # executions whose profile was read, summed in figures
        self.figures = Figures()
        self.blocks: dict[int, QueryProfile] = {}  # the latest blocks' profiles
        self.latest = 0  # the latest block with a profile

    def decide(self) -> bool:
        """Whether the execution starting now is profiled (it is in block ``self.block``)."""
        if self.left <= 0:
            self._next_block()
        self.left -= 1
        self.countdown -= 1
        return self.countdown == 0

    def _next_block(self) -> None:
        sampling = self.sampling
        self.block += 1
        if self.block <= sampling.first or not self.executions:
            self.left = self.countdown = 1
            return
        k = sampling.interval(self.seconds / self.executions)
        self.phase = (self.phase + _GOLDEN) % 1.0
        self.left = k
        self.countdown = 1 + int(self.phase * k)  # 1 .. k

    def add(self, block: int, profile: QueryProfile) -> None:
        """The profile of block ``block``'s profiled execution (under the instruments' lock)."""
        self.figures.add(profile)
        self.profiled += 1
        self.blocks[block] = profile
        if block > self.latest:
            self.latest = block
            if len(self.blocks) > _KEPT_BLOCKS:
                for old in [b for b in self.blocks if b <= block - _KEPT_BLOCKS]:
                    del self.blocks[old]


class SamplingPolicy:
    """A collector's sampling states: one per database and query shape, capped."""

    def __init__(self, sampling: ProfileSampling) -> None:
        self.sampling = sampling
        self._lock = threading.Lock()
        self._namespaces: dict[str, dict[str, ShapeSamples]] = {}
        self._count = 0

    def shapes_of(self, namespace: str) -> dict[str, ShapeSamples]:
        """The states of one database's shapes, by shape hash (shared by its connections)."""
        with self._lock:
            return self._namespaces.setdefault(namespace, {})

    def new(self, shapes: dict[str, ShapeSamples], shape_hash: str) -> ShapeSamples:
        """The state of a shape not seen yet (past ``MAX_SAMPLED_SHAPES``, a shared one)."""
        with self._lock:
            found = shapes.get(shape_hash)
            if found is not None:
                return found
            if self._count >= MAX_SAMPLED_SHAPES:
                return shapes.setdefault(_OTHER, ShapeSamples(self.sampling))
            self._count += 1
            found = shapes[shape_hash] = ShapeSamples(self.sampling)
            return found
