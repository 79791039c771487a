"""The wrapper's telemetry comes up after its command starts, and nothing measured is lost.

``jobmeter run`` binds its endpoint's port before the command starts and loads
the OpenTelemetry SDK only once the command has run for a moment
(``run/_telemetry.py``). A command that ends before then still has its final
figures exported where an exporter pushes (OTLP here, to a real receiver), and
with a pull exporter alone the SDK is never loaded and the port and shared
directory are given back. A longer command is served on the reserved port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _support.otlp_receiver import OtlpReceiver
from _support.ports import free_port

# The real entry point; at exit, whether the SDK was ever loaded and what the run was told.
WRAPPER = """
import atexit, json, os, sys
report = sys.argv[1]
def note():
    loaded = "opentelemetry.sdk.metrics" in sys.modules
    json.dump({"sdk_loaded": loaded}, open(report, "w"))
atexit.register(note)
sys.argv = ["jobmeter", "run", "-q", "--", *sys.argv[2:]]
from jobmeter.cli import main
main()
"""


def _wrap(tmp_path: Path, command: list[str], **env: str) -> tuple[int, dict[str, bool], str]:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(report), *command],
        env={**os.environ, "JOBMETER_RUN_DIR": str(tmp_path / "runs"), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(report.read_text()), done.stderr


def _summary(tmp_path: Path) -> dict[str, float]:
    (run,) = (tmp_path / "runs").iterdir()
    summary: dict[str, float] = json.loads((run / "run.json").read_text())["summary"]
    return summary


def test_a_command_that_ends_at_once_still_exports_its_final_figures(tmp_path: Path) -> None:
    work = "x = sum(i * i for i in range(2_000_000))"  # some CPU time, in well under 0.2 s
    with OtlpReceiver() as receiver:
        code, report, stderr = _wrap(
            tmp_path, [sys.executable, "-c", work],
            OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=receiver.http_endpoint,
        )  # fmt: skip
        assert code == 0, stderr
        assert report["sdk_loaded"]  # brought up at the end, for the final export
        cpu = receiver.points("jobmeter.run.cpu.time")
    summary = _summary(tmp_path)
    user = [p.value for p in cpu if p.attributes["cpu.mode"] == "user"]
    assert user
    assert user[-1] == pytest.approx(summary["cpu_user_seconds"])
    assert summary["cpu_user_seconds"] > 0


def test_a_short_command_with_a_pull_exporter_loads_no_sdk_and_gives_the_port_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    shared_root = tmp_path / "tmp"
    shared_root.mkdir()
    code, report, stderr = _wrap(
        tmp_path, ["true"], OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port), TMPDIR=str(shared_root),
    )  # fmt: skip
    assert code == 0, stderr
    assert not report["sdk_loaded"]
    assert list(shared_root.iterdir()) == []  # the shared directory was removed
    with socket.create_server(("127.0.0.1", port)):  # the port is free again: bound at once
        pass
    assert _summary(tmp_path)["samples"] >= 1


def test_a_longer_command_is_served_on_the_port_it_was_told(tmp_path: Path) -> None:
    """The command reads its endpoint's address from the shared directory; the wrapper serves it."""
    port = free_port()
    probe = (
        "import json, os, sys, time, urllib.request\n"
        "shared = os.environ['JOBMETER_SHARED_ENDPOINT']\n"
        "url = json.load(open(os.path.join(shared, 'endpoint.json')))['url']\n"
        "for _ in range(100):\n"
        "    page = urllib.request.urlopen(url, timeout=10).read().decode()\n"
        "    if 'jobmeter_run_process_count' in page:\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "json.dump({'url': url, 'page': page}, open(sys.argv[1], 'w'))\n"
    )
    seen = tmp_path / "seen.json"
    code, report, stderr = _wrap(
        tmp_path, [sys.executable, "-c", probe, str(seen)],
        OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )  # fmt: skip
    assert code == 0, stderr
    assert report["sdk_loaded"]
    answer = json.loads(seen.read_text())
    assert answer["url"] == f"http://127.0.0.1:{port}/metrics"
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in answer["page"].splitlines()
        if line.startswith("jobmeter_run_process_count")
    ]
    assert counts == [1.0]  # the probe itself, seen by the wrapper's sampler


@pytest.mark.parametrize("when", ["serving", "just started", "never started"])
def test_the_endpoint_closes_whenever_it_is_closed(when: str) -> None:
    """close() wakes the serving loop (it does not poll) and returns once the loop has ended."""
    from jobmeter._core.prometheus import PrometheusEndpoint

    endpoint = PrometheusEndpoint("127.0.0.1", 0)
    url = endpoint.url
    if when != "never started":
        endpoint.start()
    if when == "serving":
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
    thread = endpoint._thread
    endpoint.close()
    assert thread is None or not thread.is_alive()
    with pytest.raises(urllib.error.URLError, match="refused"):  # nobody listens any more
        urllib.request.urlopen(url, timeout=10)
