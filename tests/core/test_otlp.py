"""OTLP export to a real receiver on loopback, over gRPC and HTTP/protobuf."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

import jobmeter
from _support.otlp_receiver import OtlpReceiver

PROTOCOLS = ["grpc", "http/protobuf"]


def _endpoint(receiver: OtlpReceiver, protocol: str) -> str:
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_points_arrive_with_resource_attributes(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", _endpoint(receiver, protocol))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=tests")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-etl")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,team=data")
        telemetry = jobmeter.configure(service_version="1.2.3")
        assert telemetry.prometheus_address is None  # otlp only: no port opened
        ops = jobmeter.MetricsCollector("etl")
        for _ in range(5):
            with ops.measure("load", {"table": "orders"}):
                pass
        assert telemetry.force_flush() is True
        points = receiver.wait_for_metric("jobmeter.operation.duration")
        wire = "grpc" if protocol == "grpc" else "http"
        assert {p.protocol for p in points} == {wire}
        latest = points[-1]
        assert latest.kind == "histogram"
        assert latest.temporality == "cumulative"
        assert latest.count == 5
        assert latest.unit == "s"
        assert latest.scope == "etl"
        assert latest.attributes == {"operation.name": "load", "table": "orders"}
        resource = latest.resource
        assert resource["service.name"] == "orders-etl"
        assert resource["service.version"] == "1.2.3"
        assert resource["deployment.environment"] == "ci"
        assert resource["team"] == "data"
        assert resource["host.name"] == socket.gethostname()
        assert resource["process.pid"] == os.getpid()
        assert resource["process.runtime.name"] == "cpython"
        assert len(str(resource["service.instance.id"])) == 36
        # Privacy: no command line or environment leaves the process.
        assert not any(key.startswith(("process.command", "process.environ")) for key in resource)
        cpu = receiver.points("jobmeter.operation.cpu.time")
        assert {p.attributes["cpu.mode"] for p in cpu} == {"user", "system"}
        assert all(p.is_monotonic for p in cpu)
        # OTEL_EXPORTER_OTLP_HEADERS reaches the collector, over either protocol.
        assert receiver.headers
        assert all(h.get("x-tenant") == "tests" for h in receiver.headers)
        assert telemetry.shutdown() is True


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_delta_temporality_preference(protocol: str) -> None:
    with OtlpReceiver() as receiver:
        telemetry = jobmeter.configure(
            exporters="otlp",
            otlp_protocol=protocol,
            otlp_endpoint=_endpoint(receiver, protocol),
            otlp_temporality="delta",
        )
        ops = jobmeter.MetricsCollector("etl")
        for batch in (3, 4):
            for _ in range(batch):
                with ops.measure("load"):
                    pass
            assert telemetry.force_flush()
        points = receiver.wait_for_metric("jobmeter.operation.duration")
        assert {p.temporality for p in points} == {"delta"}
        assert [p.count for p in points] == [3, 4]
        telemetry.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_last_points_are_exported_at_exit(protocol: str) -> None:
    """A program that never calls shutdown() still delivers its last points at exit."""
    script = textwrap.dedent(
        """
        import jobmeter
        jobmeter.configure()
        ops = jobmeter.MetricsCollector("etl")
        for _ in range(4):
            with ops.measure("load"):
                pass
        """
    )
    with OtlpReceiver() as receiver:
        env = {
            **os.environ,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": _endpoint(receiver, protocol),
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",  # only the exit export can deliver
        }
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        points = receiver.wait_for_metric("jobmeter.operation.duration")
        assert points[-1].count == 4


def test_console_exporter_prints_points_at_exit() -> None:
    script = textwrap.dedent(
        """
        import jobmeter
        jobmeter.configure(exporters="console")
        with jobmeter.MetricsCollector("etl").measure("load"):
            pass
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert '"name": "jobmeter.operation.duration"' in done.stdout
    assert '"operation.name": "load"' in done.stdout
