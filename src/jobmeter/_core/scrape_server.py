"""The HTTP(S) server of the Prometheus endpoint: bounded, timed out, TLS in the serving thread.

prometheus_client's start_http_server() has three faults for a long-running job:
it does the TLS handshake in the accepting thread (one client that connects and
says nothing stops every scrape), it never times a connection out, and it
starts one thread per connection without limit. It also has no basic auth.
This server is prometheus_client's WSGI app in a server of our own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from jobmeter._core.config import Settings
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.variables import (
    PROMETHEUS_CERTFILE,
    PROMETHEUS_CLIENT_CAFILE,
    PROMETHEUS_KEYFILE,
)

_log = logging.getLogger("jobmeter")

# A scrape reads a few kilobytes; a connection silent this long is stalled or hostile.
CONNECTION_TIMEOUT_S = 10.0
# Connections served at once; more are closed at once, so threads stay bounded.
MAX_CONNECTIONS = 128

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Handler(WSGIRequestHandler):
    """Serves one connection; logs nothing per request, and times out when stalled."""

    timeout = None  # the server set the socket's timeout before the TLS handshake

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a scrape every few seconds would flood the job's log."""


class Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once, TLS handshakes in that thread."""

    daemon_threads = True
    block_on_close = False
    # socketserver's backlog of 5 overflows when many scrapers connect at once (SYN retries).
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext | None) -> None:
        self.address_family = listener.family
        self.tls = tls
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.connection_timeout_s = CONNECTION_TIMEOUT_S
        # The socket is bound and listening already (``listener.listen``); serve_forever()
        # starts once the reader is registered, and scrapes that came earlier wait in the
        # backlog.
        super().__init__(listener.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.server_address = listener.getsockname()
        host, port = self.server_address[:2]
        self.server_name, self.server_port = socket.getfqdn(str(host)), port
        self.setup_environ()
        # shutdown() wakes the serving loop through this pipe: no polling, so an idle
        # endpoint costs no CPU and shutdown() returns at once (socketserver polls every
        # 0.5 s, which every job waited for at exit).
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._stop_requested = False
        self._stopped = threading.Event()
        self._stopped.set()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until shutdown(); ``poll_interval`` is unused (shutdown wakes the loop)."""
        self._stopped.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(self._wake_read, selectors.EVENT_READ)
                while not self._stopping():
                    ready = selector.select()
                    if not self._stopping() and any(key.fileobj is self.socket for key, _ in ready):
                        # socketserver's own step (since 2.6): accept, or return on a
                        # connection reset before it was accepted; handle_request() would
                        # wait for the next one.
                        self._handle_request_noblock()  # type: ignore[attr-defined]
        except (OSError, ValueError):  # closed under us: the endpoint is going away
            pass
        finally:
            self._stopped.set()

    def _stopping(self) -> bool:
        return self._stop_requested

    def shutdown(self) -> None:
        """Stop serve_forever() and wait for it: at once, it is woken."""
        self._stop_requested = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

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


def guarded(app: WSGIApp, user: str, password: str) -> WSGIApp:
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
