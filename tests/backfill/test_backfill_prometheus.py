"""A backfill spread over worker processes adds up exactly in a real Prometheus."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

import jobmeter
from _support.backfill import FakeClock, worker
from _support.prometheus import PrometheusServer
from jobmeter.backfill import Backfill

pytestmark = pytest.mark.prometheus
WORKERS = 4
ITEMS = 1000


def test_four_worker_processes_sum_to_the_exact_total(tmp_path: Path) -> None:
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    procs = [worker("serve", "--items", str(ITEMS), **pipes) for _ in range(WORKERS)]
    try:
        targets = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.communicate(timeout=30)
            targets.append(f"127.0.0.1:{json.loads(line)['port']}")
        with PrometheusServer(tmp_path, targets, scrape_interval="1s") as prometheus:
            selector = 'jobmeter_backfill_name="orders",jobmeter_backfill_outcome="done"'
            summed = f"sum(jobmeter_backfill_items_total{{{selector}}})"
            prometheus.wait_for(
                f"count(jobmeter_backfill_items_total{{{selector}}})",
                lambda samples: bool(samples) and samples[0][1] == WORKERS,
            )
            ((_, total),) = prometheus.query(summed)
            assert total == WORKERS * ITEMS
            per_process = prometheus.query(f"jobmeter_backfill_items_total{{{selector}}}")
            assert sorted(value for _, value in per_process) == [ITEMS] * WORKERS
            assert len({labels["instance"] for labels, _ in per_process}) == WORKERS
            ids = prometheus.query("count(count by (service_instance_id) (target_info))")
            assert ids[0][1] == WORKERS
            ((_, planned),) = prometheus.query(
                'sum(jobmeter_backfill_items_planned{jobmeter_backfill_name="orders"})'
            )
            assert planned == WORKERS * ITEMS
            ((_, progress),) = prometheus.query(
                'sum(jobmeter_backfill_items_total{jobmeter_backfill_name="orders"}) / '
                'sum(jobmeter_backfill_items_planned{jobmeter_backfill_name="orders"})'
            )
            assert progress == 1.0
            ((_, eta),) = prometheus.query(
                '(sum(jobmeter_backfill_items_planned{jobmeter_backfill_name="orders"}) - '
                'sum(jobmeter_backfill_items_total{jobmeter_backfill_name="orders"})) / '
                'sum(jobmeter_backfill_rate_per_second{jobmeter_backfill_name="orders"})'
            )
            assert eta == 0.0
            by_outcome = prometheus.query(
                "sum by (jobmeter_backfill_outcome) "
                '(jobmeter_backfill_items_total{jobmeter_backfill_name="orders"})'
            )
            assert {labels["jobmeter_backfill_outcome"]: v for labels, v in by_outcome} == {
                "done": WORKERS * ITEMS,
                "skipped": 0,
            }
    finally:
        for proc in procs:
            proc.communicate(timeout=30)


def test_prometheus_names_of_every_backfill_metric() -> None:
    """The names docs/backfill.md gives are those a real scrape shows."""
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    clock = FakeClock()
    bf = Backfill("names", total=10, clock=clock, progress=False)
    for _ in bf.track(range(3)):
        pass
    clock.advance(1.0)
    bf.failed(error_type="E")
    bf.retry("timeout")
    bf.rate_limited(1)
    with bf.batch(5):
        pass
    bf.queue_size(2)
    bf.request("GET", "http://example.com", status_code=200, duration=0.1)
    bf.close()
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
        text = response.read().decode()
    names = {line.split("{")[0] for line in text.splitlines() if "names" in line}
    assert names >= {
        "jobmeter_backfill_items_total", "jobmeter_backfill_items_planned",
        "jobmeter_backfill_progress", "jobmeter_backfill_rate_per_second",
        "jobmeter_backfill_eta_seconds", "jobmeter_backfill_retries_total",
        "jobmeter_backfill_rate_limit_hits_total", "jobmeter_backfill_queue_size",
        "jobmeter_backfill_start_timestamp_seconds",
        "jobmeter_backfill_last_success_timestamp_seconds",
        "jobmeter_backfill_item_duration_seconds_bucket",
        "jobmeter_backfill_batch_duration_seconds_bucket", "jobmeter_backfill_batch_size_bucket",
        "jobmeter_backfill_rate_limit_retry_after_seconds_bucket",
        "http_client_request_duration_seconds_bucket",
    }  # fmt: skip
