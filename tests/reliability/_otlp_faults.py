"""Misbehaving collectors and a job subprocess for the reliability tests.

Each server is real (sockets on loopback); each misbehaves in one way a
collector can: it answers slowly, answers garbage, speaks TLS to a plain
client, or comes up on a port that refused connections a moment ago.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _support.otlp_receiver import OtlpReceiver

# The job's own work: a known result, printed before jobmeter's exit begins.
JOB = textwrap.dedent(
    """
    import os, sys, time, jobmeter
    jobmeter.configure(exporters="otlp")
    ops = jobmeter.MetricsCollector("etl")
    blocks = int(os.environ.get("JOB_BLOCKS", "20"))
    started = time.monotonic()
    total = 0
    for i in range(blocks):
        with ops.measure("work"):
            total += sum(range(10_000))
            time.sleep(0.01)
    print("RESULT", total, round(time.monotonic() - started, 3), flush=True)
    print("EXITING", time.time(), flush=True)
    sys.exit(int(os.environ.get("JOB_EXIT", "0")))
    """
)


@dataclass(frozen=True)
class JobRun:
    """What a job subprocess did: its result line, exit status, stderr and timings."""

    returncode: int
    result: int
    work_seconds: float
    exit_seconds: float  # from the job's last line to the process's end
    stderr: str


def otlp_env(protocol: str, endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a job exporting to ``endpoint`` only, over ``protocol``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))}
    env.update(
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=endpoint,
    )
    env.update(extra)
    return env


def run_job(env: dict[str, str], script: str = JOB, timeout: float = 60.0) -> JobRun:
    """Run the job and time its exit from the moment it printed its last line."""
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    result = process.stdout.readline().split()
    exiting = process.stdout.readline().split()
    try:
        process.wait(timeout=timeout)
    finally:
        process.kill()
    exited = time.time()
    stderr = process.stderr.read()
    assert result[:1] == ["RESULT"], stderr
    assert exiting[:1] == ["EXITING"], stderr
    return JobRun(
        returncode=process.returncode,
        result=int(result[1]),
        work_seconds=float(result[2]),
        exit_seconds=exited - float(exiting[1]),
        stderr=stderr,
    )


class SlowReceiver(OtlpReceiver):
    """An OTLP receiver that answers every export ``delay`` seconds late (both protocols)."""

    def __init__(self, delay: float) -> None:
        super().__init__("ok")
        self.delay = delay

    def _attempt(self, headers: dict[str, str]) -> None:
        super()._attempt(headers)
        self._closing.wait(self.delay)  # close() releases a waiting handler at once


def ReceiverOnPort(grpc_port: int, http_port: int) -> OtlpReceiver:  # noqa: N802
    """An OTLP receiver on given ports: a collector coming back where it was refused."""
    return OtlpReceiver("ok", grpc_port=grpc_port, http_port=http_port)


class RawServer:
    """Accepts connections and answers each with ``reply`` (or a TLS handshake), then closes.

    ``reply=b"..."`` is a collector answering garbage: not HTTP, not HTTP/2.
    ``tls=context`` is a TLS server: a plain-text client gets a handshake error.
    """

    def __init__(self, reply: bytes = b"", tls: ssl.SSLContext | None = None) -> None:
        self._reply = reply
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if self._tls is not None:
                with self._tls.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.recv(65536)
                return
            conn.recv(65536)
            conn.sendall(self._reply)
        except OSError:
            pass  # the client's half of the mismatch; what it makes of it is under test
        finally:
            conn.close()


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (openssl CLI)."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
