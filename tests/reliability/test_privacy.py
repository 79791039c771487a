"""Privacy: no SQL literal, command-line argument or environment value leaves the job.

Every check scans what a user could read or what leaves the process: the
Prometheus exposition, every file of the run directory (Parquet decoded too),
the Pushgateway's copy and the logs. Each scan also finds a marker that must be
there, so a scan that reads nothing cannot pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

import jobmeter
from jobmeter import testing
from jobmeter.duckdb import connect as profiled_connect


def _run_text(directory: Path) -> str:
    """Every file of a run directory as text; Parquet files as their decoded rows."""
    parts = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            rows = duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
            parts.append(repr(rows))
        parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


# -- SQL literals -------------------------------------------------------------------------------


def _queries(rng: random.Random, count: int) -> tuple[list[str], list[str]]:
    """Queries with random literals in every place a literal goes; the literals apart."""
    literals: list[str] = []

    def word() -> str:
        value = f"lit{secrets.token_hex(6)}"
        literals.append(value)
        return value

    def number() -> str:
        value = str(rng.randrange(10**11, 10**12))  # 12 digits: never a timing by chance
        literals.append(value)
        return value

    shapes = [
        lambda: f"SELECT * FROM t WHERE name = '{word()}'",
        lambda: f"SELECT * FROM t WHERE id = {number()} OR name LIKE '%{word()}%'",
        lambda: f"SELECT * FROM t WHERE id IN ({number()}, {number()}, {number()})",
        lambda: f"SELECT '{word()}' AS a, {number()}.5 AS b, E'{word()}\\n' AS c",
        lambda: f"SELECT $${word()}$$ AS d, $tag${word()}$tag$ AS e",
        lambda: f"SELECT x'{secrets.token_hex(4)}{number()}' AS f",
        lambda: f"INSERT INTO t VALUES ({number()}, '{word()}')",
        lambda: f"UPDATE t SET name = '{word()}''{word()}' WHERE id = -{number()}",
        lambda: f"SELECT 1 -- {word()}\n",
        lambda: f"SELECT /* {word()} */ 2",
        lambda: f"SELECT * FROM t WHERE missing_column = '{word()}'",  # fails: an error path
        lambda: f"SELECT {number()}::BIGINT + {number()}e2 AS g",
    ]
    return [rng.choice(shapes)() for _ in range(count)], literals


def test_sql_literals_never_reach_metrics_or_the_run_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    queries, literals = _queries(random.Random(), 300)
    telemetry = jobmeter.configure(prometheus_port=0, prometheus_host="127.0.0.1")
    url = telemetry.prometheus_url
    assert url is not None
    with jobmeter.Run("sql", directory=tmp_path / "runs", interval=0.2) as run:
        con = profiled_connect()
        con.execute("CREATE TABLE t (id BIGINT, name VARCHAR)")
        failed = 0
        for query in queries:
            try:
                con.execute(query).fetchall()
            except duckdb.Error:
                failed += 1
        exposition = _get(url)
    testing.reset()
    assert run.directory is not None
    stored = _run_text(run.directory)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert failed > 0
    # The summaries are exported and the masked shapes stored: the scans read real text.
    assert 'db_query_summary="SELECT t"' in exposition
    assert "WHERE name = ?" in stored
    for literal in literals:
        assert literal not in exposition, literal
        assert literal not in stored, literal
        assert literal not in logged, literal


# -- command line and environment ---------------------------------------------------------------

JOB = """
import json, sys, time, urllib.request
import jobmeter
telemetry = jobmeter.configure(prometheus_port=0, prometheus_host="127.0.0.1")
ops = jobmeter.MetricsCollector("job")
with jobmeter.Run("inner"):
    with ops.measure("visible_marker", {"table": "orders"}):
        time.sleep(0.3)
    try:
        with ops.measure("fails"):
            raise KeyError("boom")
    except KeyError:
        pass
with open(sys.argv[1], "w") as out:
    out.write(urllib.request.urlopen(telemetry.prometheus_url, timeout=5).read().decode())
time.sleep(1.5)  # the test scrapes the wrapper meanwhile
"""


def _wrapper_env(tmp_path: Path, port: int, secrets_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))}
    env.update(secrets_env)
    env.update(JOBMETER_RUN_DIR=str(tmp_path / "runs"),
               OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
               OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1")  # fmt: skip
    return env


def _scrape_until_done(process: subprocess.Popen[str], url: str) -> str:
    """The wrapper's exposition, the last one read before the run ended."""
    text = ""
    while process.poll() is None:
        with contextlib.suppress(OSError):
            text = _get(url)
        time.sleep(0.2)
    return text


def test_arguments_and_environment_values_never_leave_the_job(tmp_path: Path) -> None:
    from _support.ports import free_port

    token = f"tok-{secrets.token_hex(8)}"
    password = f"pw-{secrets.token_hex(8)}"
    header = f"hdr-{secrets.token_hex(8)}"
    argument = f"SECRET_ARG-{secrets.token_hex(8)}"
    code_secret = f"CODE_SECRET_{secrets.token_hex(8)}"
    secrets_env = {
        "MY_TOKEN": token,
        "DB_PASSWORD": password,
        # A variable jobmeter reads itself: a credential for OTLP, unused with Prometheus.
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{header}",
    }
    port = free_port()
    gateway = None
    if shutil.which("prometheus-pushgateway"):
        from _support.pushgateway import Pushgateway

        gateway = Pushgateway(tmp_path)
        gateway.__enter__()
    try:
        env = _wrapper_env(tmp_path, port, secrets_env)
        if gateway is not None:
            env["JOBMETER_PUSHGATEWAY_URL"] = gateway.url
        inner_metrics = tmp_path / "inner-metrics.txt"
        code = JOB + f"# {code_secret}\n"
        wrapper = subprocess.Popen(
            [sys.executable, "-m", "jobmeter", "run", "--interval", "0.1", "--name", "privacy",
             "--", sys.executable, "-c", code, str(inner_metrics), argument],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wrapper_metrics = _scrape_until_done(wrapper, f"http://127.0.0.1:{port}/metrics")
        stdout, stderr = wrapper.communicate(timeout=60)
        assert wrapper.returncode == 0, stderr
        pushed = gateway.metrics_text() if gateway is not None else ""
    finally:
        if gateway is not None:
            gateway.__exit__(None, None, None)
    (run,) = (tmp_path / "runs").iterdir()
    stored = _run_text(run)
    inner = inner_metrics.read_text()
    places = {
        "run directory": stored,
        "job's /metrics": inner,
        "wrapper's /metrics": wrapper_metrics,
        "Pushgateway": pushed,
        "wrapper's output": stdout + stderr,
    }
    # Positive controls: each place holds what it should.
    assert "visible_marker" in stored
    assert "visible_marker" in inner
    assert "jobmeter_run_" in wrapper_metrics
    assert "privacy" in stored
    assert "argument_count" in stored
    if gateway is not None:
        assert "jobmeter_run_exit_code" in pushed
    for place, text in places.items():
        for secret in (token, password, header, argument, code_secret):
            assert secret not in text, f"{secret} found in the {place}"
    # With --record-args the arguments are kept, and only then.
    recorded = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--record-args", "--",
         sys.executable, "-c", "pass", argument],
        env=_wrapper_env(tmp_path / "b", 0, secrets_env), capture_output=True, timeout=60,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    (run_b,) = (tmp_path / "b" / "runs").iterdir()
    kept = _run_text(run_b)
    assert argument in kept
    assert token not in kept
    assert password not in kept
    assert header not in kept


def test_the_job_sees_its_environment_unchanged(tmp_path: Path) -> None:
    """Masking is jobmeter's output only: the job itself still gets its variables."""
    token = f"tok-{secrets.token_hex(8)}"
    env = _wrapper_env(tmp_path, 0, {"MY_TOKEN": token})
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--no-capture", "--", sys.executable,
         "-c", textwrap.dedent("import os; print(os.environ['MY_TOKEN'])")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == token
