"""Run the real Prometheus binary against test targets and query it over its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from .ports import free_port

PROMETHEUS_BINARY = "/usr/bin/prometheus"
Sample = tuple[dict[str, str], float]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    """GET ``url`` and return the body; on an HTTP error status, return the error body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
    return body


class ServerProcess:
    """A server binary running in the background with stdout/stderr in a log file.

    ``start`` picks a free loopback port, runs ``build_argv(port)`` and waits until
    ``http://127.0.0.1:PORT{ready_path}`` answers 200. If the port was taken in the meantime it
    retries on another port; on any other failure it stops the process and raises with the log.
    """

    def __init__(
        self, build_argv: Callable[[int], list[str]], log_path: Path, ready_path: str = "/-/ready"
    ) -> None:
        self._build_argv = build_argv
        self.log_path = log_path
        self._ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the process's output."""
        if not self.log_path.exists():
            return "<no log>"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = 30.0) -> None:
        """Start the binary and wait until it is ready; raise RuntimeError if it never is."""
        for _attempt in range(3):
            self.port = free_port()
            argv = self._build_argv(self.port)
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                if self._wait_ready(timeout):
                    return
            except BaseException:
                self.stop()
                raise
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
        raise RuntimeError(
            f"{argv[0]} did not become ready within {timeout}s; log tail:\n{self.log_tail()}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.port}{self._ready_path}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """SIGTERM the process, SIGKILL it if it is still alive after 5 s, and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class ManagedServer:
    """A context manager around a ServerProcess: started on enter, stopped on exit."""

    _server: ServerProcess

    def __enter__(self) -> Self:
        self._server.start(timeout=30.0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running server process (None once stopped)."""
        return self._server.process

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self._server.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.address}"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        return self._server.log_tail(lines)


class PrometheusServer(ManagedServer):
    """A real Prometheus scraping ``targets`` ("host:port") every ``scrape_interval``."""

    def __init__(
        self,
        tmp_path: Path,
        targets: list[str],
        scrape_interval: str = "1s",
        metrics_path: str = "/metrics",
        honor_labels: bool = False,
        job: str = "jobmeter",
    ) -> None:
        self.tmp_path = tmp_path
        self.config_path = tmp_path / "prometheus.yml"
        config = {  # JSON is valid YAML, and json.dumps quotes every string safely
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": metrics_path,
                    "honor_labels": honor_labels,
                    "static_configs": [{"targets": list(targets)}],
                }
            ],
        }
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        self._server = ServerProcess(self._argv, tmp_path / "prometheus.log")

    def _argv(self, port: int) -> list[str]:
        return [
            PROMETHEUS_BINARY,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    def _api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        reply = json.loads(http_get(f"{self.url}{path}{query}"))
        if reply.get("status") != "success":
            raise RuntimeError(f"Prometheus API {path} {params}: {reply}")
        return reply["data"]

    def query(self, promql: str) -> list[Sample]:
        """Evaluate ``promql`` now; return (labels, value) per series (a scalar has no labels)."""
        data = self._api("/api/v1/query", query=promql)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [(dict(item["metric"]), float(item["value"][1])) for item in result]
        if kind == "scalar":
            return [({}, float(result[1]))]
        raise RuntimeError(f"unsupported result type {kind!r} for {promql!r}: {result}")

    def targets(self) -> list[dict[str, Any]]:
        """The active targets with their health, as /api/v1/targets reports them."""
        active: list[dict[str, Any]] = self._api("/api/v1/targets")["activeTargets"]
        return active

    def wait_for(
        self, promql: str, predicate: Callable[[list[Sample]], bool], timeout: float = 30.0
    ) -> list[Sample]:
        """Poll ``promql`` every 0.5 s until ``predicate(result)``; return that result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        health = [
            {k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "lastScrape")}
            for t in self.targets()
        ]
        raise AssertionError(
            f"{promql!r} did not satisfy the predicate within {timeout}s.\n"
            f"last result: {result}\ntargets: {health}"
        )
