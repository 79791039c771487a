"""A TCP server that accepts connections and then never reads or answers: a hung collector."""

from __future__ import annotations

import socket
import threading


class HangingTcpServer:
    """Listen on a free loopback port; accept every connection and keep it open, silently.

    Exporters pointed at ``endpoint`` connect successfully and then wait forever for an answer,
    which is how a collector that hangs after accept looks at the TCP level.
    """

    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The port the server listens on (valid inside the ``with`` block)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def connection_count(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return len(self._accepted)

    def __enter__(self) -> HangingTcpServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"hanging-tcp-{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._accepted.append(conn)

    def close(self) -> None:
        """Stop accepting and close every accepted connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._accepted:
                conn.close()
            self._accepted.clear()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
