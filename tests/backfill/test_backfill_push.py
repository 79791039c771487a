"""Backfill and a real Pushgateway: periodic and final pushes, last success, a gateway down."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _support.hanging_server import HangingTcpServer
from _support.ports import refused_endpoint_port
from _support.prometheus import PrometheusServer
from _support.pushgateway import Pushgateway
from jobmeter.backfill import Backfill

pytestmark = pytest.mark.prometheus
HOST = socket.gethostname()


def _samples(gateway: Pushgateway, job: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The pushed samples of group ``job``: (name, labels without job/instance) -> value."""
    found = {}
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            if sample.labels.get("job") != job or not sample.name.startswith("jobmeter_"):
                continue
            assert sample.labels["instance"] == HOST
            labels = {k: v for k, v in sample.labels.items() if k not in ("job", "instance")}
            found[(sample.name, frozenset(labels.items()))] = sample.value
    return found


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _done(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float | None:
    key = ("jobmeter_backfill_items_total", frozenset(
        {("jobmeter_backfill_name", name), ("jobmeter_backfill_outcome", "done")}))  # fmt: skip
    return samples.get(key)


def test_progress_is_pushed_while_running_and_at_the_end(tmp_path: Path) -> None:
    with Pushgateway(tmp_path) as gateway:
        bf = Backfill("nightly-orders", total=10, pushgateway=gateway.url, push_interval=0.1,
                      progress=False)  # fmt: skip
        bf.done(4)
        bf.failed(error_type="TimeoutError")
        _wait(lambda: _done(_samples(gateway, "nightly-orders"), "nightly-orders") == 4,
              "no periodic push arrived")  # fmt: skip
        running = _samples(gateway, "nightly-orders")
        assert not any(name.startswith("jobmeter_backfill_last_success") for name, _ in running)
        bf.done(5)
        bf.close()
        final = _samples(gateway, "nightly-orders")
        base = {("jobmeter_backfill_name", "nightly-orders")}
        assert _done(final, "nightly-orders") == 9
        failed = {*base, ("jobmeter_backfill_outcome", "failed"), ("error_type", "TimeoutError")}
        assert final[("jobmeter_backfill_items_total", frozenset(failed))] == 1
        assert final[("jobmeter_backfill_items_planned", frozenset(base))] == 10
        assert final[("jobmeter_backfill_progress", frozenset(base))] == 1.0
        success = final[("jobmeter_backfill_last_success_timestamp_seconds", frozenset(base))]
        started = final[("jobmeter_backfill_start_timestamp_seconds", frozenset(base))]
        assert started <= success <= time.time()


def test_a_failed_run_keeps_the_last_success_and_prometheus_sees_it(tmp_path: Path) -> None:
    with Pushgateway(tmp_path) as gateway:
        with Backfill("daily", pushgateway=gateway.url, progress=False) as first:
            first.done(3)
        base = frozenset({("jobmeter_backfill_name", "daily")})
        success = _samples(gateway, "daily")[
            ("jobmeter_backfill_last_success_timestamp_seconds", base)
        ]
        second = Backfill("daily", pushgateway=gateway.url, progress=False)

        def failing_run() -> None:
            with second:
                second.done(1)
                raise RuntimeError("upstream down")

        with pytest.raises(RuntimeError, match="upstream down"):
            failing_run()
        after = _samples(gateway, "daily")
        assert _done(after, "daily") == 1  # the new run's figures
        assert after[("jobmeter_backfill_last_success_timestamp_seconds", base)] == success

        with PrometheusServer(tmp_path, [gateway.address], honor_labels=True) as prometheus:
            result = prometheus.wait_for(
                'jobmeter_backfill_last_success_timestamp_seconds{job="daily"}',
                lambda samples: len(samples) == 1,
            )
            ((labels, value),) = result
            assert labels["instance"] == HOST
            assert value == success
            ((_, done),) = prometheus.query(
                'jobmeter_backfill_items_total{job="daily",jobmeter_backfill_outcome="done"}'
            )
            assert done == 1


def test_the_environment_variable_and_stable_extra_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pushgateway(tmp_path) as gateway:
        monkeypatch.setenv("JOBMETER_PUSHGATEWAY_URL", gateway.url)
        for worker in ("0", "1"):
            with Backfill("sharded", push_grouping_key={"worker": worker}, progress=False) as bf:
                bf.done(10 + int(worker))
        text = gateway.metrics_text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        done = [s for s in families["jobmeter_backfill_items"].samples
                if s.labels.get("job") == "sharded" and s.name.endswith("_total")
                and s.labels.get("jobmeter_backfill_outcome") == "done"]  # fmt: skip
        assert sorted((s.labels["worker"], s.value) for s in done) == [("0", 10), ("1", 11)]


def test_a_gateway_that_refuses_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{refused_endpoint_port()}"
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        bf = Backfill("unreachable", pushgateway=url, push_interval=0.05, progress=False)
        assert bf._outputs.pusher is not None
        for _ in range(10):
            bf.done()
            time.sleep(0.03)
        bf.close()
    assert bf.counts["done"] == 10
    warnings = [r for r in caplog.records if "Pushgateway" in r.getMessage()]
    assert len(warnings) == 1
    assert "cannot push to the Pushgateway" in warnings[0].getMessage()
    assert bf._outputs.pusher.pushes == 0


def test_a_gateway_that_hangs_does_not_hold_the_end(caplog: pytest.LogCaptureFixture) -> None:
    """The end push is abandoned after the push timeout: close() returns, with one warning."""
    with HangingTcpServer() as hanging, caplog.at_level(logging.WARNING, logger="jobmeter"):
        bf = Backfill("stuck", pushgateway=hanging.endpoint, push_timeout=0.3, progress=False)
        bf.done(2)
        bf.close()
        assert bf.closed
        assert hanging.connection_count >= 1
    warnings = [r for r in caplog.records if r.name == "jobmeter"]
    assert len(warnings) == 1
    assert "stuck" in warnings[0].getMessage()
