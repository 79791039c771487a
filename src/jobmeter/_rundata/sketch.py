"""A mergeable quantile sketch with a bounded relative error (the DDSketch mapping).

A positive value ``x`` falls in bucket ``ceil(log(x) / log(GAMMA))``; a
quantile is the midpoint of its bucket, within ``RELATIVE_ERROR`` (about 1 %)
of the true value. Sketches of intervals and processes merge by adding bucket
counts, so a run's p95 comes from its per-interval records without keeping a
single raw value. Values are added in sorted batches: one logarithm per bucket
touched, not per value, which keeps the recording cost of ``measure()`` low.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Final

GAMMA: Final = 1.02
RELATIVE_ERROR: Final = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA: Final = math.log(GAMMA)
#: Values at or below this count as zero (durations under a nanosecond, no CPU time).
ZERO: Final = 1e-9
_ZERO_KEY: Final = "z"


class Sketch:
    """Bucket counts of positive values, plus a count of zeros."""

    __slots__ = ("buckets", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0

    @property
    def count(self) -> int:
        """Values added."""
        return self.zeros + sum(self.buckets.values())

    def add_sorted(self, values: Sequence[float]) -> None:
        """Add values given in ascending order."""
        start = bisect_right(values, ZERO)
        self.zeros += start
        buckets, end = self.buckets, len(values)
        while start < end:
            index = math.ceil(math.log(values[start]) / _LOG_GAMMA)
            stop = max(bisect_right(values, GAMMA**index, start), start + 1)
            buckets[index] = buckets.get(index, 0) + stop - start
            start = stop

    def merge(self, other: Sketch) -> None:
        """Add another sketch's counts to this one."""
        self.zeros += other.zeros
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n

    def quantile(self, q: float, low: float | None = None, high: float | None = None) -> float:
        """The q-quantile (0 to 1), clamped to the exact ``low`` and ``high`` when given.

        Raises:
            ValueError: the sketch is empty, or q is not within 0 and 1.
        """
        if not 0 <= q <= 1:
            raise ValueError(f"quantile must be within 0 and 1, not {q}")
        total = self.count
        if total == 0:
            raise ValueError("quantile of an empty sketch")
        rank = q * (total - 1)
        value = 0.0
        if rank >= self.zeros:
            seen = self.zeros
            for index in sorted(self.buckets):
                seen += self.buckets[index]
                if seen > rank:
                    value = 2 * GAMMA**index / (GAMMA + 1)
                    break
        if low is not None:
            value = max(value, low)
        if high is not None:
            value = min(value, high)
        return value

    def to_json(self) -> str:
        """Compact JSON text: ``{"z": zeros, "<bucket>": count, ...}``."""
        data = {str(index): n for index, n in sorted(self.buckets.items())}
        if self.zeros:
            data[_ZERO_KEY] = self.zeros
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Sketch:
        """Read ``to_json``'s text; None, damaged or foreign text gives an empty sketch."""
        sketch = cls()
        if not text:
            return sketch
        try:
            data = json.loads(text)
        except ValueError:
            return sketch
        if not isinstance(data, dict):
            return sketch
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
        return sketch


def merged(texts: Iterable[str | None]) -> Sketch:
    """One sketch from several ``to_json`` texts."""
    total = Sketch()
    for text in texts:
        total.merge(Sketch.from_json(text))
    return total
