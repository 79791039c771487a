"""Run the real Prometheus Pushgateway binary for push tests."""

from __future__ import annotations

from pathlib import Path

from .prometheus import ManagedServer, ServerProcess, http_get

PUSHGATEWAY_BINARY = "/usr/bin/prometheus-pushgateway"


class Pushgateway(ManagedServer):
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

    def metrics_text(self) -> str:
        """The Pushgateway's /metrics page: every pushed series plus its own metrics."""
        return http_get(f"{self.url}/metrics").decode()
