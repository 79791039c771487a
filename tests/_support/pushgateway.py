"""Run the real Prometheus Pushgateway binary for push tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .prometheus import ServerProcess, http_get

PUSHGATEWAY_BINARY = "/usr/bin/prometheus-pushgateway"


class Pushgateway:
    """A real Pushgateway on a free loopback port, persisting to a file under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._server = ServerProcess(self._argv, tmp_path / "pushgateway.log")

    def _argv(self, port: int) -> list[str]:
        return [
            PUSHGATEWAY_BINARY,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={self.tmp_path / 'pushgateway.data'}",
        ]

    def __enter__(self) -> Pushgateway:
        self._server.start(timeout=30.0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running Pushgateway process (None once stopped)."""
        return self._server.process

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as prometheus_client.push_to_gateway and scrape targets want it."""
        return f"127.0.0.1:{self._server.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.address}"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the Pushgateway's log."""
        return self._server.log_tail(lines)

    def metrics_text(self) -> str:
        """The Pushgateway's /metrics page: every pushed series plus its own metrics."""
        return http_get(f"{self.url}/metrics").decode()
