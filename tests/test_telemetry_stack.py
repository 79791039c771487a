"""The telemetry stack of Dockerfiles/telemetry, checked with the real tools and without Docker.

What refers to what (scrape targets, volumes, collector pipelines, Grafana provisioning) is
checked on the parsed YAML; promtool checks prometheus.yml laid out as the container sees it;
and the real Prometheus, run with that prometheus.yml, scrapes the job's real command and a
real Pushgateway.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from _support.ports import free_port, refused_endpoint_port
from _support.prometheus import PrometheusServer, ServerProcess
from _support.pushgateway import Pushgateway

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "Dockerfiles" / "telemetry"
DOCKERFILE = STACK / "job" / "Dockerfile"
PROMTOOL = "/usr/bin/promtool"

# Written by other parts of issue 9: a volume may name these before they exist.
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "rules"
PATHS_BEING_CREATED = {DASHBOARDS, RULES}
DASHBOARD_FILES = {"jobs.json", "host.json", "gpu.json", "duckdb.json", "backfills.json"}

# Where the images' servers listen unless told otherwise.
IMAGE_PORTS = {"prom/prometheus": {9090}, "prom/pushgateway": {9091}, "grafana/grafana": {3000}}

# The stand-in when dashboards/rules does not exist yet: one recording rule on a real metric.
STAND_IN_RULES = """\
groups:
  - name: jobmeter-stand-in
    rules:
      - record: job:jobmeter_operation_duration_seconds_count:rate5m
        expr: sum by (job) (rate(jobmeter_operation_duration_seconds_count[5m]))
"""


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    config: dict[str, Any] = load(STACK / "compose.yaml")
    return config


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((STACK / source).resolve(), target))
    return mounts


def exposed_ports(service: dict[str, Any]) -> set[int]:
    """Container ports a service exposes or publishes."""
    ports = {int(str(port).split("/")[0]) for port in service.get("expose", [])}
    ports |= {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports", [])}
    return ports


def dockerfile() -> tuple[dict[str, str], list[str], set[int], str]:
    """ENV, exec-form CMD, EXPOSE and FROM of the job's Dockerfile."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    cmd: list[str] = []
    expose: set[int] = set()
    base = ""
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            env.update(pair.partition("=")[::2] for pair in rest.split())
        elif instruction == "CMD":
            cmd = json.loads(rest)
        elif instruction == "EXPOSE":
            expose |= {int(port) for port in rest.split()}
        elif instruction == "FROM":
            base = rest.strip()
    return env, cmd, expose, base


def listening_ports(name: str, service: dict[str, Any]) -> set[int]:
    """The ports the service's process listens on, read from its own configuration."""
    if name == "otel-collector":
        collector = load(STACK / "otel-collector.yaml")
        endpoints = [
            *(p["endpoint"] for p in collector["receivers"]["otlp"]["protocols"].values()),
            *(e["endpoint"] for e in collector["exporters"].values() if "endpoint" in e),
            *(e["endpoint"] for e in collector["extensions"].values() if "endpoint" in e),
        ]
        return {int(endpoint.rsplit(":", 1)[1]) for endpoint in endpoints}
    if name == "job":
        env, cmd, _, _ = dockerfile()
        ports = {int(env["OTEL_EXPORTER_PROMETHEUS_PORT"])}
        return ports | {int(a.split("=")[1]) for a in cmd if a.startswith("OTEL_EXPORTER_PROM")}
    return IMAGE_PORTS[service["image"].split(":")[0]]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    pinned = re.compile(r"^[\w./-]+:(?!latest$)v?\d+(\.\d+)+[\w.-]*$")
    for name, service in services(compose).items():
        if "build" not in service:
            assert pinned.match(service["image"]), f"{name}: {service['image']} is not pinned"
    assert pinned.match(dockerfile()[3]), dockerfile()[3]


def test_scrape_targets_are_services_and_ports_they_listen_on(compose: dict[str, Any]) -> None:
    config = load(STACK / "prometheus.yml")
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "prometheus": ["localhost:9090"],
        "jobmeter": ["job:8000", "job:8001"],
        "otel-collector": ["otel-collector:8889"],
        "pushgateway": ["pushgateway:9091"],
    }
    for job, addresses in targets.items():
        for address in addresses:
            host, port = address.rsplit(":", 1)
            name = "prometheus" if host == "localhost" else host  # itself
            service = services(compose)[name]
            assert int(port) in listening_ports(name, service), (job, address)
            assert int(port) in exposed_ports(service), (job, address)
    honoring = {job["job_name"] for job in config["scrape_configs"] if job.get("honor_labels")}
    assert honoring == {"pushgateway", "otel-collector"}


def test_volumes_exist_in_the_repository(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: named volume {source} is not declared"
        for source, _target in bind_mounts(service):
            assert source.exists() or source in PATHS_BEING_CREATED, f"{name}: {source}"
            assert source.is_relative_to(ROOT), f"{name}: {source} is outside the repository"


def test_prometheus_command_finds_its_config_and_rules(compose: dict[str, Any]) -> None:
    service = services(compose)["prometheus"]
    flags = dict(arg.partition("=")[::2] for arg in service["command"])
    assert "--web.enable-lifecycle" in flags
    mounts = {target: source for source, target in bind_mounts(service)}
    config_file = flags["--config.file"]
    assert mounts[config_file] == STACK / "prometheus.yml"
    # rule_files are resolved from the config file's directory, as Prometheus does.
    (rule_glob,) = load(STACK / "prometheus.yml")["rule_files"]
    rule_dir = str(Path(config_file).parent / Path(rule_glob).parent)
    assert mounts[rule_dir] == RULES


def components(config: dict[str, Any]) -> Iterator[tuple[str, set[str], set[str]]]:
    """(kind, defined, used) for receivers, processors, exporters and extensions."""
    pipelines = config["service"]["pipelines"].values()
    for kind in ("receivers", "processors", "exporters"):
        used = {component for pipeline in pipelines for component in pipeline.get(kind, [])}
        yield kind, set(config.get(kind) or {}), used
    yield "extensions", set(config.get("extensions") or {}), set(config["service"]["extensions"])


def merge(base: Any, overlay: Any) -> Any:
    """Merge two collector configs as the collector merges --config files: maps deeply, the
    later list replacing the earlier one."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {k: merge(base[k], v) if k in base else v for k, v in overlay.items()} | {
            k: v for k, v in base.items() if k not in overlay
        }
    return overlay


@pytest.mark.parametrize("debug", [False, True], ids=["default", "with-debug-overlay"])
def test_collector_pipeline_components_are_defined_and_used(
    compose: dict[str, Any], debug: bool
) -> None:
    config = load(STACK / "otel-collector.yaml")
    if debug:
        config = merge(config, load(STACK / "otel-collector.debug.yaml"))
    for kind, defined, used in components(config):
        assert used <= defined, f"{kind} used but not defined: {used - defined}"
        assert defined <= used, f"{kind} defined but not used: {defined - used}"
    exporters = set(config["service"]["pipelines"]["metrics"]["exporters"])
    assert exporters == ({"prometheus", "debug"} if debug else {"prometheus"})
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    # The config files the compose files pass are the ones mounted.
    service = services(compose)["otel-collector"]
    overlay = load(STACK / "compose.debug.yaml")["services"]["otel-collector"]
    mounts = {target: source for source, target in bind_mounts(service)}
    for command in (service["command"], overlay["command"]):
        for arg in command:
            assert mounts[arg.removeprefix("--config=")].name.startswith("otel-collector")


def test_grafana_provisioning_points_at_prometheus_and_dashboards(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    mounts = {target: source for source, target in bind_mounts(grafana)}
    provisioning = STACK / "grafana" / "provisioning"
    for kind in ("datasources", "dashboards"):
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == provisioning / kind
    (datasource,) = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "jobmeter-prometheus"
    url = urlsplit(datasource["url"])
    assert url.hostname in services(compose)
    assert url.hostname == "prometheus"
    assert url.port in listening_ports("prometheus", services(compose)["prometheus"])
    (provider,) = load(provisioning / "dashboards" / "jobmeter.yml")["providers"]
    assert provider["folder"] == "jobmeter"
    assert mounts[provider["options"]["path"]] == DASHBOARDS
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == provider["options"]["path"]
    assert (DASHBOARDS / home.name).exists() or home.name in DASHBOARD_FILES
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def documented_variables() -> set[str]:
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    names = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", configuration, re.M))
    # The demo's own setting is documented with the demo, in the README.
    return names | (
        {"DEMO_SECONDS"} & set(re.findall(r"`([A-Z_]+)`", (ROOT / "README.md").read_text()))
    )


def test_job_dockerfile_runs_jobmeter_run_with_documented_settings(
    compose: dict[str, Any],
) -> None:
    env, cmd, expose, _ = dockerfile()
    assert cmd[:2] == ["jobmeter", "run"]
    assert cmd[cmd.index("--") + 1 :][-3:] == ["python", "-m", "jobmeter.demo"]
    in_cmd = {arg.split("=")[0] for arg in cmd if re.match(r"^[A-Z_]+=", arg)}
    undocumented = (set(env) | in_cmd) - documented_variables()
    assert not undocumented, f"not in docs/configuration.md: {undocumented}"
    assert env["OTEL_EXPORTER_PROMETHEUS_HOST"] == "0.0.0.0"
    assert urlsplit(env["JOBMETER_PUSHGATEWAY_URL"]).netloc == "pushgateway:9091"
    assert expose == exposed_ports(services(compose)["job"]) == listening_ports("job", {})
    job = services(compose)["job"]
    assert (STACK / job["build"]["context"]).resolve() == ROOT
    assert (ROOT / job["build"]["dockerfile"]) == DOCKERFILE
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line


def container_tree(compose: dict[str, Any], service: str, root: Path) -> None:
    """Copy the service's bind mounts under ``root`` at the paths the container sees."""
    for source, target in bind_mounts(services(compose)[service]):
        destination = root / target.lstrip("/")
        if source == RULES and not RULES.exists():
            destination.mkdir(parents=True)
            (destination / "stand-in.rules.yml").write_text(STAND_IN_RULES)
        elif source.is_dir():
            shutil.copytree(source, destination)
        elif source.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)


@pytest.mark.prometheus
def test_promtool_accepts_the_config_and_its_rules(compose: dict[str, Any], tmp_path: Path) -> None:
    container_tree(compose, "prometheus", tmp_path)
    config = tmp_path / "etc" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rule files found", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert int(found[1]) >= 1


class StackPrometheus(PrometheusServer):
    """The real Prometheus with the stack's command and prometheus.yml, targets rewritten."""

    def __init__(self, root: Path, command: list[str], targets: dict[str, str]) -> None:
        self.tmp_path = root
        self.config_path = root / "etc" / "prometheus" / "prometheus.yml"
        self._config: dict[str, Any] = load(self.config_path)
        self._command = command
        self._targets = targets
        self._server = ServerProcess(self._argv, root / "prometheus.log")

    def _argv(self, port: int) -> list[str]:
        # Written here: the self-scrape target is the port Prometheus is about to listen on.
        targets = self._targets | {"localhost:9090": f"127.0.0.1:{port}"}
        config = copy.deepcopy(self._config)  # _argv runs again if the port was taken
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        for job in config["scrape_configs"]:
            for static in job["static_configs"]:
                static["targets"] = [targets[target] for target in static["targets"]]
        self.config_path.write_text(yaml.safe_dump(config))
        flags = dict(arg.partition("=")[::2] for arg in self._command)
        assert flags.pop("--config.file") == "/etc/prometheus/prometheus.yml"
        flags["--storage.tsdb.path"] = str(self.tmp_path / "data")
        flags["--web.listen-address"] = f"127.0.0.1:{port}"
        args = [f"{flag}={value}" if value else flag for flag, value in flags.items()]
        return ["/usr/bin/prometheus", f"--config.file={self.config_path}", *args]


@pytest.mark.prometheus
def test_prometheus_scrapes_the_job_and_the_pushgateway(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The stack's prometheus.yml and the job's own command, run for real on loopback ports."""
    container_tree(compose, "prometheus", tmp_path)
    env, cmd, _, _ = dockerfile()
    wrapper_port, demo_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    # The image's programs are this venv's; the demo's port moves off 8001 like the wrapper's.
    programs = {"jobmeter": str(bin_dir / "jobmeter"), "python": sys.executable}
    argv = [programs.get(arg, arg).replace("=8001", f"={demo_port}") for arg in cmd]
    with Pushgateway(tmp_path) as gateway:
        job_env = env | {
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(wrapper_port),
            "JOBMETER_PUSHGATEWAY_URL": gateway.url,
            "JOBMETER_RUN_DIR": str(tmp_path / "runs"),
            "DEMO_SECONDS": "6",
            "PATH": f"{bin_dir}:/usr/bin:/bin",
        }
        with (tmp_path / "job.log").open("wb") as log:
            job = subprocess.Popen(argv, env=job_env, cwd=tmp_path, stdout=log, stderr=log)
        targets = {
            "job:8000": f"127.0.0.1:{wrapper_port}",
            "job:8001": f"127.0.0.1:{demo_port}",
            "pushgateway:9091": gateway.address,
            "otel-collector:8889": f"127.0.0.1:{refused_endpoint_port()}",  # no collector here
        }
        try:
            with StackPrometheus(
                tmp_path, services(compose)["prometheus"]["command"], targets
            ) as prometheus:
                prometheus.wait_for('up{job="jobmeter"} == 1', lambda s: len(s) == 2)
                prometheus.wait_for('up{job=~"pushgateway|prometheus"} == 1', lambda s: len(s) == 2)
                # :8001 is the demo's own endpoint: its operations, not only the run's figures.
                prometheus.wait_for(
                    'jobmeter_operation_duration_seconds_count{job="jobmeter"}', bool
                )
                assert job.wait(timeout=30) == 0, (tmp_path / "job.log").read_text()
                # With honor_labels the pushed group keeps its job label instead of "pushgateway".
                pushed = prometheus.wait_for(
                    'jobmeter_run_exit_code{job="example"}', lambda s: len(s) == 1
                )
                assert pushed[0][1] == 0.0
                assert "exported_job" not in pushed[0][0]
                collector = prometheus.query('up{job="otel-collector"}')
                assert [(labels["instance"], up) for labels, up in collector] == [
                    (targets["otel-collector:8889"], 0.0)
                ]
                groups = prometheus._api("/api/v1/rules")["groups"]
                assert groups, prometheus.log_tail()
        finally:
            if job.poll() is None:
                job.terminate()
                job.wait(timeout=10)
