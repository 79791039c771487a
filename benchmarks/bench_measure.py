"""Cost of one ``measure()`` block, against a bare SDK record and a naive psutil version.

Every case gets its own SDK MeterProvider with an InMemoryMetricReader that is
never collected while timing, so only the recording path is measured. Cases are
timed with ``timeit`` (garbage collector off) from source statements, so the
loop adds no function call of its own; repeats of the cases are interleaved, so
that a slow stretch of the machine hits every case alike.

The ``*_recording`` cases time the same statements while a run is recorded: a
``jobmeter._rundata.recorder.Recorder`` is started on a fresh directory before each
of their repeats and stopped after it, and the time of ``stop()`` (its final
drain, aggregation and write) is added to the repeat's. The recorder routes
every source of the process, so it is active around those repeats only. After
each, the operations recorded in the run directory must count every call.
"""

from __future__ import annotations

import statistics
import tempfile
import timeit
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any

import psutil
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.util.types import AttributeValue

import jobmeter
from benchmarks._common import (
    Check,
    Progress,
    Providers,
    RatioResult,
    Target,
    fitting_repeats,
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
from jobmeter._core.instruments import DURATION_BUCKETS
from jobmeter._rundata import records
from jobmeter._rundata.recorder import Recorder

CALLS_FAST = 200_000
CALLS_NAIVE = 20_000
REPEATS = 7
# Seconds the timed repeats may take in all. On a slow machine the repeats drop
# to MIN_REPEATS first, then every case's calls shrink by the same factor (never
# below MIN_SCALE of the asked-for counts). 0 turns the budget off.
BUDGET_S = 40.0
MIN_REPEATS = 5
MIN_SCALE = 0.1
# Drain interval of the recorder in the *_recording cases.
RECORDING_INTERVAL_S = 1.0

TARGETS = (
    Target("measure_full / bare_record", "measure_full", "bare_record", 2.0),
    Target("measure_duration_only / bare_record", "measure_duration_only", "bare_record", 1.2),
    Target("measure_full / naive_psutil", "measure_full", "naive_psutil", 0.25),
    Target("measure_peak / bare_record", "measure_peak", "bare_record", 4.0),
    # A run turns the peak on: what recording adds is measured against the peak case.
    Target("measure_full_recording / measure_peak", "measure_full_recording", "measure_peak", 1.05),
    Target(
        "measure_duration_only_recording / measure_duration_only",
        "measure_duration_only_recording",
        "measure_duration_only",
        1.05,
    ),
)


class NaiveCollector:
    """``measure()`` built the obvious way: psutil on enter and exit, one SDK call per metric."""

    def __init__(self, meter: Meter) -> None:
        self.process = psutil.Process()
        self.duration = meter.create_histogram(
            "naive.operation.duration",
            unit="s",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.cpu_user = meter.create_counter("naive.operation.cpu.user", unit="s")
        self.cpu_system = meter.create_counter("naive.operation.cpu.system", unit="s")
        self.memory = meter.create_histogram("naive.operation.memory.usage", unit="By")
        self.disk_read = meter.create_counter("naive.operation.disk.read", unit="By")
        self.disk_write = meter.create_counter("naive.operation.disk.write", unit="By")

    def measure(
        self, operation: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> NaiveMeasurement:
        merged: dict[str, AttributeValue] = dict(attributes or {})
        merged["operation.name"] = operation
        return NaiveMeasurement(self, merged)


class NaiveMeasurement:
    __slots__ = ("_attributes", "_collector", "_cpu", "_io", "_memory", "_start")

    def __init__(self, collector: NaiveCollector, attributes: dict[str, AttributeValue]) -> None:
        self._collector = collector
        self._attributes = attributes

    def __enter__(self) -> NaiveMeasurement:
        process = self._collector.process
        self._cpu = process.cpu_times()
        self._memory = process.memory_info()
        self._io = process.io_counters()
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = perf_counter()
        c = self._collector
        cpu = c.process.cpu_times()
        memory = c.process.memory_info()
        io = c.process.io_counters()
        a = self._attributes
        c.duration.record(end - self._start, a)
        c.cpu_user.add(max(cpu.user - self._cpu.user, 0.0), a)
        c.cpu_system.add(max(cpu.system - self._cpu.system, 0.0), a)
        c.memory.record(memory.rss, a)
        c.disk_read.add(max(io.read_bytes - self._io.read_bytes, 0), a)
        c.disk_write.add(max(io.write_bytes - self._io.write_bytes, 0), a)


@dataclass
class Case:
    """One timed statement and where its recordings land."""

    name: str
    description: str
    stmt: str
    namespace: dict[str, Any]
    calls: int
    reader: InMemoryMetricReader
    histogram: str
    recording: bool = False
    estimate_us: float = 0.0
    per_call_us: list[float] = field(default_factory=list)
    stop_ms: list[float] = field(default_factory=list)
    executed: int = 0
    run_recorded: int = 0


@dataclass
class CaseResult:
    name: str
    description: str
    calls: int
    repeats: int
    median_us: float
    min_us: float
    max_us: float
    per_call_us: list[float]
    recorded: int
    # *_recording cases: Recorder.stop() per repeat (included in per_call_us), and
    # the calls counted in the run directories, warm-up included.
    stop_ms: list[float] = field(default_factory=list)
    run_recorded: int | None = None


@dataclass
class MeasureResults:
    cases: dict[str, CaseResult]
    ratios: list[RatioResult]
    seconds: float
    scale: float
    budget_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[Check]:
        return ratio_checks(self.ratios)


MEASURE_FULL = 'with collector.measure("load", {"table": "orders"}):\n    pass'
MEASURE_PEAK = 'with collector.measure("load", {"table": "orders"}, peak_memory=True):\n    pass'
MEASURE_DURATION_ONLY = (
    'with collector.measure("load", {"table": "orders"}, resources=False):\n    pass'
)


def _cases(calls_fast: int, calls_naive: int, providers: Providers) -> list[Case]:
    def measured(name: str, description: str, stmt: str, recording: bool = False) -> Case:
        """A case of jobmeter's own collector, on a provider of its own."""
        provider, reader = providers.new()
        collector = jobmeter.MetricsCollector("bench", meter_provider=provider)
        return Case(name, description, stmt, {"collector": collector}, calls_fast, reader,
                    "jobmeter.operation.duration", recording=recording)  # fmt: skip

    provider, reader = providers.new()
    histogram = provider.get_meter("bench").create_histogram(
        "bench.duration", unit="s", explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
    )
    bare = Case(
        "bare_record",
        "SDK Histogram.record(0.001, {operation.name, table})",
        'histogram.record(0.001, {"operation.name": "load", "table": "orders"})',
        {"histogram": histogram},
        calls_fast,
        reader,
        "bench.duration",
    )
    full = measured(
        "measure_full", 'with collector.measure("load", {"table": "orders"}): pass', MEASURE_FULL
    )
    peak = measured(
        "measure_peak", "the same with peak_memory=True (the block's peak RSS)", MEASURE_PEAK
    )
    duration_only = measured(
        "measure_duration_only", "the same with resources=False", MEASURE_DURATION_ONLY
    )
    provider, reader = providers.new()
    naive = Case(
        "naive_psutil",
        "psutil cpu/memory/io on enter and exit, 6 SDK calls",
        'with naive.measure("load", {"table": "orders"}):\n    pass',
        {"naive": NaiveCollector(provider.get_meter("bench"))},
        calls_naive,
        reader,
        "naive.operation.duration",
    )
    full_recording = measured(
        "measure_full_recording",
        "measure_full while a run is recorded (the peak on; Recorder.stop() included)",
        MEASURE_FULL,
        recording=True,
    )
    duration_only_recording = measured(
        "measure_duration_only_recording",
        "measure_duration_only while a run is recorded",
        MEASURE_DURATION_ONLY,
        recording=True,
    )
    # Each recording case right after its base case, so that both see the same stretch.
    return [bare, full, peak, full_recording, duration_only, duration_only_recording, naive]


def _run_count(directory: Path) -> int:
    """The calls counted by the operations recorded in a run directory."""
    found = records.read(directory, "operations")
    if found.skipped:
        raise RuntimeError(f"{found.skipped} damaged operation record(s) in {directory}")
    return sum(row["count"] or 0 for row in found.rows)


def _timeit(case: Case, timer: timeit.Timer, calls: int) -> float:
    """Seconds for ``calls`` runs of the case; a recording case's Recorder.stop() included."""
    if not case.recording:
        seconds = timer.timeit(calls)
        case.executed += calls
        return seconds
    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-recording-") as temporary:
        directory = Path(temporary)
        recorder = Recorder(directory, interval=RECORDING_INTERVAL_S).start()
        try:
            seconds = timer.timeit(calls)
            started = perf_counter()
            recorder.stop()
            stopped = perf_counter() - started
        finally:
            recorder.stop()  # idempotent; routes nothing anywhere after a failure
        case.executed += calls
        counted = _run_count(directory)
        if counted != calls:
            raise RuntimeError(
                f"{case.name}: {calls} blocks ran while recording but the run's operations "
                f"count {counted}: records were lost or doubled"
            )
        case.run_recorded += counted
    case.stop_ms.append(stopped * 1e3)
    return seconds + stopped


def _histogram_count(reader: InMemoryMetricReader, name: str) -> int:
    points = points_of(reader, name)
    return sum(point.count for point in points if isinstance(point, HistogramDataPoint))


def run(
    *,
    calls_fast: int = CALLS_FAST,
    calls_naive: int = CALLS_NAIVE,
    repeats: int = REPEATS,
    budget_s: float = BUDGET_S,
    progress: Progress | None = None,
) -> MeasureResults:
    """Time every case ``repeats`` times, interleaved; median and min per call, in us."""
    started = perf_counter()
    # Collectors get their provider explicitly; jobmeter's globals must not matter.
    with jobmeter_reset(), meter_providers() as providers:
        cases = _cases(calls_fast, calls_naive, providers)
        timers = {case.name: timeit.Timer(case.stmt, globals=case.namespace) for case in cases}
        for case in cases:  # warm-up (caches, first aggregation), and a first estimate
            warm = max(case.calls // 10, 1)
            seconds = _timeit(case, timers[case.name], warm)
            case.estimate_us = seconds / warm * 1e6
        for case in cases:
            case.stop_ms.clear()  # the warm-up's are not figures
        repeats, scale = _fit(cases, repeats, budget_s)
        for case in cases:
            case.calls = max(round(case.calls * scale), 1)
        for case in interleaved(cases, repeats, "measure", progress):
            seconds = _timeit(case, timers[case.name], case.calls)
            case.per_call_us.append(seconds / case.calls * 1e6)
        results: dict[str, CaseResult] = {}
        for case in cases:
            recorded = _histogram_count(case.reader, case.histogram)
            if recorded != case.executed:
                raise RuntimeError(
                    f"{case.name}: {case.executed} blocks ran but the histogram counted "
                    f"{recorded}: the benchmark does not measure what it claims"
                )
            median_us, min_us, max_us = median_min_max(case.per_call_us)
            results[case.name] = CaseResult(
                name=case.name,
                description=case.description,
                calls=case.calls,
                repeats=repeats,
                median_us=median_us,
                min_us=min_us,
                max_us=max_us,
                per_call_us=case.per_call_us,
                recorded=recorded,
                stop_ms=case.stop_ms,
                run_recorded=case.run_recorded if case.recording else None,
            )
    medians = {name: r.median_us for name, r in results.items()}
    mins = {name: r.min_us for name, r in results.items()}
    ratios = ratio_results(TARGETS, medians, mins)
    return MeasureResults(results, ratios, perf_counter() - started, scale, budget_s)


def _fit(cases: list[Case], repeats: int, budget_s: float) -> tuple[int, float]:
    """Repeats and a factor on the calls that keep the timed part within the budget."""
    per_repeat_s = sum(case.calls * case.estimate_us for case in cases) / 1e6
    repeats = fitting_repeats(repeats, MIN_REPEATS, per_repeat_s, budget_s)
    if budget_s <= 0 or per_repeat_s * repeats <= budget_s:
        return repeats, 1.0
    return repeats, max(MIN_SCALE, min(1.0, budget_s / (per_repeat_s * repeats)))


def format_report(results: MeasureResults) -> str:
    lines = [
        "measure(): cost per block, microseconds per call "
        "(timeit, GC off, median and min of the repeats)",
        "",
        *timing_lines(((r, r.calls) for r in results.cases.values()), 32, "calls"),
    ]
    recording = [r for r in results.cases.values() if r.stop_ms]
    if recording:
        lines.append("")
    for r in recording:
        stop = statistics.median(r.stop_ms)
        lines.append(
            f"  {r.name}: Recorder.stop() {stop:.1f} ms median "
            f"({stop * 1e3 / r.calls:.3f} us per call, in the figure above); "
            f"run records count {r.run_recorded:,} calls, all of them"
        )
    lines += ["", *ratio_lines(results.ratios, 56)]
    if results.scale < 1.0:
        lines.append(
            f"\n  note: this machine is slow: calls scaled to {results.scale:.0%} of "
            f"{CALLS_FAST:,} / {CALLS_NAIVE:,} to fit the {results.budget_s:.0f} s budget "
            "(--budget-s 0 runs the full counts)"
        )
    lines.append(f"\n  ({results.seconds:.1f} s)")
    return "\n".join(lines)
