"""Cost per item of counting a backfill, against a bare OTel ``Counter.add`` and tqdm.

Every case iterates over the same ``range`` and counts each item once, so the
loop costs the same everywhere; the figure is microseconds per item. Each
jobmeter and OTel case has its own SDK MeterProvider with an
InMemoryMetricReader that is never collected while timing, so only the
recording path is timed. Cases are timed with ``timeit`` (garbage collector
off) from source statements, and the repeats of the cases are interleaved.
After timing, each case's count is checked against the items iterated.
"""

from __future__ import annotations

import io
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from tqdm import tqdm

from benchmarks._common import (
    Check,
    Progress,
    Providers,
    RatioResult,
    Target,
    interleaved,
    jobmeter_reset,
    median_min_max,
    meter_providers,
    points_of,
    ratio_checks,
    ratio_lines,
    ratio_results,
    timing_lines,
)
from jobmeter.backfill import Backfill

ITEMS = 100_000
REPEATS = 7

TARGETS = (
    Target("track / counter_add", "track", "counter_add", 2.0),
    Target("done / counter_add", "done", "counter_add", 1.0),
)


@dataclass
class Case:
    name: str
    description: str
    stmt: str
    namespace: dict[str, Any]
    counted: Callable[[], int]
    per_item_us: list[float] = field(default_factory=list)
    executed: int = 0


@dataclass
class CaseResult:
    name: str
    description: str
    items: int
    repeats: int
    median_us: float
    min_us: float
    max_us: float
    per_item_us: list[float]


@dataclass
class BackfillResults:
    cases: dict[str, CaseResult]
    ratios: list[RatioResult]
    informational: dict[str, float]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[Check]:
        return ratio_checks(self.ratios)


def _counter_total(reader: InMemoryMetricReader, name: str) -> int:
    points = points_of(reader, name)
    return int(sum(point.value for point in points if isinstance(point, NumberDataPoint)))


def _cases(items: int, providers: Providers) -> list[Case]:
    data = range(items)
    made, reader = providers.new()
    counter = made.get_meter("bench").create_counter("bench.items", unit="{item}")
    attributes = {"jobmeter.backfill.name": "bench", "jobmeter.backfill.outcome": "done"}
    cases = [
        Case("bare_loop", "for _ in range(n): pass (the loop alone)",
             "for _ in data:\n    pass", {"data": data}, lambda: 0),
        Case("counter_add", "for _ in range(n): counter.add(1, {name, outcome}) (bare OTel)",
             "for _ in data:\n    counter.add(1, attributes)",
             {"data": data, "counter": counter, "attributes": attributes},
             lambda: _counter_total(reader, "bench.items")),
    ]  # fmt: skip
    made, _ = providers.new()
    done_bf = Backfill("bench-done", progress=False, meter_provider=made)
    cases.append(Case("done", "for _ in range(n): bf.done()", "for _ in data:\n    bf.done()",
                      {"data": data, "bf": done_bf}, lambda: done_bf.counts["done"]))  # fmt: skip
    made, _ = providers.new()
    track_bf = Backfill("bench-track", progress=False, meter_provider=made)
    cases.append(Case("track", "for _ in bf.track(range(n)): pass (count + item duration)",
                      "for _ in bf.track(data):\n    pass", {"data": data, "bf": track_bf},
                      lambda: track_bf.counts["done"]))  # fmt: skip
    made, _ = providers.new()
    untimed_bf = Backfill("bench-untimed", progress=False, meter_provider=made)
    untimed = "for _ in bf.track(data, timed=False):\n    pass"
    cases.append(
        Case(
            "track_untimed",
            "for _ in bf.track(range(n), timed=False): pass",
            untimed,
            {"data": data, "bf": untimed_bf},
            lambda: untimed_bf.counts["done"],
        )
    )
    sink = io.StringIO()
    tqdm_count = [0]

    def bar(iterable: range) -> Any:
        tqdm_count[0] += len(iterable)
        return tqdm(iterable, file=sink, mininterval=0.1)

    cases.append(Case("tqdm", "for _ in tqdm(range(n), file=StringIO()): pass",
                      "for _ in bar(data):\n    pass", {"data": data, "bar": bar},
                      lambda: tqdm_count[0]))  # fmt: skip
    return cases


def run(
    *, items: int = ITEMS, repeats: int = REPEATS, progress: Progress | None = None
) -> BackfillResults:
    """Time every case ``repeats`` times, interleaved; median and min per item, in us."""
    started = perf_counter()
    with jobmeter_reset(), meter_providers() as providers:
        cases = _cases(items, providers)
        timers = {case.name: timeit.Timer(case.stmt, globals=case.namespace) for case in cases}
        for case in cases:  # warm-up
            timers[case.name].timeit(1)
            case.executed += items
        for case in interleaved(cases, repeats, "backfill", progress):
            seconds = timers[case.name].timeit(1)
            case.executed += items
            case.per_item_us.append(seconds / items * 1e6)
        for case in cases:
            counted = case.counted()
            if case.name != "bare_loop" and counted != case.executed:
                raise RuntimeError(
                    f"{case.name}: {case.executed} items ran but {counted} were counted: "
                    "the benchmark does not measure what it claims"
                )
    results = {
        case.name: CaseResult(
            case.name,
            case.description,
            items,
            repeats,
            *median_min_max(case.per_item_us),
            case.per_item_us,
        )
        for case in cases
    }
    medians = {name: r.median_us for name, r in results.items()}
    mins = {name: r.min_us for name, r in results.items()}
    informational = {
        "track_untimed / counter_add": medians["track_untimed"] / medians["counter_add"],
        "track / tqdm": medians["track"] / medians["tqdm"],
        "track_untimed / tqdm": medians["track_untimed"] / medians["tqdm"],
        "done / tqdm": medians["done"] / medians["tqdm"],
    }
    ratios = ratio_results(TARGETS, medians, mins)
    return BackfillResults(results, ratios, informational, perf_counter() - started)


def format_report(results: BackfillResults) -> str:
    lines = [
        "Backfill: cost per item, microseconds (timeit, GC off, median and min of the repeats)",
        "",
        *timing_lines(((r, r.items) for r in results.cases.values()), 14, "items"),
        "",
        *ratio_lines(results.ratios, 30),
    ]
    for name, value in results.informational.items():
        lines.append(f"  {name:<30}{value:>7.2f}")
    lines.append(f"\n  ({results.seconds:.1f} s)")
    return "\n".join(lines)
