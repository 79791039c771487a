"""A real OTLP metrics receiver (gRPC and HTTP/protobuf) on loopback, for exporter tests."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Mode = Literal["ok", "hang", "unavailable"]
_TEMPORALITY = {1: "delta", 2: "cumulative"}


@dataclass(frozen=True)
class ReceivedPoint:
    """One data point of one metric, flattened out of a received export request."""

    protocol: str
    metric: str
    unit: str
    kind: str
    resource: dict[str, object]
    scope: str
    attributes: dict[str, object]
    value: float | None
    count: int | None
    sum: float | None
    bucket_counts: tuple[int, ...]
    explicit_bounds: tuple[float, ...]
    is_monotonic: bool | None
    temporality: str | None


def decode_any_value(value: AnyValue) -> object:
    """Turn an OTLP AnyValue into a Python value (arrays become tuples, kvlists dicts)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(decode_any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return cast(object, getattr(value, which))


def decode_attributes(attributes: Any) -> dict[str, object]:
    """Turn a repeated KeyValue field into a dict."""
    items: list[KeyValue] = list(attributes)
    return {kv.key: decode_any_value(kv.value) for kv in items}


def _iter_metrics(request: ExportMetricsServiceRequest) -> Iterator[tuple[Any, Any, Any]]:
    """Yield (resource_metrics, scope_metrics, metric) for every metric in a request."""
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                yield rm, sm, metric


def _points_of(
    protocol: str, request: ExportMetricsServiceRequest, name: str
) -> list[ReceivedPoint]:
    out: list[ReceivedPoint] = []
    for rm, sm, metric in _iter_metrics(request):
        if metric.name != name or metric.WhichOneof("data") is None:
            continue
        kind: str = metric.WhichOneof("data")
        data = getattr(metric, kind)
        temporality = _TEMPORALITY.get(getattr(data, "aggregation_temporality", 0))
        monotonic = bool(data.is_monotonic) if kind == "sum" else None
        resource = decode_attributes(rm.resource.attributes)
        for dp in data.data_points:
            value: float | None = None
            count: int | None = None
            total: float | None = None
            if kind in ("sum", "gauge"):
                number = dp.WhichOneof("value")
                value = float(getattr(dp, number)) if number else None
            else:
                count = int(dp.count)
                total = float(dp.sum) if kind == "summary" or dp.HasField("sum") else None
            histogram = kind == "histogram"
            buckets = tuple(int(c) for c in dp.bucket_counts) if histogram else ()
            bounds = tuple(float(b) for b in dp.explicit_bounds) if histogram else ()
            head: tuple[str, str, str, str, dict[str, object], str]
            head = (protocol, metric.name, metric.unit, kind, resource, sm.scope.name)
            attributes = decode_attributes(dp.attributes)
            tail = (value, count, total, buckets, bounds, monotonic, temporality)
            out.append(ReceivedPoint(*(*head, attributes, *tail)))
    return out


class _Servicer:
    """gRPC MetricsService implementation that forwards to the receiver."""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802 - name fixed by the generated service
        self, request: ExportMetricsServiceRequest, context: Any
    ) -> ExportMetricsServiceResponse:
        receiver = self._receiver
        receiver._attempt({str(k): str(v) for k, v in context.invocation_metadata()})
        if receiver.mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver is in 'unavailable' mode")
        receiver._record("grpc", request)
        if receiver.mode == "hang":
            receiver._closing.wait()
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver closed")
        return ExportMetricsServiceResponse()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() joins every handler thread

    def __init__(self, receiver: OtlpReceiver, port: int = 0) -> None:
        self.receiver = receiver
        self.open_connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _HttpHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.receiver._lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.receiver._lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        """Shut down every open connection so that blocked handler reads return at once."""
        with self.receiver._lock:
            for conn in self.open_connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _HttpHandler(BaseHTTPRequestHandler):
    timeout = 5.0  # an idle client cannot block server_close() for longer than this

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    def do_POST(self) -> None:
        receiver = cast(_HttpServer, self.server).receiver
        if self.path.split("?")[0] != "/v1/metrics":
            self._reply(404, b"not found")
            return
        try:
            request = ExportMetricsServiceRequest.FromString(self._read_body())
        except Exception as exc:
            self._reply(400, f"bad request: {exc}".encode())
            return
        receiver._attempt({k.lower(): v for k, v in self.headers.items()})
        if receiver.mode == "unavailable":
            self._reply(503, b"receiver is in 'unavailable' mode")
            return
        receiver._record("http", request)
        if receiver.mode == "hang":
            receiver._closing.wait()
            return  # the connection closes without any answer
        body = ExportMetricsServiceResponse().SerializeToString()
        self._reply(200, body, "application/x-protobuf")


class OtlpReceiver:
    """OTLP metrics receiver serving gRPC and HTTP/protobuf on loopback ports.

    ``mode`` decides how it answers: "ok" stores requests and answers success, "hang" stores
    them and never answers until closed, "unavailable" answers UNAVAILABLE (gRPC) / 503 (HTTP).
    The ports are free ones, or ``grpc_port``/``http_port`` (a collector coming back where
    it was refused).
    """

    def __init__(self, mode: Mode = "ok", grpc_port: int = 0, http_port: int = 0) -> None:
        self.mode: Mode = mode
        self._wanted = (grpc_port, http_port)
        self.attempts = 0  # export requests that reached a handler, answered or not
        self.headers: list[dict[str, str]] = []  # gRPC metadata or HTTP headers, per attempt
        self._lock = threading.Lock()
        self._requests: list[tuple[str, ExportMetricsServiceRequest]] = []
        self._closing = threading.Event()
        self._executor: futures.ThreadPoolExecutor | None = None
        self._grpc_server: Any = None
        self._http_server: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc_port = 0

    def __enter__(self) -> OtlpReceiver:
        try:
            self._executor = futures.ThreadPoolExecutor(8, thread_name_prefix="otlp-grpc")
            server = grpc.server(self._executor, options=[("grpc.so_reuseport", 0)])
            self._grpc_server = server
            add_servicer = metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server
            add_servicer(_Servicer(self), server)  # type: ignore[no-untyped-call]
            self._grpc_port = int(server.add_insecure_port(f"127.0.0.1:{self._wanted[0]}"))
            if self._wanted[0]:
                assert self._grpc_port == self._wanted[0], "the gRPC port was taken meanwhile"
            server.start()
            self._http_server = _HttpServer(self, self._wanted[1])
            self._http_thread = threading.Thread(
                target=self._http_server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="otlp-http",
                daemon=True,
            )
            self._http_thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Release hanging handlers, then stop both servers and their threads."""
        self._closing.set()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0).wait(5)
            self._grpc_server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._http_server is not None:
            if self._http_thread is not None:
                self._http_server.shutdown()
                self._http_thread.join(timeout=5)
                self._http_thread = None
            self._http_server.abort_connections()
            self._http_server.server_close()
            self._http_server = None

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def grpc_port(self) -> int:
        """Port of the gRPC server."""
        return self._grpc_port

    @property
    def http_port(self) -> int:
        """Port of the HTTP server."""
        assert self._http_server is not None, "OtlpReceiver is not running"
        return int(self._http_server.server_address[1])

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` for OTLP/gRPC exporters."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:PORT/v1/metrics`` for OTLP/HTTP exporters."""
        return f"http://127.0.0.1:{self.http_port}/v1/metrics"

    def _attempt(self, headers: dict[str, str]) -> None:
        with self._lock:
            self.attempts += 1
            self.headers.append(headers)

    def _record(self, protocol: str, request: ExportMetricsServiceRequest) -> None:
        with self._lock:
            self._requests.append((protocol, request))

    @property
    def requests(self) -> list[tuple[str, ExportMetricsServiceRequest]]:
        """A snapshot of every request received so far, as (protocol, request)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many export requests arrived (over both protocols)."""
        with self._lock:
            return len(self._requests)

    def clear(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._requests.clear()

    def points(self, metric_name: str, protocol: str | None = None) -> list[ReceivedPoint]:
        """Every received data point of ``metric_name``, in arrival order."""
        return [
            point
            for proto, request in self.requests
            if protocol is None or proto == protocol
            for point in _points_of(proto, request, metric_name)
        ]

    def metric_names(self) -> set[str]:
        """Names of all metrics received so far."""
        return {str(m.name) for _, request in self.requests for _, _, m in _iter_metrics(request)}

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll ``predicate`` until it is true; raise AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not met within {timeout}s: {self.request_count} requests, "
                    f"metrics received: {sorted(self.metric_names())}"
                )
            time.sleep(0.02)

    def wait_for_metric(
        self, name: str, timeout: float = 10.0, protocol: str | None = None
    ) -> list[ReceivedPoint]:
        """Wait until at least one point of metric ``name`` arrived and return all of them."""
        self.wait_for(lambda: bool(self.points(name, protocol)), timeout)
        return self.points(name, protocol)
