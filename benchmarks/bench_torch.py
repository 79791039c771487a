"""Cost of ``jobmeter.torch.instrument()`` on a small model on CPU, against the bare model.

Each case runs the same small MLP (Linear/ReLU, five modules under a
Sequential) on the same batch, on its own copy of the model; the instrumented
ones record into their own SDK MeterProvider with an InMemoryMetricReader that
is never collected while timing. Cases are timed with ``timeit`` (garbage
collector off), their repeats interleaved, and the figure is microseconds per
call (a forward, or a forward and its backward). After timing, the model's
forward blocks are checked against the calls made. PyTorch runs on one
intra-op thread, so that a small model's figures are not the thread pool's.
"""

from __future__ import annotations

import copy
import functools
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

import torch
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import jobmeter.torch
from benchmarks._common import (
    Check,
    Progress,
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
from jobmeter.collector import MetricsCollector

CALLS = 2_000
REPEATS = 7
WIDTH, BATCH = 64, 32

TARGETS = (
    Target("depth1 / bare", "depth1", "bare", 2.0),
    Target("depth1_backward / bare_backward", "depth1_backward", "bare_backward", 2.0),
)


@dataclass
class Case:
    name: str
    description: str
    stmt: str
    namespace: dict[str, Any]
    counted: Callable[[], int]
    per_call_us: list[float] = field(default_factory=list)
    executed: int = 0


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


@dataclass
class TorchResults:
    cases: dict[str, CaseResult]
    ratios: list[RatioResult]
    informational: dict[str, float]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[Check]:
        return ratio_checks(self.ratios)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(2):
        layers += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(WIDTH, 10))


def _forwards(reader: InMemoryMetricReader) -> int:
    """Forward blocks of the model itself."""
    return sum(
        p.count
        for p in points_of(reader, "jobmeter.operation.duration")
        if isinstance(p, HistogramDataPoint)
        and (p.attributes or {}).get("torch.module") == "Sequential"
        and (p.attributes or {}).get("torch.phase") == "forward"
    )


def _nothing() -> int:
    return 0


def _cases(providers: Any) -> list[Case]:
    base = _model()
    x = torch.randn(BATCH, WIDTH)
    forward = "with no_grad():\n    model(x)"
    both = "model(x).sum().backward()"
    cases = []
    plan: tuple[tuple[str, str, str, dict[str, Any] | None], ...] = (
        ("bare", "model(x) under no_grad, no hooks", forward, None),
        ("depth0", "instrument(model, depth=0): the model only", forward, {"depth": 0}),
        ("depth1", "instrument(model): the model and its 5 children", forward, {"depth": 1}),
        ("depth1_resources", "instrument(model, resources=True)", forward,
         {"depth": 1, "resources": True}),
        ("bare_backward", "model(x).sum().backward(), no hooks", both, None),
        ("depth1_forward_only", "instrument(model), forward and backward", both, {"depth": 1}),
        ("depth1_backward", "instrument(model, backward=True), forward and backward", both,
         {"depth": 1, "backward": True}),
    )  # fmt: skip
    for name, description, stmt, options in plan:
        model = copy.deepcopy(base)
        counted: Callable[[], int] = _nothing
        if options is not None:
            provider, reader = providers.new()
            ops = MetricsCollector("bench", meter_provider=provider)
            jobmeter.torch.instrument(model, collector=ops, **options)
            counted = functools.partial(_forwards, reader)
        namespace = {"model": model, "x": x, "no_grad": torch.no_grad}
        cases.append(Case(name, description, stmt, namespace, counted))
    return cases


def run(
    *, calls: int = CALLS, repeats: int = REPEATS, progress: Progress | None = None
) -> TorchResults:
    """Time every case ``repeats`` times, interleaved; median and min per call, in us."""
    started = perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with jobmeter_reset(), meter_providers() as providers:
            cases = _cases(providers)
            timers = {c.name: timeit.Timer(c.stmt, globals=c.namespace) for c in cases}
            for case in cases:  # warm-up
                timers[case.name].timeit(calls // 10)
                case.executed += calls // 10
            for case in interleaved(cases, repeats, "torch", progress):
                seconds = timers[case.name].timeit(calls)
                case.executed += calls
                case.per_call_us.append(seconds / calls * 1e6)
            for case in cases:
                counted = case.counted()
                if counted and counted != case.executed:
                    raise RuntimeError(
                        f"{case.name}: {case.executed} forwards ran but {counted} were "
                        "recorded: the benchmark does not measure what it claims"
                    )
    finally:
        torch.set_num_threads(threads)
    results = {
        c.name: CaseResult(
            c.name, c.description, calls, repeats, *median_min_max(c.per_call_us), c.per_call_us
        )
        for c in cases
    }
    medians = {name: r.median_us for name, r in results.items()}
    mins = {name: r.min_us for name, r in results.items()}
    informational = {
        "depth0 / bare": medians["depth0"] / medians["bare"],
        "depth1_resources / bare": medians["depth1_resources"] / medians["bare"],
        "depth1_forward_only / bare_backward": medians["depth1_forward_only"]
        / medians["bare_backward"],
        "us per module call, forward": (medians["depth1"] - medians["bare"]) / 6,
        "us per module call, forward and backward": (
            medians["depth1_backward"] - medians["bare_backward"]
        )
        / 6,
    }
    ratios = ratio_results(TARGETS, medians, mins)
    return TorchResults(results, ratios, informational, perf_counter() - started)


def format_report(results: TorchResults) -> str:
    lines = [
        "torch: cost per call of a small MLP on CPU, microseconds (timeit, GC off, "
        "median and min of the repeats)",
        "",
        *timing_lines(((r, r.calls) for r in results.cases.values()), 20, "calls"),
        "",
        *ratio_lines(results.ratios, 34),
    ]
    for name, value in results.informational.items():
        lines.append(f"  {name:<42}{value:>7.2f}")
    lines.append(f"\n  ({results.seconds:.1f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(run()))
