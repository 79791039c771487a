"""The Prometheus endpoint: OTel's Prometheus reader served by prometheus_client.

The reader registers with a private CollectorRegistry, so that an application's
own prometheus_client metrics on the global REGISTRY never collide with ours.
The port is bound in configure(), where a busy port is a configuration error.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, start_http_server

from jobmeter._config import PROMETHEUS_HOST, PROMETHEUS_PORT
from jobmeter._errors import ConfigurationError

_log = logging.getLogger("jobmeter")


class PrometheusEndpoint:
    """An HTTP server answering GET /metrics with the text exposition format."""

    def __init__(self, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.reader = PrometheusMetricReader(registry=self.registry)
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except (socket.gaierror, UnicodeError, ValueError) as error:
            raise ConfigurationError(
                PROMETHEUS_HOST, host, "a host name or IP address of this machine", str(error)
            ) from None
        except OSError as error:
            raise ConfigurationError(
                PROMETHEUS_PORT,
                port,
                "a free port, or 0 to pick one",
                f"cannot listen on {host}:{port} ({error.strerror or error})",
            ) from None
        self._server: WSGIServer | None = server
        self._thread: threading.Thread | None = thread
        address = server.server_address
        self.host = str(address[0])
        self.port = int(address[1])

    @property
    def url(self) -> str:
        """The URL Prometheus scrapes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def abandon_in_child(self) -> None:
        """In a forked child: close the inherited listening socket without serving."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.socket.close()
