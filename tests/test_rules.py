"""The Prometheus rules in dashboards/rules: valid, unit-tested, on documented names, and live.

promtool checks the file and runs its unit tests; every metric the rules read must be one that
docs/metrics.md lists (the contract with the code); and a real Prometheus loads the rules while
scraping a jobmeter process, evaluates every rule without an error and records series.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from _support.fake_powercap import FakePowercap
from _support.ports import free_port
from _support.prometheus import PrometheusServer

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "dashboards" / "rules" / "jobmeter.rules.yml"
RULE_TESTS = ROOT / "dashboards" / "rules" / "jobmeter.rules.test.yml"
METRICS_MD = ROOT / "docs" / "metrics.md"
PROMTOOL = "/usr/bin/promtool"
# Series that Prometheus itself makes, not jobmeter.
BUILT_IN = {"up", "target_info"}
# PromQL words that look like metric names: functions (when not followed by "(") and operators.
KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Measured blocks, failures and a backfill with a deadline, served on the port given as argv[1].
WORKLOAD = """
import sys, time
import jobmeter

jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=int(sys.argv[1]))
jobmeter.start_host_metrics()
ops = jobmeter.MetricsCollector("etl")
bf = jobmeter.Backfill("orders", total=1_000_000, progress=False, deadline=time.time() + 3600)
while True:
    with ops.measure("load", {"table": "orders"}):
        time.sleep(0.002)
    try:
        with ops.measure("validate"):
            raise ValueError("bad row")
    except ValueError:
        pass
    bf.done()
    time.sleep(0.02)
"""


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (recording-rule names included), by pattern."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and other strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges such as [5m]
    # Label lists, with their keyword: then "sum (" reads as the call it is.
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    tokens = re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", expr)
    return {name for name, call in tokens if not call and name.lower() not in KEYWORDS}


def documented_names() -> dict[str, str]:
    """Prometheus name -> kind, from every table of docs/metrics.md with that column."""
    found: dict[str, str] = {}
    column = kind_column = None
    for line in METRICS_MD.read_text().splitlines():
        if not line.startswith("|"):
            column = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if "Prometheus name" in cells:
            column, kind_column = cells.index("Prometheus name"), cells.index("Kind")
        elif column is not None and kind_column is not None and cells[column].startswith("`"):
            found[cells[column].strip("`")] = cells[kind_column]
    return found


def test_promtool_checks_the_rule_file() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Each alert fires and stays quiet where it should; recording rules give exact values."""
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_metric_names_finds_metrics_and_skips_promql_words() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, job) (rate(a_bucket{x="b c", le!="1"}[5m])))'
        " > on (job) group_left (y) b:c:rate5m offset 1d and bool_metric > bool 2e3 or up"
    )
    assert metric_names(expr) == {"a_bucket", "b:c:rate5m", "bool_metric", "up"}


def test_every_metric_in_the_rules_is_documented() -> None:
    """A renamed metric breaks the rules silently in Prometheus; here it breaks the test."""
    documented = documented_names()
    assert "jobmeter_backfill_deadline_timestamp_seconds" in documented
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    used: set[str] = set()
    unknown = []
    for rule in _rules():
        for name in metric_names(rule["expr"]):
            used.add(name)
            base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), "")
            if ":" in name:
                ok = name in recorded
            else:
                ok = name in documented or name in BUILT_IN or documented.get(base) == "Histogram"
            if not ok:
                unknown.append(f"{rule.get('record') or rule.get('alert')}: {name}")
    assert unknown == []
    assert {"jobmeter_operation_duration_seconds_bucket", "jobmeter_backfill_items_total",
            "hw_gpu_memory_limit_bytes", "system_memory_utilization", "up"} <= used  # fmt: skip


def test_every_alert_has_for_severity_and_annotations() -> None:
    alerts = [rule for rule in _rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == {
        "JobmeterBackfillStalled", "JobmeterBackfillWillMissDeadline",
        "JobmeterOperationFailureRatioHigh", "JobmeterOperationP95Regression",
        "JobmeterGPUMemoryNearLimit", "JobmeterHostMemoryPressure", "JobmeterTargetDown",
    }  # fmt: skip
    for rule in alerts:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    for rule in _rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


class RulesPrometheus(PrometheusServer):
    """PrometheusServer with ``rule_files``: the harness writes no rules of its own."""

    def __init__(self, tmp_path: Path, targets: list[str], rule_file: Path) -> None:
        super().__init__(tmp_path, targets, scrape_interval="1s")
        config = json.loads(self.config_path.read_text())
        config["rule_files"] = [str(rule_file)]
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def rules(self) -> list[dict[str, Any]]:
        """Every rule as /api/v1/rules reports it: name, health, lastError, ..."""
        groups = self._api("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]


@pytest.fixture
def workload(tmp_path: Path) -> Iterator[str]:
    """A jobmeter process measuring in a loop under ``jobmeter run``; yields ``127.0.0.1:PORT``.

    The run's energy rule needs energy: a fake RAPL tree (the VM has none), which
    the command itself joins (one endpoint per job) and the wrapper reads.
    """
    port = free_port()
    FakePowercap(tmp_path / "sys").intel_server()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--name", "rules", "--interval", "0.5",
         "--dir", str(tmp_path / "runs"), "--", sys.executable, "-c", WORKLOAD, str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "OTEL_METRICS_EXPORTER": "prometheus",
             "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
             "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
             "JOBMETER_SYSFS_PATH": str(tmp_path / "sys")},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out = proc.communicate(timeout=10)[0]
                    pytest.fail(f"workload never served /metrics:\n{out.decode()}")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()  # the wrapper forwards SIGTERM to the command, then ends
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_prometheus_evaluates_every_rule_without_error(tmp_path: Path, workload: str) -> None:
    """Every rule is healthy on real data; every recording rule with inputs records series."""
    with RulesPrometheus(tmp_path, [workload], RULES) as prometheus:
        has_gpu = bool(prometheus.wait_for("up", bool)) and bool(
            prometheus.query("hw_gpu_memory_limit_bytes")
        )
        records = [rule["record"] for rule in _rules() if "record" in rule]
        expected = [name for name in records if has_gpu or "gpu" not in name]
        for name in expected:
            prometheus.wait_for(name, bool, timeout=60)
        rules = prometheus.rules()
        end = time.monotonic() + 30
        while any(r["health"] == "unknown" for r in rules) and time.monotonic() < end:
            time.sleep(0.5)  # a group not evaluated yet
            rules = prometheus.rules()
        assert len(rules) == len(_rules())
        bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert bad == [], prometheus.log_tail()
        ((labels, value),) = prometheus.query(
            'instance_operation:jobmeter_operation_failures:ratio_rate5m{operation_name="validate"}'
        )
        assert value == 1.0
        assert labels["instance"] == workload
        ((_, deadline),) = prometheus.query("jobmeter_backfill_deadline_timestamp_seconds")
        assert time.time() < deadline <= time.time() + 3600
