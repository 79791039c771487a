"""One endpoint per job: under `jobmeter run`, a job calling configure() shares the wrapper's port.

Real processes end to end: the CLI, a job that calls configure() with the same
settings as the wrapper, its forked workers (os.fork and multiprocessing), and a
real Prometheus scraping the one port and answering PromQL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _support.ports import free_port
from _support.prometheus import PrometheusServer, http_get

pytestmark = pytest.mark.prometheus

# The job: 3 "load" blocks, then 2 os.fork workers and 2 multiprocessing workers that measure
# 5 "work" blocks each and end (sys.exit, and multiprocessing's os._exit); then it waits.
JOB = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    import jobmeter

    telemetry = jobmeter.configure()
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(3):
        with ops.measure("load"):
            pass

    def work():
        for _ in range(5):
            with ops.measure("work"):
                pass

    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            work()
            sys.exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    workers = [multiprocessing.get_context("fork").Process(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    print(json.dumps({"url": telemetry.prometheus_url, "pid": os.getpid(),
                      "service": os.environ.get("OTEL_SERVICE_NAME")}), flush=True)
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline and not os.path.exists(sys.argv[2]):
        time.sleep(0.05)
    """
).replace("import multiprocessing,", "import json, multiprocessing,")


def _start_run(
    tmp_path: Path, port: int, name: str, *extra_env: tuple[str, str]
) -> subprocess.Popen[str]:
    env = {**os.environ, "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
           "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), **dict(extra_env)}  # fmt: skip
    env.pop("OTEL_SERVICE_NAME", None)
    env.pop("JOBMETER_SHARED_ENDPOINT", None)
    (tmp_path / name).mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--interval", "0.1", "--name", name,
         "--dir", str(tmp_path / name / "runs"), "--",
         sys.executable, "-c", JOB, "60", str(tmp_path / name / "stop")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _job_said(run: subprocess.Popen[str]) -> dict[str, object]:
    assert run.stdout is not None
    line = run.stdout.readline()
    assert line, run.stderr.read() if run.stderr else ""
    said: dict[str, object] = json.loads(line)
    return said


def _stop(tmp_path: Path, name: str, run: subprocess.Popen[str]) -> str:
    (tmp_path / name / "stop").touch()
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    return stderr


def test_one_scrape_shows_the_wrapper_the_job_and_its_forked_workers(tmp_path: Path) -> None:
    """Default settings but the port: the job joins; counts of 4 forked workers add up exactly."""
    port = free_port()
    run = _start_run(tmp_path, port, "etl")
    try:
        said = _job_said(run)
        assert said["url"] == f"http://127.0.0.1:{port}/metrics"  # the wrapper's, not its own
        assert said["service"] == "etl"  # the run's name is the service name
        with PrometheusServer(tmp_path, [f"127.0.0.1:{port}"], scrape_interval="1s") as prom:
            work = prom.wait_for(
                'jobmeter_operation_duration_seconds_count{operation_name="work"}',
                lambda samples: len(samples) == 4,
            )
            assert [value for _, value in work] == [5.0] * 4
            worker_pids = {labels["process_pid"] for labels, _ in work}
            assert str(said["pid"]) not in worker_pids
            total = prom.query(
                'sum(jobmeter_operation_duration_seconds_count{operation_name="work"})'
            )
            assert total == [({}, 20.0)]
            [(load_labels, load)] = prom.query(
                'jobmeter_operation_duration_seconds_count{operation_name="load"}'
            )
            assert load == 3.0
            assert load_labels["process_pid"] == str(said["pid"])
            # The wrapper's own figures, on the same target, told apart by their process.
            [(wrapper_labels, _)] = prom.wait_for(
                "jobmeter_run_process_count", lambda samples: len(samples) == 1
            )
            assert wrapper_labels["process_pid"] == str(run.pid)
            assert wrapper_labels["instance"] == load_labels["instance"] == f"127.0.0.1:{port}"
            # One target_info per process, each naming its own service and instance.
            infos = prom.query("target_info")
            assert {labels["process_pid"] for labels, _ in infos} == {
                str(run.pid),
                str(said["pid"]),
                *worker_pids,
            }
            assert {labels["service_name"] for labels, _ in infos} == {"etl"}
            assert len({labels["service_instance_id"] for labels, _ in infos}) == 6
            up = prom.query('up{job="jobmeter"}')
            assert [value for _, value in up] == [1.0]
    finally:
        stderr = _stop(tmp_path, "etl", run)
    assert "Traceback" not in stderr
    assert "cannot listen" not in stderr


def test_two_runs_on_one_port_setting_each_serve_their_own_job(tmp_path: Path) -> None:
    """The second run warns once and serves the next port; each job joins its own wrapper."""
    port = free_port()
    first = _start_run(tmp_path, port, "first")
    first_said = _job_said(first)
    second = _start_run(tmp_path, port, "second")
    try:
        second_said = _job_said(second)
        assert first_said["url"] == f"http://127.0.0.1:{port}/metrics"
        second_url = str(second_said["url"])
        assert second_url != first_said["url"]
        for url, name in ((first_said["url"], "first"), (second_url, "second")):
            page = http_get(str(url)).decode()
            services = set(re.findall(r'service_name="([^"]+)"', page))
            assert services == {name}
            loads = re.findall(
                r'jobmeter_operation_duration_seconds_count\{operation_name="load"[^}]*\} (\S+)',
                page,
            )
            assert loads == ["3.0"]
    finally:
        first_stderr = _stop(tmp_path, "first", first)
        second_stderr = _stop(tmp_path, "second", second)
    assert "listens on" not in first_stderr
    warnings = [line for line in second_stderr.splitlines() if "listens on" in line]
    assert len(warnings) == 1, second_stderr
    assert f"OTEL_EXPORTER_PROMETHEUS_PORT={port} is invalid" in warnings[0]
    assert f"serving on {second_url} instead" in warnings[0]


def test_a_port_held_by_another_program_does_not_stop_a_plain_job(tmp_path: Path) -> None:
    """Lenient: the job serves the next port and exits 0; strict: it fails at configure()."""
    import socket

    script = "import jobmeter; t = jobmeter.configure(); print(t.prometheus_url)"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**os.environ, "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
               "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)}  # fmt: skip
        env.pop("JOBMETER_SHARED_ENDPOINT", None)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        served = done.stdout.strip()
        assert served.startswith("http://127.0.0.1:")
        assert served != f"http://127.0.0.1:{port}/metrics"
        assert done.stderr.count("listens on") == 1
        strict_env = {**env, "JOBMETER_STRICT": "true"}
        strict = subprocess.run([sys.executable, "-c", script], env=strict_env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert strict.returncode == 1
    assert "ConfigurationError: OTEL_EXPORTER_PROMETHEUS_PORT" in strict.stderr
    assert "Address already in use" in strict.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OTEL_EXPORTER_PROMETHEUS_PORT", "abc"), ("JOBMETER_PUSHGATEWAY_URL", "gateway:9091")],
)
def test_strict_jobmeter_run_stops_before_the_command_with_one_line(
    tmp_path: Path, variable: str, value: str
) -> None:
    marker = tmp_path / "ran"
    env = {**os.environ, "OTEL_EXPORTER_PROMETHEUS_PORT": "0", variable: value}
    command = [sys.executable, "-m", "jobmeter", "run", "-q", "--dir", str(tmp_path / "runs"),
               "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]  # fmt: skip
    lenient = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert lenient.returncode == 0, lenient.stderr
    assert marker.exists()
    assert lenient.stderr.count(f"{variable}={value!r} is invalid") == 1
    marker.unlink()
    strict = subprocess.run(command, env={**env, "JOBMETER_STRICT": "true"}, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert strict.returncode == 2
    assert not marker.exists()
    assert strict.stderr.startswith(f"jobmeter: {variable}={value!r} is invalid")
    assert "Traceback" not in strict.stderr


def test_pages_merge_by_family_and_a_type_conflict_is_left_out() -> None:
    from jobmeter._core.shared_endpoint import merge_pages

    first = (
        '# HELP x_total Things.\n# TYPE x_total counter\nx_total{process_pid="1"} 1.0\n'
        '# HELP h Seconds.\n# TYPE h histogram\nh_bucket{le="+Inf"} 1.0\nh_count 1.0\nh_sum 0.5\n'
    )
    second = (
        '# HELP x_total Things.\n# TYPE x_total counter\nx_total{process_pid="2"} 2.0\n'
        "# HELP y Now.\n# TYPE y gauge\ny 3.0\n# HELP h Other.\n# TYPE h gauge\nh 9.0\n"
    )
    assert merge_pages([first, second]).splitlines() == [
        "# HELP x_total Things.", "# TYPE x_total counter",
        'x_total{process_pid="1"} 1.0', 'x_total{process_pid="2"} 2.0',
        "# HELP h Seconds.", "# TYPE h histogram",
        'h_bucket{le="+Inf"} 1.0', "h_count 1.0", "h_sum 0.5",
        "# HELP y Now.", "# TYPE y gauge", "y 3.0",
    ]  # fmt: skip


def test_a_member_that_does_not_answer_is_served_as_last_read(tmp_path: Path) -> None:
    """A stopped job (SIGSTOP) holds no scrape for long: its last answer is served."""
    import signal

    from jobmeter import testing
    from jobmeter._core import shared_endpoint
    from jobmeter._core.sdk import configure_host

    telemetry = configure_host(prometheus_host="127.0.0.1", prometheus_port=0)
    url = telemetry.prometheus_url
    assert url is not None
    env = {**os.environ, **telemetry.shared_environment}
    env.update({"OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT": "0"})
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, "60", str(tmp_path / "stop")],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        said = _job_said(job)
        assert said["url"] == url
        pattern = r'operation_name="load"[^}]*\} 3\.0'
        assert re.search(pattern, http_get(url).decode())
        os.kill(job.pid, signal.SIGSTOP)
        try:
            page = http_get(url, timeout=shared_endpoint.MEMBER_TIMEOUT_S * 5).decode()
        finally:
            os.kill(job.pid, signal.SIGCONT)
        assert re.search(pattern, page)
        assert page.count('operation_name="work"') >= 4  # the ended workers' last words
    finally:
        (tmp_path / "stop").touch()
        job.wait(timeout=60)
        testing.reset()
