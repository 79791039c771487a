"""What the benchmark modules share: targets and ratios, timing loops, providers, tables.

One module, so that a figure is computed and printed the same way in every
benchmark; ``workloads.py`` holds only the job programs that ``bench_run`` runs.
"""

from __future__ import annotations

import gc
import logging
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric, MetricsData

from jobmeter import testing

T = TypeVar("T")
Progress = Callable[[str], None]
Check = tuple[str, bool]  # a target as printed, and whether it was met

# --- targets and ratios --------------------------------------------------------------


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


@dataclass
class RatioResult:
    """A target's ratio of the medians (which it is judged on) and of the mins."""

    name: str
    median_ratio: float
    min_ratio: float
    limit: float
    passed: bool
    #: The medians the ratio is made of: the measured figure and its reference.
    value: float | None = None
    reference: float | None = None


def ratio_results(
    targets: Iterable[Target], medians: dict[str, float], mins: dict[str, float]
) -> list[RatioResult]:
    found = []
    for target in targets:
        ratio, ok = target.check(medians)
        min_ratio, _ = target.check(mins)
        found.append(RatioResult(
            target.name, ratio, min_ratio, target.limit, ok,
            medians[target.numerator], medians[target.denominator],
        ))  # fmt: skip
    return found


def ratio_checks(ratios: Iterable[RatioResult]) -> list[Check]:
    """Each target with its ratio, and the figure and reference it compares where known."""
    found = []
    for r in ratios:
        figures = ""
        if r.value is not None and r.reference is not None:
            figures = f" = {r.value:.4g} / {r.reference:.4g}"
        found.append((
            f"{r.name} <= {r.limit:.2f} ({r.median_ratio:.3f}{figures}; of the mins "
            f"{r.min_ratio:.3f})", r.passed,
        ))  # fmt: skip
    return found


def pass_miss(ok: bool) -> str:
    """PASS or MISS, for a printed target."""
    return "PASS" if ok else "MISS"


def at_most(limit: float) -> str:
    """A target's limit as the tables print it: ``<= 1.50``."""
    return "<= " + format(limit, ".2f")


# --- repeats -------------------------------------------------------------------------


def median_min_max(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """``items`` starting at ``shift``: an order that rotates from round to round."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def interleaved(
    cases: Sequence[T],
    repeats: int,
    label: str,
    progress: Progress | None,
    *,
    rotate: bool = False,
) -> Iterator[T]:
    """Every case once per repeat, so that a slow stretch of the machine hits all alike."""
    for repeat in range(repeats):
        if progress is not None:
            progress(f"{label}: repeat {repeat + 1}/{repeats}")
        yield from rotated(cases, repeat) if rotate else cases


def fitting_repeats(asked: int, least: int, per_repeat_s: float, budget_s: float) -> int:
    """The repeats of ``per_repeat_s`` each that fit ``budget_s``, never under ``least``.

    A budget of 0 or less is no budget: the repeats asked for.
    """
    if budget_s <= 0 or per_repeat_s * asked <= budget_s:
        return asked
    return min(asked, max(least, int(budget_s // per_repeat_s)))


@contextmanager
def gc_off() -> Iterator[None]:
    """The garbage collector off (after a full collection), as ``timeit`` has it."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- SDK providers and jobmeter's state ----------------------------------------------


def in_memory_provider() -> tuple[MeterProvider, InMemoryMetricReader]:
    """An SDK provider whose reader is collected only when the benchmark asks it to."""
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader], shutdown_on_exit=False), reader


class Providers:
    """The providers of one benchmark's cases, to shut down together when it ends."""

    def __init__(self) -> None:
        self.made: list[MeterProvider] = []

    def new(self) -> tuple[MeterProvider, InMemoryMetricReader]:
        provider, reader = in_memory_provider()
        self.made.append(provider)
        return provider, reader


@contextmanager
def meter_providers() -> Iterator[Providers]:
    """Providers for the block's cases, every one shut down when it ends."""
    made = Providers()
    try:
        yield made
    finally:
        for provider in made.made:
            provider.shutdown()


def metrics_of(data: MetricsData | None) -> list[Metric]:
    """Every metric of one collection."""
    if data is None:
        return []
    return [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def points_of(reader: InMemoryMetricReader, name: str) -> list[object]:
    """The data points of the metric ``name`` in a collection of ``reader``."""
    metrics = metrics_of(reader.get_metrics_data())
    return [point for m in metrics if m.name == name for point in m.data.data_points]


@contextmanager
def jobmeter_reset() -> Iterator[None]:
    """jobmeter's global state reset before and after: a case's globals must not matter."""
    testing.reset()
    try:
        yield
    finally:
        testing.reset()


class LogCapture(logging.Handler):
    """Keeps jobmeter's log records, to print them as notes instead of on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    """jobmeter's log records while the block runs, kept off stderr."""
    capture = LogCapture()
    log = logging.getLogger("jobmeter")
    log.addHandler(capture)
    try:
        yield capture
    finally:
        log.removeHandler(capture)


# --- tables --------------------------------------------------------------------------


class TimedCase(Protocol):
    """A case timed in repeats, in microseconds per call or item."""

    name: str
    description: str
    repeats: int
    median_us: float
    min_us: float
    max_us: float


def timing_lines(rows: Iterable[tuple[TimedCase, int]], width: int, unit: str) -> list[str]:
    """The table of (case, calls or items per repeat): median, min and max in us."""
    lines = [
        f"  {'case':<{width}}{unit + ' x repeats':>17}{'median us':>11}{'min us':>9}"
        f"{'max us':>9}  what"
    ]
    for r, count in rows:
        runs = f"{count:,} x {r.repeats}"
        lines.append(
            f"  {r.name:<{width}}{runs:>17}{r.median_us:>11.3f}{r.min_us:>9.3f}{r.max_us:>9.3f}"
            f"  {r.description}"
        )
    return lines


def ratio_lines(
    ratios: Iterable[RatioResult], width: int, title: str = "ratio (of medians)"
) -> list[str]:
    """The table of targets: ratio of the medians, of the mins, the limit, PASS or MISS."""
    lines = [f"  {title:<{width}}{'value':>7}{'of mins':>9}{'target':>10}"]
    lines.extend(
        f"  {r.name:<{width}}{r.median_ratio:>7.2f}{r.min_ratio:>9.2f}"
        f"{at_most(r.limit):>10}  {pass_miss(r.passed)}"
        for r in ratios
    )
    return lines


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory where it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
