"""The Prometheus endpoint's listening socket, bound with the standard library alone.

Binding comes before anything else of the endpoint: ``jobmeter run`` binds the
port before its command starts, so that the address the command's processes are
told is the one served, and loads the HTTP server and the OpenTelemetry SDK
only once the command runs (``endpoint_reservation``). A busy port moves to the
next free one (8000, 8001, ... as Spark's UI does), so that several jobs on one
node each get one; strict mode makes it an error.
"""

from __future__ import annotations

import errno
import socket
from typing import Final

from jobmeter._core.environment import reject
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.variables import PROMETHEUS_HOST, PROMETHEUS_PORT

#: Ports tried after a busy one before the operating system picks one.
PORT_RETRIES: Final = 16
# socketserver's backlog of 5 overflows when many scrapers connect at once (SYN retries).
BACKLOG: Final = 128


def listen(host: str, port: int, *, strict: bool = False) -> socket.socket:
    """A socket listening on host:port, or on the next free port when it is busy (not strict).

    Raises:
        ConfigurationError: the host is not one of this machine, or the port
            cannot be bound for another reason than being busy (or, strict,
            at all).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
    except (socket.gaierror, UnicodeError, ValueError) as error:
        raise ConfigurationError(
            PROMETHEUS_HOST, host, "a host name or IP address of this machine", str(error)
        ) from None
    address = str(sockaddr[0])
    candidates = [port] if port == 0 or strict else [
        *range(port, min(port + PORT_RETRIES, 65535) + 1), 0
    ]  # fmt: skip
    for candidate in candidates:
        try:
            return _bound(family, (address, candidate, *sockaddr[2:]))
        except OSError as error:
            if error.errno != errno.EADDRINUSE or candidate == candidates[-1]:
                raise ConfigurationError(
                    PROMETHEUS_PORT, port, "a free port, or 0 to pick one",
                    f"cannot listen on {host}:{candidate} ({error.strerror or error})",
                ) from None  # fmt: skip
    raise AssertionError("unreachable: the last candidate raises")


def _bound(family: int, address: tuple[object, ...]) -> socket.socket:
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As http.server does: a port in TIME_WAIT from the job's last run is free.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(BACKLOG)
    except BaseException:
        listener.close()
        raise
    return listener


def scrape_url(scheme: str, host: str, port: int) -> str:
    """The URL Prometheus scrapes: ``http://127.0.0.1:8000/metrics``, ``http://[::1]:8000/...``."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/metrics"


def moved(host: str, asked: int, url: str, port: int) -> None:
    """One warning when the port asked for was busy and ``url`` serves on another."""
    if asked not in (0, port):
        # Strict mode raised in listen(); here the job goes on, on the port it says.
        error = ConfigurationError(
            PROMETHEUS_PORT, asked, "a free port, or 0 to pick one",
            f"another program or job listens on {host}:{asked}",
        )  # fmt: skip
        reject(error, f"serving on {url} instead", strict=False)
