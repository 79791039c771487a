"""Loopback ports for tests: free ones to listen on, and ones where connections are refused."""

from __future__ import annotations

import atexit
import socket

# Sockets bound (but never listening) for refused_endpoint_port(): holding them keeps the port
# reserved, so no other server in this process or elsewhere can start listening on it.
_RESERVED: list[socket.socket] = []


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def refused_endpoint_port() -> int:
    """Return a loopback port where a TCP connect is refused, for the rest of this process.

    The port stays bound by a socket that never listens, so the kernel answers connects with RST
    and no other server can take the port over while the tests run.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)
    port: int = sock.getsockname()[1]
    return port


@atexit.register
def _release_reserved() -> None:
    while _RESERVED:
        _RESERVED.pop().close()
