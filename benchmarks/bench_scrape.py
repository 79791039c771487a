"""Time to serve one Prometheus scrape of 1,000 operation series, against prometheus_client.

jobmeter's endpoint (``configure(exporters="prometheus")``) holds 1,000
operations measured with ``resources=True``. The reference is prometheus_client
itself: native Histogram, Counter, Gauge and Info objects on a fresh
CollectorRegistry, served by ``prometheus_client.start_http_server``, holding
the same series (built from jobmeter's page: same names, units, help, labels,
buckets; every sample line of one page is a sample line of the other, which the
run checks). A second reference is OTel's Prometheus reader on its own registry
and server, fed the same series by bare instruments. The servers run at once
and are scraped in turn over HTTP with urllib; ``no HTTP`` builds the page only.

Then the cost of prometheus_client's default registry on jobmeter's page: the
same endpoint scraped in turn without and with USER_SERIES series of the
program's own on ``REGISTRY`` (registered before, unregistered after each
scrape), and its page built in-process with the registry switched off, on with
no collector of the program's, and on with the series.
"""

from __future__ import annotations

import statistics
import threading
import urllib.request
from dataclasses import asdict, dataclass
from time import perf_counter
from timeit import timeit
from typing import Any

import prometheus_client
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as parse_text

import jobmeter
from benchmarks._common import (
    Check,
    Progress,
    RatioResult,
    Target,
    captured_logs,
    jobmeter_reset,
    median_min_max,
    ratio_checks,
    ratio_lines,
    ratio_results,
)
from jobmeter._core.instruments import DURATION_BUCKETS
from jobmeter._core.scrape_page import text_page
from jobmeter.collector._totals import CARDINALITY_LIMIT

OPERATIONS = 1_000
MEASURES_PER_OPERATION = 3
SCRAPES = 20
WARMUP_SCRAPES = 2
IN_PROCESS_BUILDS = 5
HOST = "localhost"
TARGETS = (Target("jobmeter / prometheus_client", "jobmeter", "prometheus_client", 1.0),)
# The program's own series on prometheus_client's default REGISTRY: 40 counters, 10 gauges.
USER_SERIES = 50


@dataclass
class EndpointResult:
    name: str
    url: str
    median_ms: float
    min_ms: float
    max_ms: float
    per_scrape_ms: list[float]
    in_process_median_ms: float  # building the page without HTTP
    bytes: int
    sample_lines: int
    us_per_sample_line: float


@dataclass
class RegistryResult:
    """The default registry on jobmeter's page: medians in ms, with and without its series."""

    series: int
    sample_lines: int  # the program's lines on the page
    http_without_ms: float
    http_with_ms: float
    page_off_ms: float  # the page in-process, the registry switched off
    page_empty_ms: float  # switched on, no collector of the program's
    page_with_ms: float  # switched on, USER_SERIES series
    page_min_ms: dict[str, float]  # the fastest build of each case: off, empty, with
    tail_empty_us: float  # what the registry adds to one page: no collector of the program's
    tail_with_us: float  # the same, USER_SERIES series


@dataclass
class ScrapeResults:
    operations: int
    measures_per_operation: int
    scrapes: int
    endpoints: dict[str, EndpointResult]
    ratios: list[RatioResult]
    otel_reader_ratio: float
    registry: RegistryResult
    notes: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[Check]:
        return ratio_checks(self.ratios)


def _serve(registry: CollectorRegistry) -> tuple[Any, threading.Thread, str]:
    server, thread = start_http_server(0, addr=HOST, registry=registry)
    return server, thread, f"http://{HOST}:{server.server_address[1]}/metrics"


def _native(page: str) -> CollectorRegistry:
    """prometheus_client's own metrics holding the series of an OpenMetrics page."""
    registry = CollectorRegistry(auto_describe=True)
    for family in text_string_to_metric_families(page):  # type: ignore[no-untyped-call]
        labels = sorted({k for s in family.samples for k in s.labels} - {"le"})
        options: Any = {"unit": family.unit, "labelnames": labels, "registry": registry}
        name, doc, kind = family.name, family.documentation, family.type
        if kind == "info":
            prometheus_client.Info(name, doc, registry=registry).info(family.samples[0].labels)
            continue
        bounds = sorted({float(s.labels["le"]) for s in family.samples if "le" in s.labels})
        metric: Any = (
            prometheus_client.Histogram(name, doc, buckets=bounds, **options)
            if kind == "histogram"
            else (prometheus_client.Counter if kind == "counter" else prometheus_client.Gauge)(
                name, doc, **options
            )
        )
        seen: dict[tuple[str, ...], float] = {}
        for s in family.samples:
            values = tuple(s.labels.get(k, "") for k in labels)
            child = metric.labels(*values)
            if kind == "counter":
                child.inc(s.value)
            elif kind == "gauge":
                child.set(s.value)
            elif s.name.endswith("_bucket"):  # its count observed at its bound (+Inf: past)
                bound = float(s.labels["le"])
                for _ in range(int(s.value - seen.get(values, 0.0))):
                    child.observe(bound if bound < float("inf") else bounds[-2] * 2)
                seen[values] = s.value
    return registry


def _otel_reference(registry: CollectorRegistry) -> MeterProvider:
    """The plain OTel reader, fed the same series through bare instruments."""
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry)], shutdown_on_exit=False
    )
    meter = provider.get_meter("bench", jobmeter.__version__)
    duration = meter.create_histogram(
        "jobmeter.operation.duration", unit="s",
        description="Wall-clock duration of measured operations.",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )  # fmt: skip
    cpu = meter.create_counter("jobmeter.operation.cpu.time", unit="s")
    disk = meter.create_counter("jobmeter.operation.disk.io", unit="By")
    usage = meter.create_gauge("jobmeter.operation.memory.usage", unit="By")
    growth = meter.create_gauge("jobmeter.operation.memory.growth", unit="By")
    active = meter.create_up_down_counter("jobmeter.operation.active", unit="{operation}")
    for i in range(OPERATIONS):
        a = {"operation.name": f"op-{i:04d}"}
        for _ in range(MEASURES_PER_OPERATION):
            duration.record(1e-5, a)
        for mode, direction in (("user", "read"), ("system", "write")):
            cpu.add(1e-6, {**a, "cpu.mode": mode})
            disk.add(0, {**a, "disk.io.direction": direction})
        usage.set(50_000_000, a)
        growth.set(0, a)
        active.add(0, a)
    return provider


def _get(url: str) -> tuple[float, bytes]:
    start = perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
    return perf_counter() - start, body


def _sample_lines(body: bytes) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in parse_text(body.decode())
        for s in family.samples
    }


def _timed_ms(build: Any) -> float:
    timings = []
    for _ in range(IN_PROCESS_BUILDS):
        start = perf_counter()
        build()
        timings.append((perf_counter() - start) * 1e3)
    return statistics.median(timings)


def run(*, scrapes: int = SCRAPES, progress: Progress | None = None) -> ScrapeResults:
    """Set up the three endpoints, scrape them in turn, shut everything down."""
    started = perf_counter()
    servers: list[tuple[Any, threading.Thread]] = []
    telemetry: jobmeter.Telemetry | None = None
    otel_provider: MeterProvider | None = None
    # OTel's reader writes no _created lines: nor does the reference.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    with captured_logs() as capture, jobmeter_reset():
        try:
            telemetry = jobmeter.configure(
                prometheus_port=0, prometheus_host=HOST, exporters="prometheus"
            )
            if telemetry.prometheus_url is None:
                raise RuntimeError(f"configure() served no Prometheus endpoint: {telemetry!r}")
            collector = jobmeter.MetricsCollector("bench", meter_provider=telemetry.meter_provider)
            for i in range(OPERATIONS):
                for _ in range(MEASURES_PER_OPERATION):
                    with collector.measure(f"op-{i:04d}", resources=True):
                        pass
            request = urllib.request.Request(
                telemetry.prometheus_url, headers={"Accept": "application/openmetrics-text"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                native = _native(response.read().decode())
            otel_registry = CollectorRegistry(auto_describe=False)
            otel_provider = _otel_reference(otel_registry)
            urls = {"jobmeter": telemetry.prometheus_url}
            for name, registry in (("prometheus_client", native), ("otel_reader", otel_registry)):
                server, thread, urls[name] = _serve(registry)
                servers.append((server, thread))
            bodies: dict[str, bytes] = {}
            timings: dict[str, list[float]] = {name: [] for name in urls}
            for i in range(WARMUP_SCRAPES + scrapes):
                if progress is not None and i % 5 == 0:
                    progress(f"scrape: {i + 1}-{min(i + 5, scrapes)}/{WARMUP_SCRAPES + scrapes}")
                for name in urls if i % 2 else reversed(urls):
                    seconds, bodies[name] = _get(urls[name])
                    if i >= WARMUP_SCRAPES:
                        timings[name].append(seconds)
            lines = {name: _sample_lines(body) for name, body in bodies.items()}
            if lines["jobmeter"] != lines["prometheus_client"]:
                raise RuntimeError(
                    "the prometheus_client reference serves other sample lines than jobmeter: "
                    f"{sorted(lines['jobmeter'] ^ lines['prometheus_client'])[:5]}"
                )
            endpoint = telemetry._prometheus  # the endpoint's own page, without HTTP
            builds = {
                "jobmeter": lambda: text_page(endpoint.reader, endpoint.registry),  # type: ignore[union-attr]
                "prometheus_client": lambda: generate_latest(native),
                "otel_reader": lambda: generate_latest(otel_registry),
            }
            results = {
                n: _result(n, urls[n], timings[n], bodies[n], _timed_ms(builds[n])) for n in urls
            }
            registry_figures = _registry_figures(telemetry, scrapes)
        finally:
            prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]
            if telemetry is not None:
                telemetry.shutdown()
            if otel_provider is not None:
                otel_provider.shutdown()
            for server, thread in servers:
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
    notes = [f"jobmeter logged: {message}" for message in capture.messages]
    if OPERATIONS > CARDINALITY_LIMIT:
        notes.insert(0, f"jobmeter keeps {CARDINALITY_LIMIT} attribute sets of resource totals; "
                     f"the {OPERATIONS - CARDINALITY_LIMIT:,} beyond fold into "
                     "otel.metric.overflow=true, and the prometheus_client reference holds the "
                     "same series")  # fmt: skip
    medians = {name: r.median_ms for name, r in results.items()}
    mins = {name: r.min_ms for name, r in results.items()}
    return ScrapeResults(
        operations=OPERATIONS,
        measures_per_operation=MEASURES_PER_OPERATION,
        scrapes=scrapes,
        endpoints=results,
        ratios=ratio_results(TARGETS, medians, mins),
        otel_reader_ratio=medians["jobmeter"] / medians["otel_reader"],
        registry=registry_figures,
        notes=notes,
        seconds=perf_counter() - started,
    )


def _user_collectors() -> list[Any]:
    """USER_SERIES series of a program's own, not registered yet."""
    requests = prometheus_client.Counter("bench_user_requests", "Asked.", ["path"], registry=None)
    queue = prometheus_client.Gauge("bench_user_queue", "Queue.", ["queue"], registry=None)
    for i in range(40):
        requests.labels(f"/p{i}").inc(i)
    for i in range(USER_SERIES - 40):
        queue.labels(f"q{i}").set(i)
    return [requests, queue]


def _registry_figures(telemetry: jobmeter.Telemetry, scrapes: int) -> RegistryResult:
    """jobmeter's page without and with the program's series on REGISTRY, in turn."""
    endpoint: Any = telemetry._prometheus
    reader, default, url = endpoint.reader, endpoint.reader.default, str(telemetry.prometheus_url)
    user = _user_collectors()
    http: dict[str, list[float]] = {"without": [], "with": []}
    pages: dict[str, list[float]] = {"off": [], "empty": [], "with": []}
    lines = 0

    def timed(case: str, action: Any) -> Any:
        if case == "with":
            for collector in user:
                prometheus_client.REGISTRY.register(collector)
        try:
            start = perf_counter()
            done = action()
            return (perf_counter() - start) * 1e3, done
        finally:
            if case == "with":
                for collector in user:
                    prometheus_client.REGISTRY.unregister(collector)

    try:
        for i in range(WARMUP_SCRAPES + scrapes):
            for case in ("without", "with") if i % 2 else ("with", "without"):
                ms, (_, body) = timed(case, lambda: _get(url))
                if case == "with":
                    lines = sum(1 for x in body.splitlines() if x.startswith(b"bench_user_"))
                if i >= WARMUP_SCRAPES:
                    http[case].append(ms)
        cases = ("off", "empty", "with")
        for i in range(IN_PROCESS_BUILDS * 3):  # each case first, second and third in turn
            for case in cases[i % 3 :] + cases[: i % 3]:
                reader.default = None if case == "off" else default
                ms, _ = timed(case, lambda: text_page(reader, endpoint.registry))
                pages[case].append(ms)
        # The tail alone, given the page's families: timed without the page around it.
        request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(request, timeout=60) as response:
            page = response.read().decode()
        families = [(f.name, f.type) for f in text_string_to_metric_families(page)]  # type: ignore[no-untyped-call]
        tails = {}
        for case, number in (("empty", 2000), ("with", 200)):
            ms, _ = timed(
                case, lambda n=number: timeit(lambda: default.text(families, {}), number=n)
            )
            tails[case] = ms * 1e3 / number
    finally:
        reader.default = default
    if lines != USER_SERIES:
        raise RuntimeError(f"jobmeter's page held {lines} lines of the program's series")
    median = statistics.median
    return RegistryResult(
        series=USER_SERIES, sample_lines=lines,
        http_without_ms=median(http["without"]), http_with_ms=median(http["with"]),
        page_off_ms=median(pages["off"]), page_empty_ms=median(pages["empty"]),
        page_with_ms=median(pages["with"]), page_min_ms={k: min(v) for k, v in pages.items()},
        tail_empty_us=tails["empty"], tail_with_us=tails["with"],
    )  # fmt: skip


def _result(
    name: str, url: str, timings_s: list[float], body: bytes, in_process_ms: float
) -> EndpointResult:
    per_scrape_ms = [t * 1e3 for t in timings_s]
    median_ms, min_ms, max_ms = median_min_max(per_scrape_ms)
    lines = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return EndpointResult(
        name=name, url=url, median_ms=median_ms, min_ms=min_ms, max_ms=max_ms,
        per_scrape_ms=per_scrape_ms, in_process_median_ms=in_process_ms, bytes=len(body),
        sample_lines=lines, us_per_sample_line=median_ms * 1e3 / lines if lines else float("nan"),
    )  # fmt: skip


def format_report(results: ScrapeResults) -> str:
    lines = [
        f"Prometheus scrape: {results.operations:,} operation series "
        f"({results.measures_per_operation} blocks each, resources=True), "
        f"HTTP GET with urllib, median of {results.scrapes} scrapes each, in turn",
        "",
        f"  {'endpoint':<19}{'median ms':>10}{'min ms':>8}{'max ms':>8}{'no HTTP ms':>11}"
        f"{'KiB':>7}{'samples':>9}{'us/sample':>10}",
    ]
    lines += [
        f"  {r.name:<19}{r.median_ms:>10.1f}{r.min_ms:>8.1f}{r.max_ms:>8.1f}"
        f"{r.in_process_median_ms:>11.1f}{r.bytes / 1024:>7.0f}{r.sample_lines:>9,}"
        f"{r.us_per_sample_line:>10.2f}"
        for r in results.endpoints.values()
    ]
    lines += ["", *ratio_lines(results.ratios, 40)]
    lines.append(f"  jobmeter / otel_reader (reported){results.otel_reader_ratio:>14.2f}")
    r = results.registry
    lines += [
        "",
        f"  prometheus_client's default registry on jobmeter's page ({r.series} series of the "
        "program's, medians in ms):",
        f"    HTTP GET, without / with the series  {r.http_without_ms:>8.1f} {r.http_with_ms:>7.1f}"
        f"   ratio {r.http_with_ms / r.http_without_ms:.3f}",
        f"    page, switched off / on, empty / on  {r.page_off_ms:>8.1f} {r.page_empty_ms:>7.1f}"
        f" {r.page_with_ms:>8.1f}   ratios {r.page_empty_ms / r.page_off_ms:.3f}"
        f" {r.page_with_ms / r.page_off_ms:.3f}",
        f"    page, fastest build of each                {r.page_min_ms['off']:>7.1f}"
        f" {r.page_min_ms['empty']:>7.1f} {r.page_min_ms['with']:>8.1f}",
        f"    what it adds to a page, empty / with the series (us)  {r.tail_empty_us:>8.1f}"
        f" {r.tail_with_us:>8.1f}",
    ]
    lines += [f"  note: {note}" for note in results.notes]
    lines.append(f"\n  ({results.seconds:.1f} s)")
    return "\n".join(lines)
