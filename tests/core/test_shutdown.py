"""A collector that refuses, hangs or fails never breaks the job or holds its exit.

The bound under test is the issue's: the process exits within the export
timeout plus one second after the program's own last line, and the program's
results are those it would have without jobmeter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

import jobmeter
from _support.hanging_server import HangingTcpServer
from _support.otlp_receiver import OtlpReceiver
from _support.ports import refused_endpoint_port

EXPORT_TIMEOUT_MS = 1000
WORK = textwrap.dedent(
    """
    import time, jobmeter
    jobmeter.configure()
    ops = jobmeter.MetricsCollector("etl")
    started = time.monotonic()
    total = 0
    for i in range(50):
        with ops.measure("work"):
            total += sum(range(10_000))
            time.sleep(0.01)
    print(total, round(time.monotonic() - started, 3), flush=True)
    print("EXITING", time.time(), flush=True)
    """
)


@contextlib.contextmanager
def _endpoint(kind: str, protocol: str) -> Iterator[str]:
    if kind == "refusing":
        yield f"http://127.0.0.1:{refused_endpoint_port()}"
    elif kind == "hanging-tcp":
        with HangingTcpServer() as server:
            yield server.endpoint
    else:
        with OtlpReceiver(mode="hang" if kind == "hanging" else "unavailable") as receiver:
            yield receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("kind", ["refusing", "hanging-tcp", "hanging", "unavailable"])
def test_dead_collector_neither_breaks_nor_holds_the_job(kind: str, protocol: str) -> None:
    with _endpoint(kind, protocol) as endpoint:
        env = {
            **os.environ,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_MS),
            "OTEL_METRIC_EXPORT_INTERVAL": "100",  # exports keep failing while the job works
        }
        process = subprocess.Popen(
            [sys.executable, "-c", WORK], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        result = process.stdout.readline().split()
        exiting = process.stdout.readline().split()
        process.wait(timeout=60)
        exited = time.time()
        stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, stderr
    assert int(result[0]) == 50 * sum(range(10_000))
    # 50 blocks of 10 ms: a measure() that waited on the exporter would take seconds.
    assert float(result[1]) < 3.0, stderr
    assert exiting[0] == "EXITING"
    exit_seconds = exited - float(exiting[1])
    assert exit_seconds < EXPORT_TIMEOUT_MS / 1000 + 1.0, stderr


def test_shutdown_reports_a_lost_final_export_and_returns_in_time() -> None:
    with HangingTcpServer() as server:
        telemetry = jobmeter.configure(
            exporters="otlp",
            otlp_protocol="http/protobuf",
            otlp_endpoint=server.endpoint + "/v1/metrics",
            otlp_timeout_ms=60_000,
            export_timeout_ms=EXPORT_TIMEOUT_MS,
        )
        with jobmeter.MetricsCollector("etl").measure("load"):
            pass
        started = time.monotonic()
        assert telemetry.shutdown() is False
        assert time.monotonic() - started < EXPORT_TIMEOUT_MS / 1000 + 1.0
        assert telemetry.shutdown() is True  # idempotent, and immediate the second time


def test_sigterm_exports_the_last_points_and_keeps_the_exit_status() -> None:
    script = textwrap.dedent(
        """
        import time, jobmeter
        jobmeter.configure()
        ops = jobmeter.MetricsCollector("etl")
        for _ in range(3):
            with ops.measure("load"):
                pass
        print("READY", flush=True)
        time.sleep(60)
        """
    )
    with OtlpReceiver() as receiver:
        env = {
            **os.environ,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receiver.http_endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "READY"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
        points = receiver.wait_for_metric("jobmeter.operation.duration")
        assert points[-1].count == 3


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_final_export_is_one_attempt_without_back_off(protocol: str) -> None:
    """At exit the SDK retries a retryable failure with 1-2-4 s back-off; jobmeter tries once."""
    with OtlpReceiver(mode="unavailable") as receiver:
        telemetry = jobmeter.configure(
            exporters="otlp",
            otlp_protocol=protocol,
            otlp_endpoint=receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint,
        )
        with jobmeter.MetricsCollector("etl").measure("load"):
            pass
        assert telemetry.shutdown() is False  # the collector refused the last export
        assert receiver.attempts == 1
