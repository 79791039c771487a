"""Under `jobmeter run`, the job's prometheus_client metrics are on the wrapper's page too.

A real `jobmeter run` wraps a job that keeps a prometheus_client counter on its
default REGISTRY and calls configure(): the job joins the wrapper's endpoint,
and a real Prometheus scraping the wrapper's port answers the counter's known
value, labelled with the job's process. Families that take a name of
jobmeter's, the job's own or the wrapper's, are left out with one warning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _support.ports import free_port
from _support.prometheus import PrometheusServer, http_get
from jobmeter._core.family_names import ClashError
from jobmeter._core.shared_endpoint import merge_pages

DURATION = "jobmeter_operation_duration_seconds"
# The job: its own counter (book 7), a gauge named as the wrapper's process count and a
# counter named as its own duration histogram; 3 "load" blocks; then it waits.
JOB = textwrap.dedent(
    """
    import json, os, sys, time
    import prometheus_client
    import jobmeter

    orders = prometheus_client.Counter("shop_orders", "Orders taken.", ["kind"])
    for _ in range(7):
        orders.labels("book").inc()
    prometheus_client.Gauge("jobmeter_run_process_count", "Not the wrapper's.").set(42)
    prometheus_client.Counter("jobmeter_operation_duration_seconds", "Not jobmeter's.").inc(99)
    telemetry = jobmeter.configure()
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(3):
        with ops.measure("load"):
            pass
    print(json.dumps({"url": telemetry.prometheus_url, "pid": os.getpid()}), flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    """
)


def _start_run(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    environ = {**os.environ, "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
               "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), **env}  # fmt: skip
    environ.pop("JOBMETER_SHARED_ENDPOINT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--interval", "0.1", "--name", "shop",
         "--dir", str(tmp_path / "runs"), "--", sys.executable, "-c", JOB, str(tmp_path / "stop")],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _job_said(run: subprocess.Popen[str]) -> dict[str, object]:
    assert run.stdout is not None
    line = run.stdout.readline()
    assert line, run.stderr.read() if run.stderr else ""
    said: dict[str, object] = json.loads(line)
    return said


def _stop(tmp_path: Path, run: subprocess.Popen[str]) -> str:
    (tmp_path / "stop").touch()
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    return stderr


@pytest.mark.prometheus
def test_the_jobs_counter_is_on_the_wrappers_page_labelled_with_its_process(
    tmp_path: Path,
) -> None:
    port = free_port()
    run = _start_run(tmp_path, port)
    try:
        said = _job_said(run)
        assert said["url"] == f"http://127.0.0.1:{port}/metrics"  # it joined the wrapper
        with PrometheusServer(tmp_path, [f"127.0.0.1:{port}"], scrape_interval="1s") as prom:
            [(labels, orders)] = prom.wait_for("shop_orders_total", lambda found: len(found) == 1)
            assert orders == 7.0
            assert labels["kind"] == "book"
            assert labels["process_pid"] == str(said["pid"])
            [(info, _)] = prom.query(f'target_info{{process_pid="{said["pid"]}"}}')
            assert labels["service_instance_id"] == info["service_instance_id"]
            [(_, load)] = prom.query(f'{DURATION}_count{{operation_name="load"}}')
            assert load == 3.0
            # The wrapper's process count alone: the job's gauge of that name is left out.
            [(wrapper, count)] = prom.wait_for(
                "jobmeter_run_process_count", lambda found: len(found) == 1
            )
            assert wrapper["process_pid"] == str(run.pid)
            assert count != 42.0
            assert prom.query(f"{DURATION}_total") == []
            [target] = prom.targets()
            assert target["health"] == "up", target["lastError"]
        page = http_get(f"http://127.0.0.1:{port}/metrics").decode()
        assert page.count("# TYPE jobmeter_run_process_count ") == 1
        assert page.count(f"# TYPE {DURATION} ") == 1
        assert "# jobmeter:" not in page  # the marks between processes stay between them
    finally:
        stderr = _stop(tmp_path, run)
    assert "Traceback" not in stderr
    # One warning each, from the process that found it: the job its own, the wrapper the other.
    assert stderr.count(f"registry's counter {DURATION} takes a name of jobmeter's histogram") == 1
    assert stderr.count("registry's gauge jobmeter_run_process_count takes a name of") == 1


def test_strict_a_clash_in_the_job_fails_the_wrappers_scrape(tmp_path: Path) -> None:
    port = free_port()
    run = _start_run(tmp_path, port, JOBMETER_STRICT="true")
    try:
        _job_said(run)
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):  # until the wrapper's telemetry is up and has read the job
            body = http_get(url).decode()
            if "is invalid" in body:
                break
        assert body.startswith("JOBMETER_PROMETHEUS_DEFAULT_REGISTRY='true' is invalid: the "
                               "default prometheus_client registry's")  # fmt: skip
        assert "jobmeter_run_process_count" in body or DURATION in body
    finally:
        stderr = _stop(tmp_path, run)
    assert "Traceback" not in stderr


def _family(name: str, kind: str, help_text: str, pid: int, value: float) -> str:
    return (
        f'# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name}{{process_pid="{pid}"}} {value}\n'
    )


def test_a_default_family_with_another_pages_jobmeter_name_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The merge knows each process's default-registry families by the mark before them."""
    host = _family("up_count", "gauge", "Jobs.", 1, 1.0)
    member = (
        _family("load_total", "counter", "Loads.", 2, 3.0)
        + "# jobmeter: default registry\n"
        + _family("up_count", "gauge", "Mine.", 2, 42.0)
        + _family("orders_total", "counter", "Orders.", 2, 7.0)
        + _family("orders_created", "gauge", "Orders.", 2, 1.0)
    )
    other = (  # a second member's default counter whose name is the first member's counter
        "# jobmeter: default registry\n"
        + _family("load_total", "counter", "Mine.", 3, 5.0)
        + _family("load_created", "gauge", "Mine.", 3, 1.0)
        + _family("orders_total", "counter", "Orders.", 3, 1.0)
    )
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        merged = merge_pages([host, member, other])
    assert merged.splitlines() == [
        "# HELP up_count Jobs.", "# TYPE up_count gauge", 'up_count{process_pid="1"} 1.0',
        "# HELP load_total Loads.", "# TYPE load_total counter", 'load_total{process_pid="2"} 3.0',
        "# HELP orders_total Orders.", "# TYPE orders_total counter",
        'orders_total{process_pid="2"} 7.0', 'orders_total{process_pid="3"} 1.0',
        "# HELP orders_created Orders.", "# TYPE orders_created gauge",
        'orders_created{process_pid="2"} 1.0',
    ]  # fmt: skip
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "registry's gauge up_count takes a name of jobmeter's gauge up_count" in warned[0]
    assert "registry's counter load takes a name of jobmeter's counter load" in warned[1]
    with pytest.raises(ClashError, match="registry's gauge up_count"):
        merge_pages([host, member], strict=True)
    clash = "# jobmeter: clash true the default prometheus_client registry's gauge x takes a\n"
    with pytest.raises(ClashError, match=re.escape("REGISTRY='true' is invalid: the default")):
        merge_pages([host, clash])
