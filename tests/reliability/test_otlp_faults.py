"""A bad OTLP collector never breaks, blocks or slows the job beyond the documented bound.

The job is a subprocess that calls ``configure(exporters="otlp")``, measures
twenty blocks, prints its result and exits. Against each fault, over gRPC and
HTTP/protobuf: its output and exit status are those it would have without
jobmeter, it exits within ``OTEL_METRIC_EXPORT_TIMEOUT`` plus a margin after
its last line (docs/configuration.md, "Shutdown is bounded": the budget plus
0.5 s; the margin covers interpreter teardown on a loaded machine), and
stderr says what happened. Each test prints its measured figures
(``FIGURE ...`` lines, shown with ``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.hanging_server import HangingTcpServer
from _support.otlp_receiver import OtlpReceiver
from _support.ports import free_port, refused_endpoint_port
from reliability._otlp_faults import (
    RawServer,
    ReceiverOnPort,
    SlowReceiver,
    otlp_env,
    run_job,
    self_signed_context,
)

EXPORT_TIMEOUT_MS = 1500
MARGIN_S = 3.0  # interpreter start-up is not counted; teardown on a busy 2-core machine is
BOUND_S = EXPORT_TIMEOUT_MS / 1000 + MARGIN_S
BLOCKS = 20
RESULT = BLOCKS * sum(range(10_000))
PROTOCOLS = ["grpc", "http/protobuf"]
CANNOT_EXPORT = "jobmeter: cannot export metrics to"
LOST = "was lost at shutdown"


def _endpoint(protocol: str, scheme: str, port: int) -> str:
    path = "" if protocol == "grpc" else "/v1/metrics"
    return f"{scheme}://127.0.0.1:{port}{path}"


def _receiver_endpoint(receiver: OtlpReceiver, protocol: str) -> str:
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint


def _figure(case: str, protocol: str, **figures: object) -> None:
    shown = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\nFIGURE case={case} protocol={protocol} {shown}")


@contextlib.contextmanager
def _faulty(case: str, protocol: str, tmp_path: Path) -> Iterator[str]:
    """The endpoint of a collector that fails in the way ``case`` names."""
    if case == "refusing":
        yield _endpoint(protocol, "http", refused_endpoint_port())
    elif case == "hanging":
        with HangingTcpServer() as hanging:
            yield _endpoint(protocol, "http", hanging.port)
    elif case == "slower-than-timeout":
        with SlowReceiver(delay=EXPORT_TIMEOUT_MS / 1000 + 2.0) as slow:
            yield _receiver_endpoint(slow, protocol)
    elif case == "unavailable":
        with OtlpReceiver(mode="unavailable") as receiver:
            yield _receiver_endpoint(receiver, protocol)
    elif case == "garbage":
        with RawServer(reply=b"\x00\xffnot a protocol anyone speaks\r\n\r\n" * 4) as raw:
            yield _endpoint(protocol, "http", raw.port)
    elif case == "https-to-plain":
        with OtlpReceiver() as receiver:
            port = receiver.grpc_port if protocol == "grpc" else receiver.http_port
            yield _endpoint(protocol, "https", port)
    elif case == "http-to-tls":
        with RawServer(tls=self_signed_context(tmp_path)) as tls:
            yield _endpoint(protocol, "http", tls.port)
    elif case == "https-untrusted-cert":
        with RawServer(tls=self_signed_context(tmp_path)) as tls:
            yield _endpoint(protocol, "https", tls.port)
    else:
        raise AssertionError(case)


NO_ANSWER = f"no answer within {EXPORT_TIMEOUT_MS} ms"
# What the warning at shutdown says, per fault and protocol (a regular expression).
FAULTS = {
    "refusing": {"grpc": "Connection refused", "http/protobuf": "Connection refused"},
    "hanging": {"grpc": NO_ANSWER, "http/protobuf": NO_ANSWER},
    "slower-than-timeout": {"grpc": NO_ANSWER, "http/protobuf": NO_ANSWER},
    "unavailable": {"grpc": "UNAVAILABLE", "http/protobuf": "Service Unavailable"},
    "garbage": {"grpc": "Failed parsing HTTP/2", "http/protobuf": "illegal status line"},
    "https-to-plain": {"grpc": "WRONG_VERSION_NUMBER", "http/protobuf": "WRONG_VERSION_NUMBER"},
    "http-to-tls": {
        "grpc": "reset by peer|closed|Socket closed",
        "http/protobuf": "reset by peer|closed connection|aborted",
    },
    "https-untrusted-cert": {
        "grpc": "CERTIFICATE_VERIFY_FAILED",
        "http/protobuf": "CERTIFICATE_VERIFY_FAILED",
    },
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", FAULTS)
def test_a_failing_collector_leaves_result_and_exit_alone(
    case: str, protocol: str, tmp_path: Path
) -> None:
    """Same output, same exit status, exit within the export timeout, and a warning."""
    with _faulty(case, protocol, tmp_path) as endpoint:
        env = otlp_env(
            protocol,
            endpoint,
            OTEL_METRIC_EXPORT_TIMEOUT=str(EXPORT_TIMEOUT_MS),
            OTEL_METRIC_EXPORT_INTERVAL="100",  # exports fail while the job works, too
            JOB_BLOCKS=str(BLOCKS),
            JOB_EXIT="3",
        )
        job = run_job(env)
    _figure(case, protocol, exit_s=round(job.exit_seconds, 2), work_s=job.work_seconds)
    assert job.returncode == 3, job.stderr
    assert job.result == RESULT
    # 20 blocks of 10 ms: a measure() that waited on the exporter would take seconds.
    assert job.work_seconds < 2.0, job.stderr
    assert job.exit_seconds < BOUND_S, job.stderr
    lost = [line for line in job.stderr.splitlines() if LOST in line]
    assert len(lost) == 1, job.stderr
    assert re.search(FAULTS[case][protocol], lost[0]), job.stderr  # it says why
    assert "Traceback" not in job.stderr, job.stderr


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_collector_a_little_faster_than_the_timeout_gets_the_last_data(protocol: str) -> None:
    """An answer that comes before the export timeout is waited for, not given up."""
    with SlowReceiver(delay=EXPORT_TIMEOUT_MS / 1000 * 2 / 3) as slow:
        env = otlp_env(
            protocol,
            _receiver_endpoint(slow, protocol),
            OTEL_METRIC_EXPORT_TIMEOUT=str(EXPORT_TIMEOUT_MS),
            OTEL_METRIC_EXPORT_INTERVAL="600000",  # only the final export
            JOB_BLOCKS=str(BLOCKS),
        )
        job = run_job(env)
        points = slow.points("jobmeter.operation.duration")
    _figure("slightly-faster-than-timeout", protocol, exit_s=round(job.exit_seconds, 2))
    assert job.returncode == 0, job.stderr
    assert job.result == RESULT
    assert job.exit_seconds < BOUND_S, job.stderr
    assert "jobmeter:" not in job.stderr, job.stderr
    assert [point.count for point in points] == [BLOCKS]


RECOVERING_JOB = textwrap.dedent(
    """
    import sys, time, jobmeter
    telemetry = jobmeter.configure(exporters="otlp")
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(10):
        with ops.measure("while_down"):
            pass
    exporter = telemetry._push[0][0]
    while exporter.failures < 3:  # several failed exports
        time.sleep(0.05)
    print("DOWN", exporter.failures, flush=True)
    sys.stdin.readline()  # the collector is up again
    for _ in range(5):
        with ops.measure("while_up"):
            pass
    deadline = time.monotonic() + 30
    while not exporter.last_ok and time.monotonic() < deadline:
        time.sleep(0.05)
    print("RESULT", 0, 0, flush=True)
    print("EXITING", time.time(), flush=True)
    """
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_data_measured_while_the_collector_was_down_arrives_when_it_is_back(
    protocol: str,
) -> None:
    """Cumulative temporality (the default): the next export after the outage carries it all.

    docs/configuration.md: a failed export is retried at every interval; the
    cumulative aggregates still hold what was measured during the outage.
    """
    grpc_port, http_port = free_port(), free_port()
    port = grpc_port if protocol == "grpc" else http_port
    env = otlp_env(
        protocol,
        _endpoint(protocol, "http", port),
        OTEL_METRIC_EXPORT_TIMEOUT=str(EXPORT_TIMEOUT_MS),
        OTEL_EXPORTER_OTLP_TIMEOUT="500",
        OTEL_METRIC_EXPORT_INTERVAL="200",
    )
    process = subprocess.Popen(
        [sys.executable, "-c", RECOVERING_JOB], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        down = process.stdout.readline().split()
        assert down[:1] == ["DOWN"], process.stderr and process.stderr.read()
        with ReceiverOnPort(grpc_port, http_port) as receiver:
            came_back = time.monotonic()
            process.stdin.write("\n")
            process.stdin.flush()
            assert process.stdout.readline().startswith("RESULT")
            recovered_s = time.monotonic() - came_back
            process.stdout.readline()
            process.wait(timeout=30)
            stderr = process.stderr.read() if process.stderr else ""
            points = receiver.points("jobmeter.operation.duration")
    finally:
        process.kill()
    by_name: dict[object, list[int | None]] = {}
    for point in points:
        by_name.setdefault(point.attributes["operation.name"], []).append(point.count)
    _figure(
        "refusing-then-back",
        protocol,
        failed_exports=down[1],
        recovered_s=round(recovered_s, 2),
        while_down=by_name.get("while_down", [None])[-1],
        while_up=by_name.get("while_up", [None])[-1],
        requests=receiver.request_count,
    )
    assert process.returncode == 0, stderr
    assert CANNOT_EXPORT in stderr, stderr
    assert "works again" in stderr, stderr
    # Cumulative: the last point of each series holds every block, down or up.
    assert by_name["while_down"][-1] == 10, by_name
    assert by_name["while_up"][-1] == 5, by_name
    assert LOST not in stderr, stderr


MEMORY_JOB = textwrap.dedent(
    """
    import sys, time, jobmeter
    telemetry = jobmeter.configure(exporters="otlp")
    ops = jobmeter.MetricsCollector("etl")
    exporter = telemetry._push[0][0]

    def rss_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

    def work_until(failures):
        while exporter.failures < failures:
            with ops.measure("work", {"step": str(exporter.failures % 5)}):
                time.sleep(0.002)

    work_until(20)  # warm-up: connections, caches, the first warning
    before = rss_kib()
    started = time.monotonic()
    work_until(220)
    after = rss_kib()
    print("MEMORY", before, after, exporter.failures, round(time.monotonic() - started, 1))
    print("RESULT", 0, 0, flush=True)
    print("EXITING", time.time(), flush=True)
    """
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_memory_stays_bounded_over_many_failed_exports(protocol: str) -> None:
    """Two hundred failed export cycles: nothing piles up (RSS grows by under 4 MiB)."""
    env = otlp_env(
        protocol,
        _endpoint(protocol, "http", refused_endpoint_port()),
        OTEL_METRIC_EXPORT_TIMEOUT="1000",
        OTEL_EXPORTER_OTLP_TIMEOUT="200",  # a refused export gives up without back-off
        OTEL_METRIC_EXPORT_INTERVAL="10",
    )
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_JOB], env=env, capture_output=True, text=True, timeout=110
    )
    memory = next(line for line in done.stdout.splitlines() if line.startswith("MEMORY"))
    before, after, failures = (int(x) for x in memory.split()[1:4])
    _figure(
        "memory-200-failed-exports",
        protocol,
        rss_before_kib=before,
        rss_after_kib=after,
        growth_kib=after - before,
        failed_exports=failures - 20,
        seconds=memory.split()[4],
    )
    assert done.returncode == 0, done.stderr
    # One warning per outage, not one per failed export (the SDK logs each one).
    assert done.stderr.count(CANNOT_EXPORT) == 1, done.stderr
    assert len(done.stderr.splitlines()) < 10, done.stderr
    assert after - before < 4 * 1024, memory
