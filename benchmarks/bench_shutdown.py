"""Exit time of a program whose OTLP collector is dead: the plain SDK against jobmeter.

Each case is a fresh interpreter that records one point and exits normally,
with the default timeouts (no OTEL_* time variable set). The figure is the
time from the program's last line to the end of the process: what the job
waits for at exit. The endpoint either refuses connections (nothing listens)
or accepts them and never answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks._common import Progress

SDK = textwrap.dedent(
    """
    import sys, time
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    if sys.argv[1] == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        exporter = OTLPMetricExporter(endpoint=sys.argv[2], insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        exporter = OTLPMetricExporter(endpoint=sys.argv[2] + "/v1/metrics")
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter)])
    provider.get_meter("bench").create_histogram("work").record(1.0)
    print(time.time(), flush=True)
    """
)
JOBMETER = textwrap.dedent(
    """
    import sys, time, jobmeter
    suffix = "" if sys.argv[1] == "grpc" else "/v1/metrics"
    protocol = "grpc" if sys.argv[1] == "grpc" else "http/protobuf"
    jobmeter.configure(exporters="otlp", otlp_protocol=protocol, otlp_endpoint=sys.argv[2] + suffix)
    with jobmeter.MetricsCollector("bench").measure("work"):
        pass
    print(time.time(), flush=True)
    """
)


@dataclass
class ShutdownCase:
    tool: str
    endpoint: str
    protocol: str
    export_timeout_ms: int | None
    exit_s: float


@contextmanager
def _refusing() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def _hanging() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accepted, never read, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def _exit_seconds(
    script: str, protocol: str, endpoint: str, export_timeout_ms: int | None
) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if export_timeout_ms is not None:
        env["OTEL_METRIC_EXPORT_TIMEOUT"] = str(export_timeout_ms)
    process = subprocess.Popen(
        [sys.executable, "-c", script, protocol, endpoint],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    last_line = float(process.stdout.readline())
    process.wait(timeout=120)
    return time.time() - last_line


CONFIGURED_TIMEOUT_MS = 2000


def run(progress: Progress) -> list[ShutdownCase]:
    cases = []
    for timeout in (None, CONFIGURED_TIMEOUT_MS):
        for endpoint, server in (("refusing", _refusing), ("hanging", _hanging)):
            for protocol in ("grpc", "http"):
                for tool, script in (("opentelemetry-sdk", SDK), ("jobmeter", JOBMETER)):
                    progress(f"shutdown: {tool}, {protocol}, {endpoint}, timeout {timeout}")
                    with server() as url:
                        seconds = _exit_seconds(script, protocol, url, timeout)
                    cases.append(ShutdownCase(tool, endpoint, protocol, timeout, seconds))
    return cases


def format_report(cases: list[ShutdownCase]) -> str:
    lines = [
        "Exit with a dead OTLP collector: seconds from the program's last line to process "
        "end (defaults: OTLP timeout 10 s, export timeout 30 s)",
        "",
        f"  {'OTEL_METRIC_EXPORT_TIMEOUT':<28}{'endpoint':<10}{'protocol':<10}"
        f"{'opentelemetry-sdk':>19}{'jobmeter':>10}",
    ]
    by_key: dict[tuple[str, str, str], dict[str, float]] = {}
    for case in cases:
        timeout = "unset" if case.export_timeout_ms is None else f"{case.export_timeout_ms} ms"
        key = (timeout, case.endpoint, case.protocol)
        by_key.setdefault(key, {})[case.tool] = case.exit_s
    for (timeout, endpoint, protocol), times in by_key.items():
        lines.append(
            f"  {timeout:<28}{endpoint:<10}{protocol:<10}"
            f"{times['opentelemetry-sdk']:>18.2f}s{times['jobmeter']:>9.2f}s"
        )
    lines.append("")
    lines.append(
        "  jobmeter's bound is the export timeout + 1 s; its final export is one attempt, "
        "so a refusing collector costs no back-off."
    )
    return "\n".join(lines)


def to_json(cases: list[ShutdownCase]) -> list[dict[str, Any]]:
    return [asdict(case) for case in cases]
