"""Benchmarks of jobmeter against references measured in the same run.

Run ``make bench`` (``python -m benchmarks``); see benchmarks/README.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A ratio the figures should stay under, such as ``measure_full / bare_record <= 3.0``."""

    name: str
    numerator: str
    denominator: str
    limit: float

    def check(self, figures: dict[str, float]) -> tuple[float, bool]:
        """The ratio of the two figures, and whether it meets the target."""
        ratio = figures[self.numerator] / figures[self.denominator]
        return ratio, ratio <= self.limit


def pass_miss(ok: bool) -> str:
    """PASS or MISS, for a printed target."""
    return "PASS" if ok else "MISS"


class LogCapture(logging.Handler):
    """Keeps jobmeter's log records, to print them as notes instead of on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
