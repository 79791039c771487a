"""The lean install: `make demo` into a fresh venv installs the base package only, and it works.

One module-scoped fixture builds the venv once with ``make demo VENV=<tmp>/venv``
(pip, with the network or a warm cache: about 15 s here), on a free port and a
temporary run store. The tests then check what the venv holds (no developer
tool) and run the README's quick start, OTLP export and ``jobmeter run`` /
``jobmeter report`` in it for real.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _support.otlp_receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parent.parent
DEVELOPER_TOOLS = {
    "pytest", "mypy", "ruff", "mkdocs", "comet-ml", "polars", "hypothesis",
    "import-linter", "pandas", "matplotlib",
}  # fmt: skip
MiB = 2**20

pytestmark = pytest.mark.timeout(600)  # make is needed: `make test` runs this


@dataclass(frozen=True)
class Installed:
    """The venv `make demo` built, and what it printed."""

    venv: Path
    tmp: Path
    out: str
    install_seconds: float
    demo_seconds: float

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """The caller's environment without its OTel, jobmeter, make and venv settings."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "JOBMETER_", "MAKE", "PYTHON"))
            and key not in ("MFLAGS", "VIRTUAL_ENV", "COLUMNS", "DEMO_SECONDS")
        }
        path = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        return env | {"PATH": path, "COLUMNS": "80"} | extra

    def run(
        self, args: list[str], extra: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in an empty directory with this venv first on PATH, and ``extra``."""
        cwd = self.tmp / "work"
        cwd.mkdir(exist_ok=True)
        return subprocess.run(
            args, cwd=cwd, env=self.env(**(extra or {})), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("install")
    venv = tmp / "venv"
    make = ["make", "--no-print-directory", f"VENV={venv}", f"PYTHON={sys.executable}"]
    probe = Installed(venv, tmp, "", 0.0, 0.0)
    env = probe.env(
        OTEL_EXPORTER_PROMETHEUS_PORT="0", DEMO_SECONDS="1", JOBMETER_RUN_DIR=str(tmp / "runs")
    )
    started = time.monotonic()
    # The install step of `make demo` alone, to time it apart from the demo.
    done = subprocess.run(
        [*make, str(venv / ".installed-base")], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=480, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    installed_at = time.monotonic()
    done = subprocess.run(
        [*make, "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return Installed(
        venv, tmp, done.stdout, installed_at - started, time.monotonic() - installed_at
    )


def test_make_demo_serves_a_free_port_and_prints_the_summary(installed: Installed) -> None:
    out = installed.out
    url = re.search(r"Serving metrics on (http://127\.0\.0\.1:(\d+)/metrics)", out)
    assert url, out
    assert int(url[2]) not in (0, 8000)  # OTEL_EXPORTER_PROMETHEUS_PORT=0 reached the demo
    assert "Running a measured DuckDB pipeline for 1 s" in out
    samples = re.search(r"The endpoint served (\d+) jobmeter samples", out)
    assert samples, out
    assert int(samples[1]) > 20
    assert "What each operation cost" in out
    assert "What each DuckDB query shape cost" in out
    assert re.search(r"^write {2,}[1-9]\d* {2,}0 ", out, re.MULTILINE), out
    assert re.search(r"^COPY totals {2,}[1-9]\d* ", out, re.MULTILINE), out
    # `jobmeter report --latest` read the run from JOBMETER_RUN_DIR, not ./.jobmeter/runs.
    (run,) = (installed.tmp / "runs").iterdir()
    assert str(run) in out
    record = json.loads((run / "run.json").read_text())
    assert (record["name"], record["status"], record["exit_code"]) == ("demo", "succeeded", 0)
    assert 1.0 <= record["end"] - record["start"] < 30
    # The whole `make demo`: the base install, then the demo itself.
    assert installed.install_seconds < 300
    assert installed.demo_seconds < 30


def test_the_venv_holds_the_base_install_and_no_developer_tool(installed: Installed) -> None:
    done = installed.run([str(installed.python), "-m", "pip", "list", "--format=json"])
    assert done.returncode == 0, done.stderr
    packages: dict[str, dict[str, Any]] = {
        re.sub(r"[-_.]+", "-", p["name"]).lower(): p for p in json.loads(done.stdout)
    }
    assert not DEVELOPER_TOOLS & set(packages), sorted(DEVELOPER_TOOLS & set(packages))
    # Editable, from this working tree; with every base dependency.
    assert Path(packages["jobmeter"]["editable_project_location"]) == ROOT
    base = {"opentelemetry-sdk", "opentelemetry-exporter-prometheus", "psutil", "duckdb", "typer"}
    assert base <= set(packages)
    assert len(packages) < 50  # the base install is small: 36 packages with pip here
    assert (installed.venv / ".installed-base").exists()
    assert not (installed.venv / ".installed").exists()  # `make test`'s stamp: still to do


QUICK_START = textwrap.dedent(
    """
    import sys
    import urllib.request

    import jobmeter

    telemetry = jobmeter.configure(prometheus_port=0)
    jobmeter.start_host_metrics()
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(3):
        with ops.measure("load_orders", {"table": "orders"}):
            rows = [i * 1.5 for i in range(200_000)]
    try:
        with ops.measure("validate"):
            raise ValueError("bad row")
    except ValueError:
        pass
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=10) as response:
        sys.stdout.write(response.read().decode())
    print("URL", telemetry.prometheus_url, jobmeter.__file__)
    """
)


def _samples(text: str, name: str, **labels: str) -> list[float]:
    """The values of the samples ``name`` whose labels include ``labels``."""
    return [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
        and all(f'{key}="{value}"' in line for key, value in labels.items())
    ]


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample ``name`` whose labels include ``labels``."""
    found = _samples(text, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_the_quick_start_serves_measured_blocks(installed: Installed) -> None:
    done = installed.run([str(installed.python), "-c", QUICK_START])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    url = re.search(r"^URL (http://\S+:(\d+)/metrics) (\S+)$", text, re.M)
    assert url, text
    assert int(url[2]) != 8000
    assert Path(url[3]).is_relative_to(ROOT / "src")  # the editable install of this tree
    duration = "jobmeter_operation_duration_seconds"
    load = {"operation_name": "load_orders", "table": "orders", "error_type": ""}
    assert _sample(text, f"{duration}_count", **load) == 3.0
    assert _sample(text, f"{duration}_sum", **load) > 0
    assert _sample(text, f"{duration}_bucket", le="+Inf", **load) == 3.0
    failed = {"operation_name": "validate", "error_type": "ValueError"}
    assert _sample(text, f"{duration}_count", **failed) == 1.0
    cpu = _samples(text, "jobmeter_operation_cpu_time_seconds_total", **load)  # user, system
    assert len(cpu) == 2, text
    assert sum(cpu) > 0
    # start_host_metrics(): the process's own figures, from psutil in the base install.
    assert _sample(text, "process_memory_usage_bytes") > 10 * MiB


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_base_install_exports_over_otlp(installed: Installed, protocol: str) -> None:
    code = textwrap.dedent(
        """
        import jobmeter

        jobmeter.configure()
        ops = jobmeter.MetricsCollector("etl")
        for _ in range(2):
            with ops.measure("load"):
                pass
        """
    )
    with OtlpReceiver() as receiver:
        grpc = protocol == "grpc"
        endpoint = receiver.grpc_endpoint if grpc else f"http://127.0.0.1:{receiver.http_port}"
        done = installed.run(
            [str(installed.python), "-c", code],
            {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            },
        )
        assert done.returncode == 0, done.stderr
        points = receiver.points("jobmeter.operation.duration")
    assert [(p.protocol, p.count, p.attributes["operation.name"]) for p in points] == [
        ("grpc" if grpc else "http", 2, "load")
    ]


def test_jobmeter_run_and_report_in_the_base_install(installed: Installed) -> None:
    runs = installed.tmp / "runs-cli"
    job = textwrap.dedent(
        """
        import time
        import jobmeter

        jobmeter.configure()
        ops = jobmeter.MetricsCollector("job")
        held = b"x" * (64 * 2**20)
        for _ in range(2):
            with ops.measure("step"):
                time.sleep(0.6)
        """
    )
    env = {"JOBMETER_RUN_DIR": str(runs), "OTEL_EXPORTER_PROMETHEUS_PORT": "0"}
    done = installed.run(["jobmeter", "run", "--name", "lean", "--", "python", "-c", job], env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = installed.run(["jobmeter", "report", "--latest", "--json"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["name"], report["exit_code"]) == ("lean", 0)
    figures = report["figures"]
    assert 1.2 <= figures["wall_seconds"] < 30
    assert figures["cpu_user_seconds"] + figures["cpu_system_seconds"] > 0
    assert figures["peak_memory_bytes"] >= 64 * MiB
    (step,) = report["operations"]
    assert (step["operation"], step["count"], step["errors"]) == ("step", 2, 0)
    assert 1.2 <= step["duration_total_seconds"] < 5
