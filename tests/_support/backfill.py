"""Helpers for the Backfill tests: a scripted clock, a real HTTP server, worker processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WORKER = Path(__file__).resolve().parent / "backfill_worker.py"
SRC = Path(__file__).resolve().parents[2] / "src"
_LINE_BREAKS = re.compile(r"\r\n?|\x1b\[2K")
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def strip_ansi(text: str) -> str:
    """Terminal output without colour and cursor escapes."""
    return _ESCAPES.sub("", _LINE_BREAKS.sub("\n", text))


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        # /status/503 answers 503; anything else 200.
        parts = self.path.strip("/").split("/")
        status = int(parts[1]) if len(parts) == 2 and parts[0] == "status" else 200
        body = b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer  # noqa: N815 - names fixed by BaseHTTPRequestHandler
    do_POST = _answer  # noqa: N815


@contextmanager
def http_server() -> Iterator[str]:
    """A real HTTP server on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)  # fmt: skip
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process: no OTEL_/JOBMETER_ leftovers, jobmeter importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def worker(*args: str, **popen: Any) -> subprocess.Popen[str]:
    """Start ``backfill_worker.py`` with ``args``."""
    env = popen.pop("env", None) or worker_env()
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env, text=True, **popen)


def read_checkpoint(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
