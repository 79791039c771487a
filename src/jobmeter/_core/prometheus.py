"""The Prometheus endpoint: OTel's Prometheus reader served by prometheus_client.

The reader registers with a private CollectorRegistry, so that an application's
own prometheus_client metrics on the global REGISTRY never collide with ours.
The port is bound in configure(), where a busy port is a configuration error.

The server is prometheus_client's WSGI app in a server of our own, because
prometheus_client's start_http_server() has three faults for a long-running job:
it does the TLS handshake in the accepting thread (one client that connects and
says nothing stops every scrape), it never times a connection out, and it
starts one thread per connection without limit. It also has no basic auth.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, make_wsgi_app

from jobmeter._core.config import Settings
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.variables import (
    PROMETHEUS_CERTFILE,
    PROMETHEUS_CLIENT_CAFILE,
    PROMETHEUS_HOST,
    PROMETHEUS_KEYFILE,
    PROMETHEUS_PORT,
)

_log = logging.getLogger("jobmeter")

# A scrape reads a few kilobytes; a connection silent this long is stalled or hostile.
CONNECTION_TIMEOUT_S = 10.0
# Connections served at once; more are closed at once, so threads stay bounded.
MAX_CONNECTIONS = 128

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Handler(WSGIRequestHandler):
    """Serves one connection; logs nothing per request, and times out when stalled."""

    timeout = None  # the server set the socket's timeout before the TLS handshake

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a scrape every few seconds would flood the job's log."""


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once, TLS handshakes in that thread."""

    daemon_threads = True
    block_on_close = False
    # socketserver's backlog of 5 overflows when many scrapers connect at once (SYN retries).
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], family: int, tls: ssl.SSLContext | None) -> None:
        self.address_family = family
        self.tls = tls
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.connection_timeout_s = CONNECTION_TIMEOUT_S
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            _log.debug("jobmeter: Prometheus endpoint busy; closed a connection from %s",
                       client_address)  # fmt: skip
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(self.connection_timeout_s)
            if self.tls is not None:
                # Here, not in accept(): a silent client then stalls only its own thread.
                request = self.tls.wrap_socket(request, server_side=True)
            self.finish_request(request, client_address)
        except Exception as error:  # a bad client must never stop the server
            _log.debug("jobmeter: Prometheus connection from %s failed: %s", client_address, error)
        finally:
            self.shutdown_request(request)
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log at debug level: socketserver's default prints a traceback to stderr."""
        _log.debug("jobmeter: Prometheus request from %s failed", client_address, exc_info=True)


def _guarded(app: _WSGIApp, user: str, password: str) -> _WSGIApp:
    """Wrap ``app`` so that only requests with these Basic credentials reach it."""
    # Compare digests: equal lengths, so the comparison time says nothing about the secret.
    expected = hashlib.sha256(f"{user}:{password}".encode()).digest()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        given = b""
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, ValueError):
                given = base64.b64decode(token.strip(), validate=True)
        if given and hmac.compare_digest(hashlib.sha256(given).digest(), expected):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", 'Basic realm="jobmeter", charset="UTF-8"'),
                ("Content-Type", "text/plain; charset=utf-8"),
            ],
        )
        return [b"401 Unauthorized\n"]

    return guarded


def _load(
    action: Callable[[], object], setting: str, path: str | None, accepted: str, detail: str
) -> None:
    """Run one loading step; a file that cannot be read is an error naming its setting."""
    try:
        action()
    except (ssl.SSLError, OSError) as error:
        raise ConfigurationError(setting, path, accepted, f"{detail} ({error})") from None


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from the certificate settings, or None without them."""
    certfile, keyfile = settings.prometheus_certfile, settings.prometheus_keyfile
    if certfile is None or keyfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The certificate alone first, so that an error names the right file.
    _load(
        lambda: ssl.create_default_context(cafile=certfile), PROMETHEUS_CERTFILE, certfile,
        "a PEM file holding the server certificate (and its chain)", "cannot load it",
    )  # fmt: skip
    _load(
        lambda: context.load_cert_chain(certfile, keyfile), PROMETHEUS_KEYFILE, keyfile,
        "a PEM file holding the unencrypted private key of the certificate",
        "cannot load it, or it does not match the certificate",
    )  # fmt: skip
    cafile = settings.prometheus_client_cafile
    if cafile is not None:
        _load(
            lambda: context.load_verify_locations(cafile=cafile), PROMETHEUS_CLIENT_CAFILE,
            cafile, "a PEM file holding the CA certificates that sign client certificates",
            "cannot load it",
        )  # fmt: skip
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class PrometheusEndpoint:
    """An HTTP(S) server answering GET /metrics with the text exposition format."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.reader = PrometheusMetricReader(registry=self.registry)
        app: _WSGIApp = make_wsgi_app(self.registry)
        if basic_auth is not None:
            app = _guarded(app, *basic_auth)
            if tls is None and host not in ("localhost", "127.0.0.1", "::1"):
                _log.warning(
                    "jobmeter: the Prometheus endpoint on %s takes a password over plain "
                    "HTTP; set %s and %s to serve HTTPS",
                    host, PROMETHEUS_CERTFILE, PROMETHEUS_KEYFILE,
                )  # fmt: skip
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, sockaddr = infos[0]
            server = _Server((str(sockaddr[0]), port), family, tls)
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
        server.set_app(app)
        thread = threading.Thread(
            target=server.serve_forever, name="jobmeter-prometheus", daemon=True
        )
        thread.start()
        self._server: _Server | None = server
        self._thread: threading.Thread | None = thread
        self.scheme = "http" if tls is None else "https"
        address = server.server_address
        self.host = str(address[0])
        self.port = int(address[1])

    @classmethod
    def from_settings(cls, settings: Settings) -> PrometheusEndpoint:
        """The endpoint that ``settings`` describe: address, TLS files and basic auth."""
        return cls(
            settings.prometheus_host,
            settings.prometheus_port,
            tls=tls_context(settings),
            basic_auth=settings.prometheus_basic_auth,
        )

    @property
    def url(self) -> str:
        """The URL Prometheus scrapes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/metrics"

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
