"""The Grafana dashboards: generated from code, named after documented metrics, and live.

The live test runs a workload that exercises every collector and `jobmeter run`, has a real
Prometheus scrape both, and evaluates every panel's PromQL there: a panel that shows nothing
on real data fails with its dashboard, title and expression. Both processes read a fake RAPL
tree (``JOBMETER_SYSFS_PATH``) whose counters the test advances, so that the energy and cost
panels have data on machines without RAPL; the price variables take their defaults.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from _support.fake_powercap import FakePowercap
from _support.ports import free_port
from _support.prometheus import PrometheusServer, http_get

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
GENERATOR = DASHBOARDS / "generate.py"
WORKLOAD = Path(__file__).resolve().parent / "_support" / "workload.py"
METRICS_DOC = ROOT / "docs" / "metrics.md"
UIDS = {
    "jobs": "jobmeter-jobs",
    "host": "jobmeter-host",
    "gpu": "jobmeter-gpu",
    "duckdb": "jobmeter-duckdb",
    "backfills": "jobmeter-backfills",
}
# Grafana's built-in variables, as the live test substitutes them.
BUILTINS = {"__rate_interval": "30s", "__interval": "15s", "__interval_ms": "15000",
            "__range": "5m", "__range_s": "300"}  # fmt: skip
# The price variables each dashboard has, with their defaults (JOBMETER_PRICE_* mirrored).
PRICES = {"price_per_kwh": "0.15", "price_per_cpu_hour": "0.04", "price_per_gb_hour": "0.005",
          "price_per_gpu_hour": "2.5"}  # fmt: skip
BOARD_PRICES = {
    "jobs": {"price_per_kwh", "price_per_cpu_hour", "price_per_gb_hour"},
    "host": {"price_per_kwh"},
    "gpu": {"price_per_kwh", "price_per_gpu_hour"},
    "duckdb": set(),
    "backfills": set(),
}
# The fake RAPL counters' power while the live test runs: the package (hw.type cpu) and DRAM.
CPU_W, DRAM_W = 5.0, 1.0
PANEL_PNG = "jobmeter_panel.png"

Dashboard = dict[str, Any]


def load(name: str) -> Dashboard:
    result: Dashboard = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return result


def expressions(dashboard: Dashboard) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, rows' panels included."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]


def variable_queries(dashboard: Dashboard) -> dict[str, str]:
    return {v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"}


def typed_values(dashboard: Dashboard) -> dict[str, str]:
    """The default value of each textbox and constant variable (the prices), by name."""
    return {
        v["name"]: v["query"]
        for v in dashboard["templating"]["list"]
        if v["type"] in {"textbox", "constant"}
    }


def panel(dashboard: Dashboard, title: str) -> dict[str, Any]:
    """The panel titled ``title`` (rows' panels included)."""
    found: dict[str, Any]
    (found,) = [
        inner
        for outer in dashboard["panels"]
        for inner in [outer, *outer.get("panels", [])]
        if inner["title"] == title
    ]
    return found


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not labels or functions."""
    stripped = _GROUPING.sub(" ", _BRACES.sub(" ", _STRINGS.sub(" ", expr)))
    return {name for name in _IDENT.findall(stripped) if name.lower() not in _KEYWORDS}


def emitted_by(metric: str) -> str:
    """The "Emitted by" cell of ``metric`` (a Prometheus name) in docs/metrics.md, or ""."""
    header: list[str] = []
    for line in METRICS_DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        if not header:
            header = cells
        elif {"Prometheus name", "Emitted by"} <= set(header) and (
            cells[header.index("Prometheus name")] == metric
        ):
            return cells[header.index("Emitted by")]
    return ""


# Metrics that only some machines or collectors emit, and the check that says whether this
# one should. hw.energy comes from GPUCollector (no GPU here) and, once docs/metrics.md says
# so, from HostCollector's RAPL counters, which the live test fakes.
CONDITIONAL = {
    "system_paging_utilization": lambda: psutil.swap_memory().total > 0,
    "system_paging_usage_bytes": lambda: psutil.swap_memory().total > 0,
    "hw_energy_joules_total": lambda: "HostCollector" in emitted_by("hw_energy_joules_total"),
}


def documented_names() -> set[str]:
    """Prometheus names in docs/metrics.md's tables; histograms add _bucket, _sum, _count."""
    names: set[str] = set()
    header: list[str] = []
    for line in METRICS_DOC.read_text().splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        if not header:
            header = cells
            continue
        if "Prometheus name" not in header or set(cells[0]) <= {"-", ":"}:
            continue
        name = cells[header.index("Prometheus name")]
        names.add(name)
        if cells[header.index("Kind")] == "Histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def label_values_arguments(query: str) -> tuple[str, str]:
    """(selector, label) of a Grafana ``label_values(selector, label)`` variable query."""
    match = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
    assert match, query
    selector, label = match.groups()
    return selector, label


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace $name and ${name} the way Grafana would, with ``values``, else ``BUILTINS``,
    else the regex ".*".

    Query variables default to ".*" (their "All"); a price is a number, so pass the dashboard's
    ``typed_values`` for it.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, BUILTINS.get(name, ".*"))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


# -- the files ----------------------------------------------------------------------------------


def test_committed_json_is_what_the_generator_writes(tmp_path: Path) -> None:
    """Edit generate.py, then run `make dashboards`: stale JSON fails here."""
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    assert generated == sorted(f"{name}.json" for name in UIDS)
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == generated
    stale = [
        name
        for name in generated
        if (tmp_path / name).read_text() != (DASHBOARDS / name).read_text()
    ]
    assert not stale, f"stale dashboards {stale}: run `make dashboards` and commit the JSON"


@pytest.mark.parametrize(("name", "uid"), UIDS.items())
def test_uid_and_template_variables(name: str, uid: str) -> None:
    dashboard = load(name)
    assert dashboard["uid"] == uid
    assert dashboard["title"].startswith("jobmeter / ")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["multi"], variable["name"]
            assert variable["includeAll"], variable["name"]
            assert variable["datasource"]["uid"] == "${datasource}"
    assert {"service", "instance"} <= variables.keys()
    if name != "host":  # the host dashboard needs no variable of its own
        assert len(variables) > 3, "the dashboard has a variable of its own"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"], panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", UIDS)
def test_every_metric_in_the_dashboards_is_documented(name: str) -> None:
    documented = documented_names()
    assert "jobmeter_operation_duration_seconds_bucket" in documented
    used: dict[str, list[str]] = {}
    for title, expr in expressions(load(name)):
        names = metric_names(expr)
        assert names, f"no metric found in {title!r}: {expr}"
        for metric in names:
            used.setdefault(metric, []).append(title)
    for query in variable_queries(load(name)).values():
        selector, _label = label_values_arguments(query)
        for metric in metric_names(selector) - {"target_info"}:  # documented under "target_info"
            used.setdefault(metric, []).append("template variable")
    missing = {metric: titles for metric, titles in used.items() if metric not in documented}
    assert not missing, f"{name}: metrics not in docs/metrics.md: {missing}"


@pytest.mark.parametrize("name", UIDS)
def test_price_variables_mirror_the_configuration(name: str) -> None:
    """Prices are not metrics: each dashboard that prices has them as textbox variables whose
    defaults are set and whose descriptions name the JOBMETER_PRICE_* variable they mirror."""
    dashboard = load(name)
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    prices = {key for key in variables if key.startswith("price_")}
    assert prices == BOARD_PRICES[name]
    used = {m for _, expr in expressions(dashboard) for m in re.findall(r"\$(price_\w+)", expr)}
    assert used == prices, "every price variable is used, and only those of the dashboard"
    for key in prices:
        variable = variables[key]
        mirrored = f"JOBMETER_{key.upper()}"
        assert variable["type"] == "textbox", key
        assert variable["query"] == variable["current"]["value"] == PRICES[key], key
        assert mirrored in variable["description"], key
        assert "docs/configuration.md" in variable["description"], key
        assert f"| `{mirrored}` |" in configuration, f"{mirrored} is not in configuration.md"


def test_cost_panels_say_their_basis_and_leave_the_currency_open() -> None:
    """Money is a plain number in the prices' currency; CPU and memory are priced as used, and
    the descriptions say how that differs from `jobmeter report` (what the run held)."""
    costs = [
        (name, inner)
        for name in UIDS
        for outer in load(name)["panels"]
        for inner in [outer, *outer.get("panels", [])]
        if any("$price_" in t["expr"] for t in inner.get("targets", []))
    ]
    assert len(costs) == 7
    for name, inner in costs:
        assert inner["fieldConfig"]["defaults"]["unit"] == "none", (name, inner["title"])
        assert "currency is that of the prices entered" in inner["description"], inner["title"]
    jobs = load("jobs")
    for title in ("CPU cost per run (CPU time used)", "Memory cost per run (memory used)"):
        description = panel(jobs, title)["description"]
        assert "Dashboards price what was used, from metrics" in description, title
        assert "`jobmeter report` prices what the run held" in description, title
        assert "run.json" in description, title
    (cpu,) = panel(jobs, "CPU cost per run (CPU time used)")["targets"]
    assert cpu["expr"] == (
        "sum by (jobmeter_run_name) (increase(jobmeter_run_cpu_time_seconds_total"
        '{instance=~"$instance", jobmeter_run_name=~"$run"}[$__range])) / 3600 '
        "* $price_per_cpu_hour"
    )
    (energy,) = panel(jobs, "Energy cost per run")["targets"]
    assert energy["expr"] == (
        "sum by (jobmeter_run_name) (increase(jobmeter_run_energy_joules_total"
        '{instance=~"$instance", jobmeter_run_name=~"$run"}[$__range])) / 3600000 '
        "* $price_per_kwh"
    )


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, operation_name) (rate(a_bucket{x=~"$x", '
        'y!="b_c"}[$__rate_interval]))) / on (job) group_left (z) c_total - time()'
    )
    assert metric_names(expr) == {"a_bucket", "c_total"}


def test_quantiles_are_written_the_prometheus_way() -> None:
    exprs = [expr for _, expr in expressions(load("jobs")) if "histogram_quantile" in expr]
    assert (
        "histogram_quantile(0.95, sum by (le, operation_name) "
        '(rate(jobmeter_operation_duration_seconds_bucket{instance=~"$instance", '
        'operation_name=~"$operation"}[$__rate_interval])))'
    ) in exprs


# -- live ---------------------------------------------------------------------------------------

_RUN_LOOP = "import time\nwhile True:\n    sum(range(20000)); time.sleep(0.05)"


def _start(
    argv: list[str], port: int, service: str, extra_env: dict[str, str], **popen: Any
) -> subprocess.Popen[str]:
    env = {**os.environ, "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
           "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "OTEL_SERVICE_NAME": service,
           **extra_env}  # fmt: skip
    return subprocess.Popen(argv, env=env, text=True, **popen)


class _Draw(threading.Thread):
    """Advances the fake RAPL counters as a machine drawing CPU_W and DRAM_W would."""

    def __init__(self, powercap: FakePowercap) -> None:
        super().__init__(name="fake-rapl", daemon=True)
        self.powercap = powercap
        self.done = threading.Event()

    def run(self) -> None:
        last = time.monotonic()
        while not self.done.wait(0.02):
            now = time.monotonic()
            self.powercap.zones["intel-rapl:0"].add(CPU_W * (now - last))
            self.powercap.zones["intel-rapl:0:2"].add(DRAM_W * (now - last))
            last = now


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


def _label_values(prometheus: PrometheusServer, query: str) -> list[str]:
    """Evaluate a Grafana ``label_values(selector, label)`` variable query."""
    selector, label = label_values_arguments(query)
    params = urllib.parse.urlencode({"match[]": selector})
    reply = json.loads(http_get(f"{prometheus.url}/api/v1/label/{label}/values?{params}"))
    assert reply["status"] == "success", (query, reply)
    values: list[str] = reply["data"]
    return values


def _empty_panels(prometheus: PrometheusServer) -> list[str]:
    """Panels without a series; energy and cost panels also need a value above zero."""
    empty = []
    for name in UIDS:
        values = typed_values(load(name))
        for title, expr in expressions(load(name)):
            promql = substitute(expr, values)
            samples = prometheus.query(promql)  # raises on PromQL that does not parse
            if name == "gpu":  # no GPU here; its names are checked against the docs above
                continue
            names = metric_names(expr)
            if not all(CONDITIONAL[m]() for m in names if m in CONDITIONAL):
                continue
            if not samples:
                empty.append(f"{name} / {title}: {promql}")
            elif ("$price_" in expr or any("energy" in m for m in names)) and not any(
                value > 0 for _, value in samples
            ):
                empty.append(f"{name} / {title} (all zero): {promql}")
    return empty


def _query_at(prometheus: PrometheusServer, expr: str, at: float, by: str) -> dict[str, float]:
    """A panel's expression (defaults substituted) at time ``at``: value by the label ``by``,
    summed over the other labels."""
    params = urllib.parse.urlencode({"query": expr, "time": str(at)})
    reply = json.loads(http_get(f"{prometheus.url}/api/v1/query?{params}"))
    assert reply["status"] == "success", (expr, reply)
    values: dict[str, float] = {}
    for item in reply["data"]["result"]:
        key = item["metric"][by]
        values[key] = values.get(key, 0.0) + float(item["value"][1])
    return values


def _check_energy_and_cost(prometheus: PrometheusServer) -> None:
    """The run's power is the fake counters' draw; costs are kWh or CPU-hours times the price."""
    jobs = load("jobs")
    values = typed_values(jobs)

    def expr(title: str, **builtins: str) -> str:
        (target,) = panel(jobs, title)["targets"]
        return substitute(target["expr"], {**values, **builtins})

    # A window shorter than the run's age: rate() over a younger series underestimates.
    prometheus.wait_for(
        'count_over_time(jobmeter_run_energy_joules_total{hw_type="cpu"}[1m]) >= 13',
        lambda samples: bool(samples),
    )
    power = {
        labels["hw_type"]: value
        for labels, value in prometheus.query(
            expr("Machine power during the run", __rate_interval="10s")
        )
    }
    assert power.keys() == {"cpu", "dram"}
    assert power["cpu"] == pytest.approx(CPU_W, rel=0.25)
    assert power["dram"] == pytest.approx(DRAM_W, rel=0.25)

    at = time.time() - 1  # one instant for all, so that the figures compare exactly
    for energy, cost, by in [
        ("Energy per run by hw.type", "Energy cost per run", "jobmeter_run_name"),
        ("Energy per operation by hw.type", "Energy cost per operation", "operation_name"),
    ]:
        joules = _query_at(prometheus, expr(energy), at, by)
        money = _query_at(prometheus, expr(cost), at, by)
        assert joules, energy
        assert joules.keys() == money.keys(), (energy, joules, money)
        for key, value in joules.items():
            assert money[key] == pytest.approx(value / 3.6e6 * float(PRICES["price_per_kwh"]))
    cpu_seconds = _query_at(
        prometheus,
        "sum by (jobmeter_run_name) (increase(jobmeter_run_cpu_time_seconds_total[5m]))",
        at,
        "jobmeter_run_name",
    )
    cpu_cost = _query_at(prometheus, expr("CPU cost per run (CPU time used)"), at,
                         "jobmeter_run_name")  # fmt: skip
    assert cpu_cost == pytest.approx(
        {run: s / 3600 * float(PRICES["price_per_cpu_hour"]) for run, s in cpu_seconds.items()}
    )
    assert cpu_cost["wl"] > 0


def _render_p95(prometheus: PrometheusServer, path: Path) -> int:
    """Plot the operations' p95 over the last minute, as the jobs dashboard's panel shows it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (expr,) = [e for title, e in expressions(load("jobs")) if "p50" in title and "0.95" in e]
    now = time.time()
    params = {"query": substitute(expr, {}), "start": str(now - 60), "end": str(now), "step": "0.5"}
    reply = json.loads(
        http_get(f"{prometheus.url}/api/v1/query_range?{urllib.parse.urlencode(params)}")
    )
    assert reply["status"] == "success", reply
    series = reply["data"]["result"]
    figure, axes = plt.subplots(figsize=(9, 4))
    points = 0
    for item in series:
        times = [float(t) - now for t, _ in item["values"]]
        values = [float(v) * 1000 for _, v in item["values"]]
        points += len(values)
        axes.plot(times, values, label=item["metric"].get("operation_name", "?"))
    axes.set_title("jobmeter / Jobs & operations: duration p95")
    axes.set_xlabel("seconds from now")
    axes.set_ylabel("ms")
    axes.legend()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return points


@pytest.mark.prometheus
def test_every_panel_shows_data_from_a_real_workload(tmp_path: Path) -> None:
    """Every panel (GPU excepted) returns at least one series on live data, and so do the
    template variables; energy comes from fake RAPL counters drawing a known power, and the
    cost panels price it at the variables' defaults. One panel is drawn to a PNG for people
    to look at."""
    # conftest drops JOBMETER_* from os.environ: the fake RAPL tree is given to each process.
    powercap = FakePowercap(tmp_path / "sysfs").intel_server()
    sysfs = {"JOBMETER_SYSFS_PATH": str(powercap.root)}
    draw = _Draw(powercap)
    draw.start()
    workload = _start([sys.executable, str(WORKLOAD)], free_port(), "wl-etl", sysfs,
                      stdout=subprocess.PIPE)  # fmt: skip
    run_port = free_port()
    run = _start(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--interval", "0.2", "--name", "wl",
         "--dir", str(tmp_path / "runs"), "--", sys.executable, "-c", _RUN_LOOP],
        run_port, "wl-run", sysfs, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert workload.stdout is not None
        line = workload.stdout.readline()
        assert line, f"the workload exited with {workload.wait(timeout=10)}"
        targets = [f"127.0.0.1:{json.loads(line)['port']}", f"127.0.0.1:{run_port}"]
        with PrometheusServer(tmp_path, targets, scrape_interval="1s") as prometheus:
            for metric in ("jobmeter_run_cpu_busy", "jobmeter_operation_active"):
                # A few scrapes of each target, so that rate() has points to work with.
                prometheus.wait_for(
                    f"count_over_time({metric}[1m]) >= 3", lambda samples: bool(samples)
                )
            deadline = time.monotonic() + 20
            while (empty := _empty_panels(prometheus)) and time.monotonic() < deadline:
                time.sleep(1)
            assert not empty, "panels without data:\n" + "\n".join(empty)
            _check_energy_and_cost(prometheus)

            for name in UIDS:
                for variable, query in variable_queries(load(name)).items():
                    if name == "gpu" and variable == "gpu":
                        continue
                    values = _label_values(prometheus, substitute(query, {}))
                    assert values, f"{name}: variable {variable} has no values: {query}"
            assert sorted(_label_values(prometheus, "label_values(target_info, service_name)")) == [
                "wl-etl",
                "wl-run",
            ]
            instances = variable_queries(load("jobs"))["instance"]
            assert _label_values(prometheus, substitute(instances, {"service": "wl-run"})) == [
                targets[1]
            ]

            # Some 15 s of history, so that the picture is a line rather than a dot.
            prometheus.wait_for(
                "count_over_time(jobmeter_operation_active[1m]) >= 15",
                lambda samples: bool(samples),
            )
            png = tmp_path / PANEL_PNG
            assert _render_p95(prometheus, png) > 0
            assert png.stat().st_size > 10_000
            # A copy for people to look at (conftest drops JOBMETER_* variables, hence the name).
            if copy := os.environ.get("DASHBOARD_PANEL_PNG"):
                Path(copy).write_bytes(png.read_bytes())
    finally:
        _stop(workload)
        _stop(run)
        draw.done.set()
        draw.join(timeout=5)
