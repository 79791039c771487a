"""Tests of the real-server harnesses in tests/_support themselves."""

from __future__ import annotations

import gzip
import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import MetricsServiceStub
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, start_http_server

from _support.hanging_server import HangingTcpServer
from _support.otlp_receiver import OtlpReceiver
from _support.ports import free_port, refused_endpoint_port
from _support.prometheus import PrometheusServer
from _support.pushgateway import Pushgateway


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _export_request() -> ExportMetricsServiceRequest:
    """One Sum point with attributes of every scalar type plus an array, and one histogram."""
    number = NumberDataPoint(
        as_int=3,
        attributes=[
            _kv("queue", AnyValue(string_value="etl")),
            _kv("retry", AnyValue(bool_value=True)),
            _kv("shard", AnyValue(int_value=12)),
            _kv("ratio", AnyValue(double_value=0.25)),
            _kv("tags", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a")]))),
        ],
    )
    jobs = Metric(
        name="jobs_done",
        unit="{job}",
        sum=Sum(
            data_points=[number],
            aggregation_temporality=AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
        ),
    )
    histogram_point = HistogramDataPoint(
        count=3, sum=4.5, bucket_counts=[1, 2, 0], explicit_bounds=[1.0, 2.0]
    )
    duration = Metric(
        name="job_duration",
        unit="s",
        histogram=Histogram(
            data_points=[histogram_point], aggregation_temporality=AGGREGATION_TEMPORALITY_DELTA
        ),
    )
    resource = Resource(attributes=[_kv("service.name", AnyValue(string_value="harness-test"))])
    scope = ScopeMetrics(scope=InstrumentationScope(name="harness"), metrics=[jobs, duration])
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope])]
    )


@contextmanager
def _grpc_stub(port: int) -> Iterator[MetricsServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield MetricsServiceStub(channel)  # type: ignore[no-untyped-call]
    finally:
        channel.close()


def _post_http(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, str, bytes]:
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    request = urllib.request.Request(url, gzip.compress(body), headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_ports() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        pass
    refused = refused_endpoint_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refused), timeout=2).close()


def test_otlp_receiver_ok_mode_grpc_and_http() -> None:
    request = _export_request()
    with OtlpReceiver() as receiver:
        assert receiver.grpc_endpoint == f"http://127.0.0.1:{receiver.grpc_port}"
        assert receiver.http_endpoint == f"http://127.0.0.1:{receiver.http_port}/v1/metrics"
        with _grpc_stub(receiver.grpc_port) as stub:
            assert isinstance(stub.Export(request, timeout=5), ExportMetricsServiceResponse)
        status, content_type, body = _post_http(receiver.http_endpoint, request.SerializeToString())
        assert (status, content_type) == (200, "application/x-protobuf")
        assert ExportMetricsServiceResponse.FromString(body) == ExportMetricsServiceResponse()

        assert [proto for proto, _ in receiver.requests] == ["grpc", "http"]
        assert receiver.request_count == 2
        assert receiver.metric_names() == {"jobs_done", "job_duration"}
        for protocol in ("grpc", "http"):
            (point,) = receiver.points("jobs_done", protocol=protocol)
            assert point.protocol == protocol
            assert (point.metric, point.unit, point.kind) == ("jobs_done", "{job}", "sum")
            assert point.resource == {"service.name": "harness-test"}
            assert point.scope == "harness"
            assert point.attributes == {
                "queue": "etl",
                "retry": True,
                "shard": 12,
                "ratio": 0.25,
                "tags": ("a",),
            }
            assert (point.value, point.count, point.sum) == (3.0, None, None)
            assert (point.is_monotonic, point.temporality) == (True, "cumulative")
        (hist,) = receiver.wait_for_metric("job_duration", protocol="http")
        assert (hist.kind, hist.value, hist.count, hist.sum) == ("histogram", None, 3, 4.5)
        assert (hist.bucket_counts, hist.explicit_bounds) == ((1, 2, 0), (1.0, 2.0))
        assert (hist.is_monotonic, hist.temporality) == (None, "delta")
        with pytest.raises(AssertionError, match="jobs_done"):
            receiver.wait_for_metric("never_sent", timeout=0.2)


def test_otlp_receiver_unavailable_mode() -> None:
    request = _export_request()
    with OtlpReceiver("unavailable") as receiver:
        with _grpc_stub(receiver.grpc_port) as stub, pytest.raises(grpc.RpcError) as rpc_error:
            stub.Export(request, timeout=5)
        assert rpc_error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "unavailable" in rpc_error.value.details()
        with pytest.raises(urllib.error.HTTPError) as http_error:
            _post_http(receiver.http_endpoint, request.SerializeToString())
        assert http_error.value.code == 503
        http_error.value.close()
        assert receiver.request_count == 0


def test_otlp_receiver_hang_mode_never_answers_and_closes_fast() -> None:
    body = _export_request().SerializeToString()
    receiver = OtlpReceiver("hang").__enter__()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=0.5)
        with closing(conn):
            conn.request("POST", "/v1/metrics", body, {"Content-Type": "application/x-protobuf"})
            with pytest.raises(TimeoutError):
                conn.getresponse()
        with _grpc_stub(receiver.grpc_port) as stub, pytest.raises(grpc.RpcError) as rpc_error:
            stub.Export(_export_request(), timeout=0.5)
        assert rpc_error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        receiver.wait_for(lambda: receiver.request_count == 2, timeout=5)
    finally:
        started = time.monotonic()
        receiver.__exit__(None, None, None)
        assert time.monotonic() - started < 5


def test_otlp_receiver_leaves_no_threads_behind() -> None:
    before = set(threading.enumerate())
    with OtlpReceiver() as receiver:
        _post_http(receiver.http_endpoint, _export_request().SerializeToString())
        with _grpc_stub(receiver.grpc_port) as stub:
            stub.Export(_export_request(), timeout=5)
    deadline = time.monotonic() + 5
    while (leaked := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked


def test_hanging_tcp_server_accepts_and_never_answers() -> None:
    with HangingTcpServer() as server:
        assert server.endpoint == f"http://127.0.0.1:{server.port}"
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.5) as sock:
            sock.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            with pytest.raises(TimeoutError):
                sock.recv(1)
            assert server.connection_count == 1
        started = time.monotonic()
    assert time.monotonic() - started < 2


@pytest.mark.prometheus
def test_prometheus_scrapes_a_prometheus_client_endpoint(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Counter("my_counter", "A test counter.", registry=registry).inc(7)
    port = free_port()
    http_server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusServer(tmp_path, [f"127.0.0.1:{port}"]) as prom:
            result = prom.wait_for("my_counter_total", lambda r: bool(r), timeout=30)
            assert [value for _, value in result] == [7.0]
            labels = result[0][0]
            assert (labels["job"], labels["instance"]) == ("jobmeter", f"127.0.0.1:{port}")
            assert [t["health"] for t in prom.targets()] == ["up"]
            assert prom.query("1 + 1") == [({}, 2.0)]
            with pytest.raises(RuntimeError, match="parse error"):
                prom.query("sum(")
            with pytest.raises(AssertionError, match="health"):
                prom.wait_for("my_counter_total", lambda r: False, timeout=0.5)
            process = prom.process
        assert process is not None
        assert process.returncode is not None
        assert prom.process is None
    finally:
        http_server.shutdown()
        http_server.server_close()
        thread.join(timeout=5)


@pytest.mark.prometheus
def test_pushgateway_receives_a_push_and_prometheus_honors_its_labels(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Gauge("harness_gauge", "A pushed gauge.", registry=registry).set(42)
    with Pushgateway(tmp_path) as gateway:
        assert gateway.url == f"http://{gateway.address}"
        push_to_gateway(gateway.address, job="harness", registry=registry)
        assert re.search(r'^harness_gauge\{.*job="harness".*\} 42$', gateway.metrics_text(), re.M)
        with PrometheusServer(tmp_path, [gateway.address], honor_labels=True) as prom:
            result = prom.wait_for("harness_gauge", lambda r: bool(r))
            assert [(labels["job"], value) for labels, value in result] == [("harness", 42.0)]
        process = gateway.process
    assert process is not None
    assert process.returncode is not None
