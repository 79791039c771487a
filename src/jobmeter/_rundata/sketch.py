"""A mergeable quantile sketch with a bounded relative error (the DDSketch mapping).

One definition of percentile holds everywhere jobmeter shows one (report,
compare, advise, Comet, plots): linear interpolation between the two closest
ranks, ``rank = q * (n - 1)`` (numpy's and pandas' default, DuckDB's
``quantile_cont``, ``statistics.quantiles(method="inclusive")``).
``quantile_of`` computes it from values. A sketch keeps the values themselves
while it holds at most ``EXACT_LIMIT`` of them, so the percentiles of few
values are exact; beyond, it answers from its buckets:

A positive value ``x`` falls in bucket ``ceil(log(x) / log(GAMMA))``; a
bucket stands for its midpoint, within ``RELATIVE_ERROR`` (about 1 %) of every
value in it, and so is an interpolation between two of them. Sketches of
intervals and processes merge by adding bucket counts, so a run's p95 comes
from its per-interval records. Values are added in sorted batches: one
logarithm per bucket touched, not per value, which keeps the recording cost of
``measure()`` low.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

GAMMA: Final = 1.02
RELATIVE_ERROR: Final = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA: Final = math.log(GAMMA)
#: Values at or below this count as zero (durations under a nanosecond, no CPU time).
ZERO: Final = 1e-9
_ZERO_KEY: Final = "z"
#: A sketch keeps its values, and answers exactly, while it holds at most this many.
EXACT_LIMIT: Final = 100
_VALUES_KEY: Final = "v"


def quantile_of(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0 to 1) of values in ascending order, interpolated between ranks.

    Raises:
        ValueError: no values, or q is not within 0 and 1.
    """
    _check(q)
    if not ordered:
        raise ValueError("quantile of no values")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _check(q: float) -> None:
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be within 0 and 1, not {q}")


class Sketch:
    """Bucket counts of positive values, a count of zeros, and the values while few."""

    __slots__ = ("buckets", "values", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        #: Every value added, unordered, while there are at most EXACT_LIMIT; else None.
        self.values: list[float] | None = []

    @property
    def count(self) -> int:
        """Values added."""
        return self.zeros + sum(self.buckets.values())

    def add_sorted(self, values: Sequence[float]) -> None:
        """Add values given in ascending order."""
        self._keep(values)
        start = bisect_right(values, ZERO)
        self.zeros += start
        buckets, end = self.buckets, len(values)
        while start < end:
            index = math.ceil(math.log(values[start]) / _LOG_GAMMA)
            stop = max(bisect_right(values, GAMMA**index, start), start + 1)
            buckets[index] = buckets.get(index, 0) + stop - start
            start = stop

    def merge(self, other: Sketch) -> None:
        """Add another sketch's counts (and values, while few) to this one."""
        self._keep(other.values)
        self.zeros += other.zeros
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n

    def _keep(self, values: Sequence[float] | None) -> None:
        kept = self.values
        if kept is not None:
            if values is None or len(kept) + len(values) > EXACT_LIMIT:
                self.values = None
            else:
                kept.extend(values)

    def quantile(self, q: float, low: float | None = None, high: float | None = None) -> float:
        """The q-quantile (0 to 1): exact while the sketch holds its values, else within
        ``RELATIVE_ERROR``; clamped to the exact ``low`` and ``high`` when given.

        Raises:
            ValueError: the sketch is empty, or q is not within 0 and 1.
        """
        _check(q)
        total = self.count
        if total == 0:
            raise ValueError("quantile of an empty sketch")
        if self.values is not None and len(self.values) == total:
            value = quantile_of(sorted(self.values), q)
        else:
            position = q * (total - 1)
            rank = math.floor(position)
            below, above = self._ranked(rank, min(rank + 1, total - 1))
            value = below + (above - below) * (position - rank)
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        return value

    def _ranked(self, first: int, second: int) -> tuple[float, float]:
        """The bucket values of two ranks (0-based, ``first <= second``)."""
        found: list[float] = []
        seen = self.zeros
        found += [0.0] * (int(first < seen) + int(second < seen))
        for index in sorted(self.buckets):
            if len(found) == 2:
                break
            seen += self.buckets[index]
            middle = 2 * GAMMA**index / (GAMMA + 1)
            found += [middle] * (int(len(found) == 0 and first < seen) + int(second < seen))
        return found[0], found[1]

    def distribution(self) -> tuple[list[float], list[int]]:
        """Values and their counts, ascending: the values themselves while few, else each
        bucket's midpoint (zeros as 0.0)."""
        if self.values is not None and len(self.values) == self.count:
            counted = sorted(Counter(self.values).items())
            return [v for v, _ in counted], [n for _, n in counted]
        values = [0.0] if self.zeros else []
        counts = [self.zeros] if self.zeros else []
        for index in sorted(self.buckets):
            values.append(2 * GAMMA**index / (GAMMA + 1))
            counts.append(self.buckets[index])
        return values, counts

    def to_json(self) -> str:
        """Compact JSON text: ``{"z": zeros, "<bucket>": count, ..., "v": [values]}``."""
        data: dict[str, int | list[float]] = {
            str(index): n for index, n in sorted(self.buckets.items())
        }
        if self.zeros:
            data[_ZERO_KEY] = self.zeros
        if self.values:
            data[_VALUES_KEY] = sorted(self.values)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Sketch:
        """Read ``to_json``'s text; None, damaged or foreign text gives an empty sketch.

        Text without its values (written before they were kept, or damaged) reads as
        buckets only.
        """
        sketch = cls()
        if not text:
            return sketch
        try:
            data = json.loads(text)
        except ValueError:
            return sketch
        if not isinstance(data, dict):
            return sketch
        values = data.pop(_VALUES_KEY, None)
        for key, n in data.items():
            if not isinstance(n, int) or n < 0:
                continue
            if key == _ZERO_KEY:
                sketch.zeros += n
            else:
                try:
                    index = int(key)
                except ValueError:
                    continue
                sketch.buckets[index] = sketch.buckets.get(index, 0) + n
        count = sketch.count
        if count:
            good = isinstance(values, list) and len(values) == count <= EXACT_LIMIT
            sketch.values = [float(v) for v in values] if good and _numbers(values) else None
        return sketch


def _numbers(values: list[object]) -> bool:
    return all(type(v) in (int, float) and math.isfinite(v) for v in values)  # type: ignore[arg-type]


def merged(texts: Iterable[str | None]) -> Sketch:
    """One sketch from several ``to_json`` texts."""
    total = Sketch()
    for text in texts:
        total.merge(Sketch.from_json(text))
    return total
