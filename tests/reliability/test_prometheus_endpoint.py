"""The Prometheus endpoint under attack and under load: bind address, TLS, basic auth, stalls.

Scrapers run in separate processes, so that their work does not share the job's GIL and the
job's throughput while scraped is what a real scrape would cost it. Figures are printed
(``pytest -s``) for docs/reliability.md; they are not asserted tightly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

import jobmeter
from _support.prometheus import PROMETHEUS_BINARY, PrometheusServer
from jobmeter._core import scrape_server
from jobmeter._core.config import resolve
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.prometheus import PrometheusEndpoint

USER, PASSWORD = "scraper", "s3cret:with-colon"
CI_LOAD_S = 8.0
SOAK_LOAD_S = 30.0
SCRAPERS = 50


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A throwaway CA with a server certificate (localhost, 127.0.0.1) and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_key: Path  # a valid key that matches no certificate here


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _issue(d: Path, name: str, usage: str, san: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (d / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
    ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={name}")  # fmt: skip
    _openssl("x509", "-req", "-in", csr, "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days", "2",
             "-subj", "/CN=jobmeter test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    server = _issue(d, "server", "serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    client = _issue(d, "client", "clientAuth", "")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", d / "other.key")  # fmt: skip
    return Pki(d / "ca.pem", *server, *client, d / "other.key")


# --- endpoints and scrapes ----------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start an endpoint from configure()-style keywords with a counter at 3; close it after."""
    started: list[tuple[PrometheusEndpoint, MeterProvider]] = []

    def start(**overrides: Any) -> PrometheusEndpoint:
        settings = resolve({"prometheus_host": "127.0.0.1", "prometheus_port": 0, **overrides})
        endpoint = PrometheusEndpoint.from_settings(settings)
        provider = MeterProvider(metric_readers=[endpoint.reader])
        endpoint.start()
        started.append((endpoint, provider))
        provider.get_meter("test").create_counter("test.requests").add(3)
        return endpoint

    yield start
    for endpoint, provider in started:
        provider.shutdown()
        endpoint.close()


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def get(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], str]:
    """GET ``url``: (status, headers, body), also for an HTTP error status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def _client_context(pki: Pki, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one (nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


# --- bind address -------------------------------------------------------------------------------


def test_default_binds_loopback_only() -> None:
    telemetry = jobmeter.configure(prometheus_port=0)  # host left at its default, localhost
    assert telemetry.prometheus_address is not None
    host, port = telemetry.prometheus_address
    assert host in ("127.0.0.1", "::1")
    assert get(f"http://localhost:{port}/metrics")[0] == 200
    outside = _non_loopback_address()
    if outside is None:
        return  # a machine with loopback only: the bound address above is the whole check
    with pytest.raises(ConnectionRefusedError), socket.create_connection((outside, port), 2):
        pass


def test_all_interfaces_only_when_asked() -> None:
    telemetry = jobmeter.configure(prometheus_host="0.0.0.0", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    host, port = telemetry.prometheus_address
    assert host == "0.0.0.0"
    for address in filter(None, ("127.0.0.1", _non_loopback_address())):
        assert get(f"http://{address}:{port}/metrics")[0] == 200


# --- TLS, mTLS and basic auth -------------------------------------------------------------------


def test_https_scrape_with_the_ca_works(serve: Any, pki: Pki) -> None:
    endpoint = serve(prometheus_certfile=str(pki.server_cert), prometheus_keyfile=pki.server_key)
    assert endpoint.url.startswith("https://127.0.0.1:")
    status, _, body = get(endpoint.url, context=_client_context(pki))
    assert status == 200
    assert re.search(r"^test_requests_total\{[^}]*\} 3\.0$", body, re.M), body
    # An unknown CA is refused by the client, as it should be.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(endpoint.url, context=ssl.create_default_context())


def test_plain_http_to_the_tls_port_fails_and_serving_goes_on(serve: Any, pki: Pki) -> None:
    endpoint = serve(prometheus_certfile=str(pki.server_cert), prometheus_keyfile=pki.server_key)
    plain = endpoint.url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(plain, timeout=3)
    assert get(endpoint.url, context=_client_context(pki))[0] == 200


def test_silent_tls_client_does_not_block_other_scrapes(serve: Any, pki: Pki) -> None:
    """prometheus_client's own server does the handshake in accept(): one mute client stops it."""
    endpoint = serve(prometheus_certfile=str(pki.server_cert), prometheus_keyfile=pki.server_key)
    mute = [socket.create_connection((endpoint.host, endpoint.port)) for _ in range(5)]
    try:
        started = time.monotonic()
        for _ in range(5):
            assert get(endpoint.url, context=_client_context(pki), timeout=3)[0] == 200
        assert time.monotonic() - started < 3
    finally:
        for sock in mute:
            sock.close()


def test_basic_auth_rejects_missing_and_wrong_credentials(serve: Any, pki: Pki) -> None:
    endpoint = serve(
        prometheus_certfile=str(pki.server_cert),
        prometheus_keyfile=str(pki.server_key),
        prometheus_basic_auth=f"{USER}:{PASSWORD}",
    )
    context = _client_context(pki)
    for headers in (
        None,
        _auth(USER, "wrong"),
        _auth("other", PASSWORD),
        _auth(USER, PASSWORD + "x"),
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": f"Bearer {PASSWORD}"},
    ):
        status, reply_headers, body = get(endpoint.url, context=context, headers=headers)
        assert status == 401, headers
        assert reply_headers["WWW-Authenticate"].startswith('Basic realm="jobmeter"')
        assert "test_requests" not in body
    status, _, body = get(endpoint.url, context=context, headers=_auth(USER, PASSWORD))
    assert status == 200
    assert re.search(r"^test_requests_total\{[^}]*\} 3\.0$", body, re.M), body


def test_basic_auth_from_a_file(serve: Any, tmp_path: Path) -> None:
    secret = tmp_path / "auth"
    secret.write_text(f"{USER}:{PASSWORD}\n")
    endpoint = serve(prometheus_basic_auth_file=str(secret))
    assert get(endpoint.url)[0] == 401
    assert get(endpoint.url, headers=_auth(USER, PASSWORD))[0] == 200


def test_client_certificates_when_a_client_ca_is_set(serve: Any, pki: Pki) -> None:
    endpoint = serve(
        prometheus_certfile=str(pki.server_cert),
        prometheus_keyfile=str(pki.server_key),
        prometheus_client_cafile=str(pki.ca),
    )
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        get(endpoint.url, context=_client_context(pki), timeout=3)
    assert get(endpoint.url, context=_client_context(pki, client_cert=True))[0] == 200


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "variable", "wrong", "detail"),
    [
        ("server_key", "server_key", None, "CERTFILE", "server_key", "cannot load it"),
        ("server_cert", "other_key", None, "KEYFILE", "other_key", "or it does not match"),
        ("server_cert", "server_key", "server_key", "CLIENT_CAFILE", "server_key", "cannot load"),
    ],
)
def test_files_that_do_not_load_name_their_variable(
    pki: Pki, cert: str, key: str, client_ca: str | None, variable: str, wrong: str, detail: str
) -> None:
    settings = resolve(
        {
            "prometheus_host": "127.0.0.1",
            "prometheus_port": 0,
            "prometheus_certfile": str(getattr(pki, cert)),
            "prometheus_keyfile": str(getattr(pki, key)),
            "prometheus_client_cafile": client_ca and str(getattr(pki, client_ca)),
        }
    )
    with pytest.raises(ConfigurationError) as raised:
        PrometheusEndpoint.from_settings(settings)
    assert raised.value.setting == f"JOBMETER_PROMETHEUS_{variable}"
    assert raised.value.value == str(getattr(pki, wrong))
    assert detail in str(raised.value)


class _TlsPrometheus(PrometheusServer):
    """The harness's Prometheus, with the scrape config rewritten for HTTPS and basic auth."""

    def __init__(self, tmp_path: Path, target: str, ca: Path, password_file: Path) -> None:
        super().__init__(tmp_path, [target])
        config = json.loads(self.config_path.read_text())
        config["scrape_configs"][0].update(
            scheme="https",
            tls_config={"ca_file": str(ca)},
            basic_auth={"username": USER, "password_file": str(password_file)},
        )
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")


@pytest.mark.prometheus
@pytest.mark.skipif(not os.path.exists(PROMETHEUS_BINARY), reason="no prometheus binary")
def test_real_prometheus_scrapes_tls_with_basic_auth(serve: Any, pki: Pki, tmp_path: Path) -> None:
    endpoint = serve(
        prometheus_certfile=str(pki.server_cert),
        prometheus_keyfile=str(pki.server_key),
        prometheus_basic_auth=f"{USER}:{PASSWORD}",
    )
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    target = f"127.0.0.1:{endpoint.port}"
    with _TlsPrometheus(tmp_path, target, pki.ca, password_file) as prometheus:
        prometheus.wait_for('up{job="jobmeter"}', lambda r: bool(r) and r[0][1] == 1.0)
        prometheus.wait_for("test_requests_total", lambda r: bool(r) and r[0][1] == 3.0)


_COUNT = r'^jobmeter_operation_duration_seconds_count\{[^}]*operation_name="step"[^}]*\} (\S+)$'

# --- load ---------------------------------------------------------------------------------------

# Runs in a separate Python process: THREADS scrapers, each GETting the URL in a loop until the
# deadline, checking that the operation's count never goes backwards. Prints one JSON line.
_SCRAPER = r"""
import http.client, json, re, sys, threading, time
host, port, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
pattern = re.compile(sys.argv[5], re.M)
latencies, failures, backwards, lock = [], [], [], threading.Lock()
deadline = time.monotonic() + seconds
def scrape():
    last, mine = -1.0, []
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/metrics")
            reply = conn.getresponse()
            body = reply.read().decode()
            conn.close()
        except OSError as error:
            with lock: failures.append(repr(error))
            continue
        mine.append(time.monotonic() - started)
        if reply.status != 200:
            with lock: failures.append(reply.status)
            continue
        match = pattern.search(body)
        count = float(match.group(1)) if match else 0.0
        if count < last:
            with lock: backwards.append((last, count))
        last = count
    with lock: latencies.extend(mine)
workers = [threading.Thread(target=scrape) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(json.dumps({"latencies": latencies, "failures": failures[:20], "n_failures": len(failures),
                  "backwards": backwards[:20]}))
"""


class Job:
    """A job measuring a small block in a loop, in its own thread."""

    def __init__(self) -> None:
        self.ops = jobmeter.MetricsCollector("load")
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self.ops.measure("step"):
                sum(range(200))
            self.count += 1

    def start(self) -> Job:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        return self.count


def _rate(job: Job, seconds: float) -> float:
    before, started = job.count, time.monotonic()
    time.sleep(seconds)
    return (job.count - before) / (time.monotonic() - started)


def _scrapers(host: str, port: int, seconds: float, processes: int = 2) -> list[_Scrapers]:
    per_process = SCRAPERS // processes
    argv = [sys.executable, "-c", _SCRAPER, host, str(port), str(per_process), str(seconds)]
    return [_Scrapers([*argv, _COUNT]) for _ in range(processes)]


class _Scrapers:
    """One scraper process; its report goes to a file, which (unlike a pipe) never fills up."""

    def __init__(self, argv: list[str]) -> None:
        self.out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in result()
        self.process = subprocess.Popen(argv, stdout=self.out, text=True)

    def poll(self) -> int | None:
        return self.process.poll()

    def result(self, timeout: float) -> dict[str, Any]:
        self.process.wait(timeout)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        assert self.process.returncode == 0, text
        report: dict[str, Any] = json.loads(text)
        return report


def _collect(procs: list[_Scrapers], timeout: float) -> dict[str, Any]:
    merged: dict[str, Any] = {"latencies": [], "failures": [], "n_failures": 0, "backwards": []}
    for proc in procs:
        result = proc.result(timeout)
        for key in ("latencies", "failures", "backwards"):
            merged[key].extend(result[key])
        merged["n_failures"] += result["n_failures"]
    return merged


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _final_count(url: str) -> float:
    body = get(url)[2]
    match = re.search(_COUNT, body, re.M)
    assert match, body[:2000]
    return float(match.group(1))


def _load(seconds: float) -> None:
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    assert telemetry.prometheus_url is not None
    host, port = telemetry.prometheus_address
    job = Job().start()
    alone = _rate(job, 2.0)
    threads_before = threading.active_count()
    procs = _scrapers(host, port, seconds)
    max_threads = threads_before
    started = time.monotonic()
    scraped_rates = []
    while any(p.poll() is None for p in procs):
        scraped_rates.append(_rate(job, 0.5))
        max_threads = max(max_threads, threading.active_count())
    elapsed = time.monotonic() - started
    result = _collect(procs, timeout=30)
    total = job.stop()
    assert result["n_failures"] == 0, result["failures"]
    assert result["backwards"] == []
    assert _final_count(telemetry.prometheus_url) == total  # exact: no measure() lost
    latencies = result["latencies"]
    # Threads: the job, the server, and at most one per scraper (plus pytest's own).
    assert max_threads <= threads_before + SCRAPERS + 2
    figures = {
        "scrapers": SCRAPERS,
        "seconds": round(elapsed, 1),
        "scrapes": len(latencies),
        "scrapes_per_s": round(len(latencies) / elapsed, 1),
        "latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "latency_p95_ms": round(_percentile(latencies, 0.95) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1),
        "job_ops_per_s_alone": round(alone),
        "job_ops_per_s_scraped": round(sorted(scraped_rates)[len(scraped_rates) // 2]),
        "threads_before": threads_before,
        "threads_max": max_threads,
    }
    print("\nprometheus-endpoint-load", json.dumps(figures))
    assert len(latencies) > SCRAPERS  # every scraper got answers, not one each


def test_fifty_scrapers_while_the_job_measures() -> None:
    _load(CI_LOAD_S)


@pytest.mark.soak
@pytest.mark.timeout(300)
def test_fifty_scrapers_while_the_job_measures_soak() -> None:
    _load(SOAK_LOAD_S)


def _thread_count_settles(limit: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while threading.active_count() > limit and time.monotonic() < deadline:
        time.sleep(0.05)
    return threading.active_count()


def test_stalled_clients_block_neither_scrapes_nor_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrape_server, "CONNECTION_TIMEOUT_S", 1.0)
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    assert telemetry.prometheus_url is not None
    address, url = telemetry.prometheus_address, telemetry.prometheus_url
    job = Job().start()
    baseline = threading.active_count()
    stalled = []
    for kind in ("mute", "half", "no-read"):
        for _ in range(10):
            sock = socket.create_connection(address)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            if kind == "half":
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n")  # no blank line
            elif kind == "no-read":
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            stalled.append(sock)
    try:
        before = job.count
        for _ in range(20):
            started = time.monotonic()
            assert get(url, timeout=5)[0] == 200
            assert time.monotonic() - started < 2.0
        assert threading.active_count() <= baseline + len(stalled) + 2
        assert job.count > before  # the job kept measuring
        # Stalled connections are dropped after the connection timeout: threads come back.
        assert _thread_count_settles(baseline, timeout=5.0) <= baseline
        assert get(url)[0] == 200
    finally:
        for sock in stalled:
            sock.close()
        job.stop()


def test_connections_beyond_the_limit_are_closed_not_threaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scrape_server, "MAX_CONNECTIONS", 4)
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    assert telemetry.prometheus_url is not None
    baseline = threading.active_count()
    mute = [socket.create_connection(telemetry.prometheus_address) for _ in range(30)]
    try:
        time.sleep(0.5)
        assert threading.active_count() <= baseline + 4
    finally:
        for sock in mute:
            sock.close()
    _thread_count_settles(baseline, timeout=5.0)
    assert get(telemetry.prometheus_url)[0] == 200


def _holds_socket(inode: int) -> bool:
    for fd in os.listdir("/proc/self/fd"):
        try:
            info = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if stat.S_ISSOCK(info.st_mode) and info.st_ino == inode:
            return True
    return False


def test_scrapes_go_on_while_the_process_forks() -> None:
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    assert telemetry.prometheus_url is not None
    host, port = telemetry.prometheus_address
    listener = telemetry._prometheus._server.socket  # type: ignore[union-attr]
    inode = os.fstat(listener.fileno()).st_ino
    job = Job().start()
    procs = _scrapers(host, port, 4.0, processes=1)
    statuses = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        pid = os.fork()
        if pid == 0:  # the child: exit 1 if it still holds the parent's listening socket
            os._exit(1 if _holds_socket(inode) else 0)
        statuses.append(os.waitpid(pid, 0)[1])
        time.sleep(0.02)
    result = _collect(procs, timeout=30)
    total = job.stop()
    assert statuses
    assert all(os.waitstatus_to_exitcode(s) == 0 for s in statuses)
    assert result["n_failures"] == 0, result["failures"]
    assert result["backwards"] == []
    assert len(result["latencies"]) > 25
    assert _final_count(telemetry.prometheus_url) == total
    print(f"\nforks={len(statuses)} scrapes={len(result['latencies'])}")


def test_a_scrape_racing_configure_is_answered_whole(caplog: pytest.LogCaptureFixture) -> None:
    """The port is bound before the provider exists and served after: no scrape in between
    reads an empty page or makes OpenTelemetry warn that its reader is not registered."""
    from jobmeter import testing

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers: list[bytes] = []
    stop = threading.Event()

    def scrape_without_pause() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                    connection.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                    answer = b""
                    while chunk := connection.recv(65536):
                        answer += chunk
                answers.append(answer)
            except OSError:
                time.sleep(0.0005)  # not bound yet, or between two configure()s

    scraper = threading.Thread(target=scrape_without_pause, daemon=True)
    scraper.start()
    try:
        for round_ in range(30):
            telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=port)
            assert telemetry.prometheus_address == ("127.0.0.1", port)
            ops = jobmeter.MetricsCollector("race")
            with ops.measure("op", {"round": round_}):
                pass
            deadline = time.monotonic() + 5
            while not any(f'round="{round_}"'.encode() in a for a in answers[-3:]):
                assert time.monotonic() < deadline, "no scrape saw this round"
                time.sleep(0.001)
            testing.reset()
    finally:
        stop.set()
        scraper.join(timeout=10)
    assert len(answers) > 30
    assert all(answer.startswith(b"HTTP/1.0 200 OK\r\n") for answer in answers)
    unregistered = [r for r in caplog.records if "until it is registered" in r.getMessage()]
    assert unregistered == []
