"""Time to serve one Prometheus scrape of 1,000 operation series, against plain OTel.

jobmeter's endpoint (``configure(exporters="prometheus")``) holds 1,000
operations measured with ``resources=True``. The reference is the OTel
Prometheus reader set up as its documentation shows, on a fresh
CollectorRegistry served by ``prometheus_client.start_http_server``, holding the
same 1,000 series recorded through bare instruments of the same names and kinds.
Both servers run at once and are scraped alternately over HTTP with urllib.
"""

from __future__ import annotations

import re
import resource
import statistics
import threading
import urllib.request
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any
from wsgiref.simple_server import WSGIServer

import psutil
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

import jobmeter
from benchmarks._common import Progress, captured_logs, jobmeter_reset, median_min_max
from jobmeter._core.instruments import DURATION_BUCKETS
from jobmeter.collector._totals import CARDINALITY_LIMIT

OPERATIONS = 1_000
MEASURES_PER_OPERATION = 3
SCRAPES = 20
WARMUP_SCRAPES = 2
# Builds of the exposition text without HTTP, per endpoint (a secondary figure).
IN_PROCESS_BUILDS = 5
HOST = "localhost"
_OPERATION_LABEL = re.compile(rb'operation_name="([^"]*)"')


@dataclass
class EndpointResult:
    name: str
    url: str
    median_ms: float
    min_ms: float
    max_ms: float
    per_scrape_ms: list[float]
    in_process_median_ms: float | None
    bytes: int
    sample_lines: int
    operations_seen: int
    overflow_lines: int
    us_per_series: float
    us_per_sample_line: float


@dataclass
class ScrapeResults:
    operations: int
    measures_per_operation: int
    scrapes: int
    jobmeter: EndpointResult
    reference: EndpointResult
    ratio: float
    in_process_ratio: float | None
    notes: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _operation(i: int) -> str:
    return f"op-{i:04d}"


def _fill_jobmeter(collector: jobmeter.MetricsCollector) -> None:
    for i in range(OPERATIONS):
        name = _operation(i)
        for _ in range(MEASURES_PER_OPERATION):
            with collector.measure(name, resources=True):
                pass


class _Reference:
    """The plain OTel Prometheus reader on its own registry, server and provider."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)
        server, thread = start_http_server(0, addr=HOST, registry=self.registry)
        self.server: WSGIServer = server
        self.thread: threading.Thread = thread
        host = str(server.server_address[0])
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{server.server_address[1]}/metrics"

    def fill(self) -> None:
        """The same series jobmeter exposes, through bare synchronous instruments."""
        meter = self.provider.get_meter("bench", jobmeter.__version__)
        duration = meter.create_histogram(
            "jobmeter.operation.duration",
            unit="s",
            description="Wall-clock duration of measured operations.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        cpu = meter.create_counter("jobmeter.operation.cpu.time", unit="s")
        disk = meter.create_counter("jobmeter.operation.disk.io", unit="By")
        usage = meter.create_gauge("jobmeter.operation.memory.usage", unit="By")
        growth = meter.create_gauge("jobmeter.operation.memory.growth", unit="By")
        active = meter.create_up_down_counter("jobmeter.operation.active", unit="{operation}")
        process = psutil.Process()
        for i in range(OPERATIONS):
            a = {"operation.name": _operation(i)}
            for _ in range(MEASURES_PER_OPERATION):
                active.add(1, a)
                t0, ru0, rss0 = _probe(process)
                t1, ru1, rss1 = _probe(process)
                duration.record(t1 - t0, a)
                cpu.add(max(ru1.ru_utime - ru0.ru_utime, 0.0), {**a, "cpu.mode": "user"})
                cpu.add(max(ru1.ru_stime - ru0.ru_stime, 0.0), {**a, "cpu.mode": "system"})
                read = max(ru1.ru_inblock - ru0.ru_inblock, 0) * 512
                written = max(ru1.ru_oublock - ru0.ru_oublock, 0) * 512
                disk.add(read, {**a, "disk.io.direction": "read"})
                disk.add(written, {**a, "disk.io.direction": "write"})
                usage.set(rss1, a)
                growth.set(rss1 - rss0, a)
                active.add(-1, a)

    def close(self) -> None:
        self.provider.shutdown()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _probe(process: psutil.Process) -> tuple[float, resource.struct_rusage, int]:
    return perf_counter(), resource.getrusage(resource.RUSAGE_SELF), process.memory_info().rss


def _get(url: str) -> tuple[float, bytes]:
    start = perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
    return perf_counter() - start, body


def _shape(body: bytes) -> tuple[int, int, int]:
    """Sample lines, distinct operation names, and lines of the overflow series."""
    samples = [line for line in body.splitlines() if line and not line.startswith(b"#")]
    # The exporter pads labels a point lacks with "": the overflow point has operation_name="".
    names = {m.group(1) for line in samples for m in _OPERATION_LABEL.finditer(line)} - {b""}
    overflow = sum(1 for line in samples if b'otel_metric_overflow="true"' in line)
    return len(samples), len(names), overflow


def _in_process_ms(registry: CollectorRegistry | None, times: int) -> float | None:
    """Median ms of building the exposition text without HTTP, where the registry is known."""
    if registry is None:
        return None
    timings = []
    for _ in range(times):
        start = perf_counter()
        generate_latest(registry)
        timings.append((perf_counter() - start) * 1e3)
    return statistics.median(timings)


def _jobmeter_registry(telemetry: jobmeter.Telemetry) -> CollectorRegistry | None:
    registry = getattr(getattr(telemetry, "_prometheus", None), "registry", None)
    return registry if isinstance(registry, CollectorRegistry) else None


def _result(
    name: str,
    url: str,
    timings_s: list[float],
    body: bytes,
    in_process_ms: float | None,
) -> EndpointResult:
    per_scrape_ms = [t * 1e3 for t in timings_s]
    median_ms, min_ms, max_ms = median_min_max(per_scrape_ms)
    lines, names, overflow = _shape(body)
    return EndpointResult(
        name=name,
        url=url,
        median_ms=median_ms,
        min_ms=min_ms,
        max_ms=max_ms,
        per_scrape_ms=per_scrape_ms,
        in_process_median_ms=in_process_ms,
        bytes=len(body),
        sample_lines=lines,
        operations_seen=names,
        overflow_lines=overflow,
        us_per_series=median_ms * 1e3 / OPERATIONS,
        us_per_sample_line=median_ms * 1e3 / lines if lines else float("nan"),
    )


def run(*, scrapes: int = SCRAPES, progress: Progress | None = None) -> ScrapeResults:
    """Set up both endpoints, scrape them alternately, shut everything down."""
    started = perf_counter()
    notes: list[str] = []
    telemetry: jobmeter.Telemetry | None = None
    reference: _Reference | None = None
    with captured_logs() as capture, jobmeter_reset():
        try:
            telemetry = jobmeter.configure(
                prometheus_port=0, prometheus_host=HOST, exporters="prometheus"
            )
            url = telemetry.prometheus_url
            if url is None:
                raise RuntimeError(
                    f"jobmeter.configure() served no Prometheus endpoint: {telemetry!r}"
                )
            if progress is not None:
                progress(f"scrape: recording {OPERATIONS:,} operations x {MEASURES_PER_OPERATION}")
            collector = jobmeter.MetricsCollector("bench", meter_provider=telemetry.meter_provider)
            _fill_jobmeter(collector)
            reference = _Reference()
            reference.fill()

            bodies: dict[str, bytes] = {}
            timings: dict[str, list[float]] = {"jobmeter": [], "reference": []}
            urls = {"jobmeter": url, "reference": reference.url}
            for _ in range(WARMUP_SCRAPES):
                for name, target in urls.items():
                    _, bodies[name] = _get(target)
            for i in range(scrapes):
                if progress is not None and i % 5 == 0:
                    progress(f"scrape: {i + 1}-{min(i + 5, scrapes)}/{scrapes}")
                for name, target in urls.items():
                    seconds, bodies[name] = _get(target)
                    timings[name].append(seconds)
            registries = {
                "jobmeter": _jobmeter_registry(telemetry),
                "reference": reference.registry,
            }
            jm, ref = (
                _result(
                    name,
                    urls[name],
                    timings[name],
                    bodies[name],
                    _in_process_ms(registries[name], IN_PROCESS_BUILDS),
                )
                for name in ("jobmeter", "reference")
            )
        finally:
            if telemetry is not None:
                telemetry.shutdown()
            if reference is not None:
                reference.close()
    if OPERATIONS > CARDINALITY_LIMIT:
        notes.append(
            f"jobmeter keeps {CARDINALITY_LIMIT} attribute sets of resource totals; the "
            f"{OPERATIONS - CARDINALITY_LIMIT:,} beyond fold into otel.metric.overflow=true "
            f"({jm.overflow_lines} sample lines), so both expose the same number of series"
        )
    notes += [f"jobmeter logged: {message}" for message in capture.messages]
    in_process_ratio = (
        jm.in_process_median_ms / ref.in_process_median_ms
        if jm.in_process_median_ms is not None and ref.in_process_median_ms is not None
        else None
    )
    return ScrapeResults(
        operations=OPERATIONS,
        measures_per_operation=MEASURES_PER_OPERATION,
        scrapes=scrapes,
        jobmeter=jm,
        reference=ref,
        ratio=jm.median_ms / ref.median_ms,
        in_process_ratio=in_process_ratio,
        notes=notes,
        seconds=perf_counter() - started,
    )


def format_report(results: ScrapeResults) -> str:
    lines = [
        f"Prometheus scrape: {results.operations:,} operation series "
        f"({results.measures_per_operation} blocks each, resources=True), "
        f"HTTP GET with urllib, median of {results.scrapes} scrapes each, alternating",
        "",
        f"  {'endpoint':<11}{'median ms':>10}{'min ms':>8}{'max ms':>8}{'no HTTP ms':>11}"
        f"{'KiB':>7}{'samples':>9}{'ops':>6}{'us/series':>10}{'us/sample':>10}",
    ]
    for r in (results.jobmeter, results.reference):
        no_http = "-" if r.in_process_median_ms is None else f"{r.in_process_median_ms:.1f}"
        lines.append(
            f"  {r.name:<11}{r.median_ms:>10.1f}{r.min_ms:>8.1f}{r.max_ms:>8.1f}{no_http:>11}"
            f"{r.bytes / 1024:>7.0f}{r.sample_lines:>9,}{r.operations_seen:>6,}"
            f"{r.us_per_series:>10.1f}{r.us_per_sample_line:>10.2f}"
        )
    lines += ["", f"  ratio jobmeter / reference (median per scrape): {results.ratio:.2f}"]
    if results.in_process_ratio is not None:
        lines.append(
            f"  ratio jobmeter / reference (exposition text only, no HTTP): "
            f"{results.in_process_ratio:.2f}"
        )
    lines += [f"  note: {note}" for note in results.notes]
    lines.append(f"\n  ({results.seconds:.1f} s)")
    return "\n".join(lines)
