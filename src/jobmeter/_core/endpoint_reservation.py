"""What ``jobmeter run``'s command needs of the endpoint, made before the OpenTelemetry SDK loads.

The wrapper starts the command first and its telemetry once the command runs
(about 0.1 s of CPU that a short command would otherwise wait for). The
command's processes must still be told where to join (``shared_endpoint``),
and the port they are told must be the one served: so the port is bound and
the shared directory written here, with the standard library only, and
``configure_host(reservation=...)`` serves from them later. Scrapes that come
in between wait in the listen backlog; a run that ends before its telemetry
came up releases both.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

from jobmeter._core.config import Settings
from jobmeter._core.environment import reject
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.listener import listen, moved, scrape_url
from jobmeter._core.shared_endpoint import SharedEndpoint, open_shared

if TYPE_CHECKING:
    import ssl


class Reservation:
    """A bound port and, where it can be made, the directory the command's processes join."""

    def __init__(
        self,
        settings: Settings,
        listener: socket.socket,
        tls: ssl.SSLContext | None,
        shared: SharedEndpoint | None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.tls = tls
        self.shared = shared

    @property
    def environment(self) -> dict[str, str]:
        """What the command's environment needs to join (empty: it serves its own)."""
        return {} if self.shared is None else self.shared.environment

    def release(self) -> None:
        """Close the port and remove the directory: the endpoint will not be served."""
        with contextlib.suppress(OSError):
            self.listener.close()
        if self.shared is not None:
            self.shared.close()


def reserve(settings: Settings) -> Reservation | None:
    """The reservation for ``settings``; None without a Prometheus exporter or a usable port.

    A host, port or TLS file that cannot be used is one warning and no
    endpoint, as configure() does (an error in strict mode, before the
    command starts).
    """
    if "prometheus" not in settings.exporters or settings.disabled:
        return None
    tls = None
    try:
        if settings.prometheus_certfile is not None and settings.prometheus_keyfile is not None:
            from jobmeter._core.scrape_server import tls_context  # ssl and http.server: rare

            tls = tls_context(settings)
        host, port = settings.prometheus_host, settings.prometheus_port
        listener = listen(host, port, strict=settings.strict)
    except ConfigurationError as error:
        reject(error, "the job goes on without the Prometheus endpoint", strict=settings.strict)
        return None
    address = listener.getsockname()
    url = scrape_url("http" if tls is None else "https", str(address[0]), int(address[1]))
    moved(host, port, url, int(address[1]))
    return Reservation(settings, listener, tls, open_shared(settings, url))
