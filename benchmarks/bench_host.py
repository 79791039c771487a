"""CPU time of one collection of host metrics: jobmeter's HostCollector against the contrib one.

jobmeter's ``HostCollector(gpu=False)`` (its default groups) and the contrib
``SystemMetricsInstrumentor``, configured for the same system and process
metrics, each sit on a fresh SDK MeterProvider with an InMemoryMetricReader;
one collection is one ``reader.get_metrics_data()``. The instrumentor with its
default config (which also reads the connection table for
``system.network.connections``) is timed beside them for context. Collections
alternate between the three, in a rotating order, with the garbage collector
off; CPU time (``time.process_time()``) is the figure, wall time is printed
next to it.

HostCollector reads every group at each collection (it builds its points
outside the SDK's instruments, in one pass, and every reader's collection
calls it), so collections back to back each read the machine anew, as the
contrib callbacks do. That is checked before timing: a collection after 64 MiB
were allocated must see them. Were a sample kept between collections, its
collections would be spaced 0.25 s apart instead. Where a GPU is present,
GPUCollector is timed alone, its collections 0.25 s apart, since the NVML
sample is shared for 0.2 s.
"""

from __future__ import annotations

import importlib
import statistics
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any

from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData

from benchmarks._common import (
    Check,
    Progress,
    RatioResult,
    Target,
    captured_logs,
    gc_off,
    in_memory_provider,
    meter_providers,
    metrics_of,
    ratio_checks,
    ratio_lines,
    ratio_results,
    rotated,
)
from jobmeter.host import HostCollector

COLLECTIONS = 200
WARMUP_COLLECTIONS = 1
# Seconds the alternating collections may take; past it they stop (never below
# MIN_COLLECTIONS each), so that a slow machine finishes in time.
BUDGET_S = 30.0
MIN_COLLECTIONS = 20
GPU_COLLECTIONS = 20
# GPU samples are shared for 0.2 s: collections this far apart each ask the driver.
GPU_SPACING_S = 0.25
# Were HostCollector to keep a sample between collections, they would be spaced
# this far apart instead.
HOST_SPACING_S = 0.25
MIB = 1024 * 1024

TARGET = Target(
    "host_collection / contrib_collection", "host_collection", "contrib_collection", 0.20
)

# jobmeter's psutil CPU fields (irq and softirq are its cpu.mode "interrupt").
_CPU_MODES = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
_MEMORY_STATES = ["used", "free", "buffers", "cached"]
_DIRECTIONS = ["receive", "transmit"]
# The contrib metrics that jobmeter's default groups also produce (under this
# instrumentation's names); not system.network.connections, not the runtime ones.
CONTRIB_CONFIG: dict[str, list[str] | None] = {
    "system.cpu.time": _CPU_MODES,
    "system.cpu.utilization": _CPU_MODES,
    "system.memory.usage": _MEMORY_STATES,
    "system.memory.utilization": _MEMORY_STATES,
    "system.swap.usage": ["used", "free"],
    "system.swap.utilization": ["used", "free"],
    "system.disk.io": ["read", "write"],
    "system.disk.operations": ["read", "write"],
    "system.network.io": _DIRECTIONS,
    "system.network.packets": _DIRECTIONS,
    "system.network.errors": _DIRECTIONS,
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.disk.io": ["read", "write"],
    "process.thread.count": None,
    "process.open_file_descriptor.count": None,
    "process.context_switches": ["involuntary", "voluntary"],
}


class _DefaultConfigInstrumentor(SystemMetricsInstrumentor):
    """The contrib instrumentor with its default config, instrumented beside the matched one.

    BaseInstrumentor keeps one instance per class: a second
    ``SystemMetricsInstrumentor(...)`` would be the first again, already
    instrumented. A class of its own gets an instance of its own.
    """

    _instance = None


@dataclass
class CollectionResult:
    name: str
    description: str
    collections: int
    cpu_median_ms: float
    cpu_min_ms: float
    wall_median_ms: float
    wall_min_ms: float
    metrics: int
    points_median: float
    points_min: int
    points_max: int
    us_per_point: float
    metric_names: list[str]
    cpu_ms: list[float]
    wall_ms: list[float]


@dataclass
class HostResults:
    target: str
    limit: float
    ratio: float
    min_ratio: float
    wall_ratio: float
    default_ratio: float
    passed: bool
    cases: dict[str, CollectionResult]
    groups: list[str]
    contrib_version: str
    contrib_config: dict[str, list[str] | None]
    collections: int
    asked_collections: int
    budget_s: float
    gpu: CollectionResult | None
    gpu_note: str
    notes: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[Check]:
        ratio = RatioResult(self.target, self.ratio, self.min_ratio, self.limit, self.passed)
        return ratio_checks([ratio])


@dataclass
class _Case:
    """One way of collecting, and what its timed collections gave."""

    name: str
    description: str
    reader: InMemoryMetricReader
    prepare: Callable[[], None] = lambda: None  # untimed, before each collection
    spacing_s: float = 0.0  # least time between the starts of two collections
    last_start: float = float("-inf")
    cpu_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    points: list[int] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def collect(self, timed: bool = True) -> None:
        self.prepare()
        if self.spacing_s:
            wait = self.last_start + self.spacing_s - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        self.last_start = time.perf_counter()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        data = self.reader.get_metrics_data()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        if timed:
            self.cpu_s.append(cpu1 - cpu0)
            self.wall_s.append(wall1 - wall0)
            names, points = _shape(data)
            self.names |= names
            self.points.append(points)

    def result(self) -> CollectionResult:
        if not self.points or not max(self.points):
            raise RuntimeError(
                f"{self.name}: its collections gave no data points: the benchmark does not "
                "measure what it claims"
            )
        cpu_ms = [s * 1e3 for s in self.cpu_s]
        wall_ms = [s * 1e3 for s in self.wall_s]
        cpu_median = statistics.median(cpu_ms)
        points = statistics.median(self.points)
        return CollectionResult(
            name=self.name,
            description=self.description,
            collections=len(cpu_ms),
            cpu_median_ms=cpu_median,
            cpu_min_ms=min(cpu_ms),
            wall_median_ms=statistics.median(wall_ms),
            wall_min_ms=min(wall_ms),
            metrics=len(self.names),
            points_median=points,
            points_min=min(self.points),
            points_max=max(self.points),
            us_per_point=cpu_median * 1e3 / points,
            metric_names=sorted(self.names),
            cpu_ms=cpu_ms,
            wall_ms=wall_ms,
        )


def _shape(data: MetricsData | None) -> tuple[set[str], int]:
    """Metric names and number of data points of one collection."""
    metrics = metrics_of(data)
    return {m.name for m in metrics}, sum(len(m.data.data_points) for m in metrics)


def _process_rss(data: MetricsData | None) -> float | None:
    for metric in metrics_of(data):
        if metric.name == "process.memory.usage":
            points: Any = metric.data.data_points  # a Sum's NumberDataPoints
            return float(sum(p.value for p in points))
    return None


def _reads_anew(reader: InMemoryMetricReader) -> bool:
    """Whether a collection right after another reads the process anew (no kept sample)."""
    before = _process_rss(reader.get_metrics_data())
    held = b"x" * (64 * MIB)  # every page written
    after = _process_rss(reader.get_metrics_data())
    del held
    return before is not None and after is not None and after - before >= 48 * MIB


def _alternate(
    cases: list[_Case],
    collections: int,
    budget_s: float,
    progress: Progress | None,
) -> int:
    """Collect each case in turn, rotating the order; the number of rounds run."""
    for case in cases:
        for _ in range(WARMUP_COLLECTIONS):
            case.collect(timed=False)
    started = time.perf_counter()
    rounds = 0
    with gc_off():
        for i in range(collections):
            if progress is not None and i % 50 == 0:
                progress(f"host: collections {i + 1}-{min(i + 50, collections)}/{collections}")
            for case in rotated(cases, i):
                case.collect()
            rounds += 1
            over = budget_s > 0 and time.perf_counter() - started > budget_s
            if over and rounds >= MIN_COLLECTIONS:
                break
    return rounds


def _gpu(progress: Progress | None) -> tuple[CollectionResult | None, str]:
    """GPUCollector's cost per collection where NVML sees a GPU, else why it was not timed."""
    no_gpu = "GPUCollector: no GPU on this machine, not measured"
    try:
        available = bool(importlib.import_module("jobmeter._core.nvml").nvml().available())
    except ImportError:
        return None, no_gpu
    if not available:
        return None, no_gpu
    try:
        gpu_collector: Any = importlib.import_module("jobmeter.gpu").GPUCollector
    except ImportError as exc:
        return None, f"GPUCollector: a GPU is present but jobmeter.gpu is not importable ({exc})"
    provider, reader = in_memory_provider()
    try:
        gpu_collector(meter_provider=provider)
        case = _Case(
            "gpu", "GPUCollector(), collections 0.25 s apart", reader, spacing_s=GPU_SPACING_S
        )
        if progress is not None:
            progress(f"host: GPUCollector, {GPU_COLLECTIONS} collections {GPU_SPACING_S} s apart")
        for _ in range(WARMUP_COLLECTIONS):
            case.collect(timed=False)
        with gc_off():
            for _ in range(GPU_COLLECTIONS):
                case.collect()
        result = case.result()
    finally:
        provider.shutdown()
    return result, (
        f"GPUCollector: {result.cpu_median_ms:.2f} ms CPU per collection "
        f"(min {result.cpu_min_ms:.2f}; wall {result.wall_median_ms:.2f} ms), "
        f"{result.points_median:.0f} data points, median of {result.collections}"
    )


def run(
    *,
    collections: int = COLLECTIONS,
    budget_s: float = BUDGET_S,
    progress: Progress | None = None,
) -> HostResults:
    """Set up the three collectors, time their collections alternately, tear them down."""
    started = time.perf_counter()
    notes: list[str] = []
    instrumentors: list[SystemMetricsInstrumentor] = []
    with captured_logs() as capture, meter_providers() as providers:
        try:
            provider, host_reader = providers.new()
            collector = HostCollector(gpu=False, meter_provider=provider)
            groups = sorted(collector.groups)
            host = _Case("jobmeter", "HostCollector(gpu=False): " + ", ".join(groups), host_reader)
            if not _reads_anew(host_reader):
                host.spacing_s = HOST_SPACING_S
                notes.append(
                    "HostCollector's back-to-back collections did not each read the process "
                    f"anew: its collections were spaced {HOST_SPACING_S} s apart instead"
                )

            provider, contrib_reader = providers.new()
            contrib = SystemMetricsInstrumentor(config=CONTRIB_CONFIG)
            contrib.instrument(meter_provider=provider)
            instrumentors.append(contrib)
            provider, default_reader = providers.new()
            default = _DefaultConfigInstrumentor()
            default.instrument(meter_provider=provider)
            instrumentors.append(default)
            if not all(i.is_instrumented_by_opentelemetry for i in instrumentors):
                raise RuntimeError("SystemMetricsInstrumentor did not instrument its MeterProvider")

            cases = [
                host,
                _Case(
                    "contrib",
                    f"SystemMetricsInstrumentor, the same metrics ({len(CONTRIB_CONFIG)} keys)",
                    contrib_reader,
                ),
                _Case(
                    "contrib_default",
                    "SystemMetricsInstrumentor, default config (with network connections)",
                    default_reader,
                ),
            ]
            rounds = _alternate(cases, collections, budget_s, progress)
            results = {case.name: case.result() for case in cases}
            gpu, gpu_note = _gpu(progress)
        finally:
            for instrumentor in instrumentors:
                instrumentor.uninstrument()

    if rounds < collections:
        notes.append(
            f"this machine is slow: {rounds} collections each instead of {collections}, "
            f"to fit the {budget_s:.0f} s budget"
        )
    jm, ref = results["jobmeter"], results["contrib"]
    notes += [
        "the contrib system.cpu.time and system.cpu.utilization are per logical CPU (it has "
        "no switch); "
        + (
            "jobmeter's are too here (per_cpu is on)"
            if "per_cpu" in groups
            else "jobmeter's are machine totals (per_cpu is off by default)"
        ),
        "jobmeter's points are built outside the SDK's instruments (a metric producer that "
        "every reader's collection calls); the figure is the whole get_metrics_data() of both",
        "jobmeter also reads what the contrib instrumentation has no metric for: "
        "system.filesystem.usage, system.cpu.load_average.*, process.paging.faults",
    ]
    if jm.points_min != jm.points_max:
        notes.append(
            "jobmeter's point count varies: system.cpu.utilization has no point when no CPU "
            "time passed between two back-to-back collections"
        )
    notes += [f"jobmeter logged: {message}" for message in capture.messages]
    medians = {"host_collection": jm.cpu_median_ms, "contrib_collection": ref.cpu_median_ms}
    mins = {"host_collection": jm.cpu_min_ms, "contrib_collection": ref.cpu_min_ms}
    (ratio,) = ratio_results([TARGET], medians, mins)
    return HostResults(
        target=ratio.name,
        limit=ratio.limit,
        ratio=ratio.median_ratio,
        min_ratio=ratio.min_ratio,
        wall_ratio=jm.wall_median_ms / ref.wall_median_ms,
        default_ratio=jm.cpu_median_ms / results["contrib_default"].cpu_median_ms,
        passed=ratio.passed,
        cases=results,
        groups=groups,
        contrib_version=version("opentelemetry-instrumentation-system-metrics"),
        contrib_config=CONTRIB_CONFIG,
        collections=rounds,
        asked_collections=collections,
        budget_s=budget_s,
        gpu=gpu,
        gpu_note=gpu_note,
        notes=notes,
        seconds=time.perf_counter() - started,
    )


def format_report(results: HostResults) -> str:
    lines = [
        "Host metrics: cost of one collection (InMemoryMetricReader.get_metrics_data()), "
        f"CPU time and wall time, median and min of {results.collections} collections each, "
        "alternating, GC off; opentelemetry-instrumentation-system-metrics "
        f"{results.contrib_version}",
        "",
        f"  {'case':<17}{'CPU ms':>8}{'min':>7}{'wall ms':>9}{'min':>7}{'metrics':>9}"
        f"{'points':>9}{'us/point':>10}  what",
    ]
    for r in results.cases.values():
        points = (
            f"{r.points_median:.0f}"
            if r.points_min == r.points_max
            else f"{r.points_min}-{r.points_max}"
        )
        lines.append(
            f"  {r.name:<17}{r.cpu_median_ms:>8.2f}{r.cpu_min_ms:>7.2f}{r.wall_median_ms:>9.2f}"
            f"{r.wall_min_ms:>7.2f}{r.metrics:>9}{points:>9}{r.us_per_point:>10.1f}"
            f"  {r.description}"
        )
    shown = RatioResult(
        "jobmeter / contrib", results.ratio, results.min_ratio, results.limit, results.passed
    )
    lines += [
        "",
        *ratio_lines([shown], 38, "ratio (CPU time, of medians)"),
        f"  {'jobmeter / contrib_default':<38}{results.default_ratio:>7.2f}{'':>9}{'context':>10}",
        f"  {'wall time, jobmeter / contrib':<38}{results.wall_ratio:>7.2f}",
        "",
    ]
    lines += textwrap.wrap(
        ", ".join(results.contrib_config),
        width=100,
        initial_indent="  contrib config: ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    )
    lines += [f"  note: {note}" for note in results.notes]
    lines += ["", f"  {results.gpu_note}", f"\n  ({results.seconds:.1f} s)"]
    return "\n".join(lines)
