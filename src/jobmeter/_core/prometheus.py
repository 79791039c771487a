"""The Prometheus endpoint: OTel's Prometheus reader, served over HTTP(S) on host:port.

The reader (OTel's, whose page ``scrape_page`` writes from the points) registers
with a private CollectorRegistry, so that an application's own
prometheus_client metrics on the global REGISTRY never collide with ours; the
page serves them after ours (``default_registry``), leaving out a family that
takes one of our names.
The port is bound in configure(), before the MeterProvider exists (``listener``:
a busy port moves to the next free one), or before ``jobmeter run``'s command
starts (``endpoint_reservation``), and served once the reader is registered: a
scrape in between waits in the listen backlog instead of reading an empty page.
The HTTP server is ``scrape_server``'s.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    make_wsgi_app,
)

from jobmeter._core import threads
from jobmeter._core.config import Settings
from jobmeter._core.default_registry import DefaultRegistry, Served
from jobmeter._core.family_names import ClashError
from jobmeter._core.listener import listen, moved, scrape_url
from jobmeter._core.scrape_page import ScrapeReader, scrape_app, text_page
from jobmeter._core.scrape_server import Server, WSGIApp, guarded, tls_context
from jobmeter._core.variables import PROMETHEUS_CERTFILE, PROMETHEUS_KEYFILE

_log = logging.getLogger("jobmeter")

#: Resource attributes every series carries where several processes share one endpoint.
IDENTITY: Final = ("service.instance.id", "process.pid")
#: Their labels, which the default registry's samples get there too.
IDENTITY_LABELS: Final = ("service_instance_id", "process_pid")


def new_reader(
    *, shared: bool, default_registry: str = "false", strict: bool = False
) -> tuple[CollectorRegistry, ScrapeReader]:
    """A Prometheus reader on a private registry; shared, each series names its process.

    ``default_registry``: what its pages serve of prometheus_client's REGISTRY
    (``true``, ``all`` or ``false``).
    """
    registry = CollectorRegistry(auto_describe=False)
    reader = ScrapeReader(registry, IDENTITY.__contains__ if shared else None)
    if default_registry != "false":
        identity = IDENTITY_LABELS if shared else ()
        reader.default = DefaultRegistry(default_registry, strict=strict, identity=identity)
    return registry, reader


class PrometheusEndpoint:
    """An HTTP(S) server answering GET /metrics with the text exposition format.

    Bound when made, served after ``start()``. Raises ConfigurationError when
    the host or the TLS files cannot be used, or the port cannot be bound for
    another reason than being busy.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        basic_auth: tuple[str, str] | None = None,
        strict: bool = False,
        shared: bool = False,
        listener: socket.socket | None = None,
        default_registry: str = "true",
    ) -> None:
        self.registry, self.reader = new_reader(
            shared=shared, default_registry=default_registry, strict=strict
        )
        #: Set when the endpoint serves other processes' figures too (shared_endpoint).
        self.hosted: Callable[[bytes], bytes] | None = None
        self._collecting = threading.Lock()
        # The page is written from the points (scrape_page); prometheus_client's app
        # serves what that does not write.
        served = Served(self.registry, self.reader.default)
        app: WSGIApp = self._app(scrape_app(self.reader, make_wsgi_app(served)))
        if basic_auth is not None:
            app = guarded(app, *basic_auth)
            if tls is None and host not in ("localhost", "127.0.0.1", "::1"):
                _log.warning(
                    "jobmeter: the Prometheus endpoint on %s takes a password over plain "
                    "HTTP; set %s and %s to serve HTTPS",
                    host, PROMETHEUS_CERTFILE, PROMETHEUS_KEYFILE,
                )  # fmt: skip
        # A socket bound before (jobmeter run's reservation) is served as it is.
        server = Server(listener or listen(host, port, strict=strict), tls)
        server.set_app(app)
        self._server: Server | None = server
        self._thread: threading.Thread | None = None
        self.scheme = "http" if tls is None else "https"
        address = server.server_address
        self.host = str(address[0])
        self.port = int(address[1])
        if listener is None:
            moved(host, port, self.url, self.port)

    def _app(self, own: WSGIApp) -> WSGIApp:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            try:
                return serve(environ, start_response)
            except ClashError as error:  # strict: this scrape fails; the server goes on
                body = f"{error}\n".encode()
                start_response("500 Internal Server Error", [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ])  # fmt: skip
                return [body]

        def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            hosted = self.hosted
            # OTel's reader hands each collection to whichever concurrent scrape pops it
            # first: the other would read a page without it. One collection at a time.
            with self._collecting:
                if hosted is None:
                    return own(environ, start_response)
                page = text_page(self.reader, self.registry, mark=True)
            # Text format 0.0.4, which every Prometheus accepts: the pages merge as text.
            body = hosted(page)
            headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
            if "gzip" in str(environ.get("HTTP_ACCEPT_ENCODING", "")):
                body = gzip.compress(body, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]

        return app

    @classmethod
    def from_settings(cls, settings: Settings, *, shared: bool = False) -> PrometheusEndpoint:
        """The endpoint that ``settings`` describe: address, TLS files and basic auth."""
        return cls(
            settings.prometheus_host,
            settings.prometheus_port,
            tls=tls_context(settings),
            basic_auth=settings.prometheus_basic_auth,
            strict=settings.strict,
            shared=shared,
            default_registry=settings.prometheus_default_registry,
        )

    @property
    def url(self) -> str:
        """The URL Prometheus scrapes."""
        return scrape_url(self.scheme, self.host, self.port)

    def start(self) -> None:
        """Serve the scrapes, the ones waiting since the port was bound first."""
        if self._server is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="jobmeter-prometheus", daemon=True
        )
        threads.start(self._thread)

    def close(self) -> None:
        """Stop serving; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
            server.server_close()

    def abandon_in_child(self) -> None:
        """In a forked child: close the inherited listening socket without serving."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.socket.close()
