"""The Grafana dashboards: generated from code, named after documented metrics, and live.

The live test runs a workload that exercises every collector and `jobmeter run`, has a real
Prometheus scrape both, and evaluates every panel's PromQL there: a panel that shows nothing
on real data fails with its dashboard, title and expression.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

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
BUILTINS = {"__rate_interval": "30s", "__interval": "15s", "__range": "5m"}
# Metrics that only some machines emit, and the check that says whether this one should.
CONDITIONAL = {
    "system_paging_utilization": lambda: psutil.swap_memory().total > 0,
    "system_paging_usage_bytes": lambda: psutil.swap_memory().total > 0,
}
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


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not labels or functions."""
    stripped = _GROUPING.sub(" ", _BRACES.sub(" ", _STRINGS.sub(" ", expr)))
    return {name for name in _IDENT.findall(stripped) if name.lower() not in _KEYWORDS}


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
    """Replace $name and ${name} the way Grafana would, with ``values`` or the regex ".*"."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return BUILTINS.get(name, values.get(name, ".*"))

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


def _start(argv: list[str], port: int, service: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
           "OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "OTEL_SERVICE_NAME": service}  # fmt: skip
    return subprocess.Popen(argv, env=env, text=True, **popen)


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
    empty = []
    for name in UIDS:
        if name == "gpu":  # no GPU here; its names are checked against the docs above
            continue
        for title, expr in expressions(load(name)):
            conditions = [CONDITIONAL[m]() for m in metric_names(expr) if m in CONDITIONAL]
            if not all(conditions):
                continue
            promql = substitute(expr, {})
            if not prometheus.query(promql):
                empty.append(f"{name} / {title}: {promql}")
    return empty


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
    template variables; one panel is drawn to a PNG for people to look at."""
    workload = _start([sys.executable, str(WORKLOAD)], free_port(), "wl-etl",
                      stdout=subprocess.PIPE)  # fmt: skip
    run_port = free_port()
    run = _start(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--interval", "0.2", "--name", "wl",
         "--dir", str(tmp_path / "runs"), "--", sys.executable, "-c", _RUN_LOOP],
        run_port, "wl-run", stdout=subprocess.DEVNULL,
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
