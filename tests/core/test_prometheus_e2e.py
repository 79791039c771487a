"""A real Prometheus server scrapes jobmeter's endpoint and answers PromQL with exact counts."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import jobmeter
from _support.prometheus import PrometheusServer


def test_prometheus_counts_every_block_per_operation(tmp_path: Path) -> None:
    telemetry = jobmeter.configure(
        prometheus_host="127.0.0.1", prometheus_port=0, service_name="orders-etl"
    )
    assert telemetry.prometheus_address is not None
    host, port = telemetry.prometheus_address
    ops = jobmeter.MetricsCollector("etl")
    expected = {"load": 7, "transform": 3, "write": 12}
    for operation, times in expected.items():
        for _ in range(times):
            with ops.measure(operation, {"table": "orders"}):
                pass
    with pytest.raises(RuntimeError), ops.measure("write", {"table": "orders"}):
        raise RuntimeError("disk full")

    with PrometheusServer(tmp_path, [f"{host}:{port}"], scrape_interval="1s") as prometheus:
        result = prometheus.wait_for(
            "sum by (operation_name) (jobmeter_operation_duration_seconds_count)",
            lambda samples: len(samples) == 3,
        )
        counts = {labels["operation_name"]: value for labels, value in result}
        assert counts == {"load": 7.0, "transform": 3.0, "write": 13.0}
        errors = prometheus.query(
            'jobmeter_operation_duration_seconds_count{error_type="RuntimeError"}'
        )
        assert [(s[0]["operation_name"], s[1]) for s in errors] == [("write", 1.0)]
        info = prometheus.query("target_info")
        assert len(info) == 1
        assert info[0][0]["service_name"] == "orders-etl"
        up = prometheus.query('up{job="jobmeter"}')
        assert up[0][1] == 1.0


def test_endpoint_speaks_the_text_format() -> None:
    """The scrape parses with prometheus_client's own parser; names follow the OTel translation."""
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("load"):
        pass
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["jobmeter_operation_duration_seconds"].type == "histogram"
    assert families["jobmeter_operation_cpu_time_seconds"].type == "counter"
    assert families["jobmeter_operation_disk_io_bytes"].type == "counter"
    assert families["jobmeter_operation_memory_usage_bytes"].type == "gauge"
    assert families["jobmeter_operation_memory_growth_bytes"].type == "gauge"
    assert families["jobmeter_operation_active"].type == "gauge"
    (target,) = families["target_info"].samples
    assert target.labels["process_pid"] == str(os.getpid())
    telemetry.shutdown()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(telemetry.prometheus_url, timeout=2)
