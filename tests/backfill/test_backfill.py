"""Backfill in one process: counts, track(), rate and ETA, bad input, requests, labels, fork."""

from __future__ import annotations

import asyncio
import doctest
import json
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import requests
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint

import jobmeter
from _support.backfill import FakeClock, http_server, read_checkpoint
from jobmeter._core.errors import ConfigurationError
from jobmeter.backfill import Backfill
from jobmeter.backfill._snapshot import LABEL_LIMIT
from jobmeter.testing import InMemoryMetrics, in_memory

ITEMS = "jobmeter.backfill.items"
NAME = "jobmeter.backfill.name"


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as found:
        yield found


def _histograms(
    recorded: InMemoryMetrics, name: str, attributes: Mapping[str, object]
) -> list[HistogramDataPoint]:
    return [p for p in recorded.points(name, attributes) if isinstance(p, HistogramDataPoint)]


def _numbers(
    recorded: InMemoryMetrics, name: str, attributes: Mapping[str, object]
) -> list[NumberDataPoint]:
    return [p for p in recorded.points(name, attributes) if isinstance(p, NumberDataPoint)]


def _items(recorded: InMemoryMetrics, outcome: str, **attributes: str) -> float:
    return recorded.value(ITEMS, {"jobmeter.backfill.outcome": outcome, **attributes})


def test_is_a_metrics_collector_and_public() -> None:
    assert jobmeter.Backfill is Backfill
    assert issubclass(Backfill, jobmeter.MetricsCollector)
    assert repr(Backfill("shown", progress=False)) == "Backfill('shown')"


def test_module_examples_run() -> None:
    import jobmeter.backfill

    failures, tried = doctest.testmod(jobmeter.backfill)
    assert tried >= 2
    assert failures == 0


def test_counts_by_outcome_reach_the_metrics(recorded: InMemoryMetrics) -> None:
    bf = Backfill("orders-2024", total=365, attributes={"source": "s3"}, progress=False)
    bf.done()
    bf.done(9)
    bf.skipped(3)
    bf.failed(error_type=TimeoutError)
    bf.failed(2, error_type=KeyError("k"))
    bf.failed(error_type="http.503")
    bf.count("done", 5)
    bf.count("failed", 1, error_type="http.503")
    assert bf.completed == 15 + 3 + 5
    base = {NAME: "orders-2024", "source": "s3"}
    assert _items(recorded, "done", **base) == 15
    assert _items(recorded, "skipped", **base) == 3
    assert recorded.value(ITEMS, {**base, "error.type": "TimeoutError"}) == 1
    assert recorded.value(ITEMS, {**base, "error.type": "KeyError"}) == 2
    assert recorded.value(ITEMS, {**base, "error.type": "http.503"}) == 2
    assert recorded.value("jobmeter.backfill.items.planned", base) == 365
    assert recorded.value("jobmeter.backfill.progress", base) == pytest.approx(23 / 365)
    (scope,) = {m.name for _, m in recorded.metrics() if m.name == ITEMS}
    assert scope == ITEMS


def test_sixteen_threads_lose_no_count(recorded: InMemoryMetrics) -> None:
    bf = Backfill("threads", progress=False)
    start = threading.Barrier(16)

    def work() -> None:
        start.wait()
        for _ in range(1000):
            bf.done()

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bf.counts["done"] == 16_000
    assert _items(recorded, "done", **{NAME: "threads"}) == 16_000


def test_rate_and_eta_are_exact_for_a_scripted_sequence(recorded: InMemoryMetrics) -> None:
    """rate_k = S_k / W_k (docs/backfill.md); ETA = remaining / rate."""
    clock = FakeClock()
    bf = Backfill("paced", total=100, rate_window=10.0, clock=clock, progress=False)
    assert bf.rate is None
    assert bf.eta is None  # no rate yet

    s = w = 0.0
    count = 0
    for dt, items in [(2.0, 20), (3.0, 15), (100.0, 0), (1.0, 30)]:
        clock.advance(dt)
        bf.done(items)
        weight = math.exp(-dt / 10.0)
        s = weight * s + (1 - weight) * items / dt
        w = weight * w + (1 - weight)
        count += items
        assert bf.rate == pytest.approx(s / w, rel=1e-12)
        assert bf.eta == pytest.approx((100 - count) / (s / w), rel=1e-12)
    # While young the rate is the plain mean, later it follows the pace.
    assert s / w != pytest.approx(65 / 106)
    base = {NAME: "paced"}
    assert recorded.value("jobmeter.backfill.rate", base) == pytest.approx(s / w, rel=1e-12)
    assert recorded.value("jobmeter.backfill.eta", base) == pytest.approx(35 / (s / w), rel=1e-12)


def test_first_rate_is_the_plain_mean_and_eta_is_zero_at_the_end() -> None:
    clock = FakeClock()
    bf = Backfill("mean", total=40, rate_window=30.0, clock=clock, progress=False)
    clock.advance(4.0)
    bf.done(10)
    assert bf.rate == pytest.approx(2.5, rel=1e-12)
    assert bf.eta == pytest.approx(12.0, rel=1e-12)
    bf.done(30)
    assert bf.eta == 0.0
    assert bf.progress == 1.0


def test_counting_past_the_total_is_clamped_not_corrupted(recorded: InMemoryMetrics) -> None:
    """Documented clamp: progress stays at 1 and ETA at 0; the counts are kept as counted."""
    bf = Backfill("over", total=5, progress=False)
    bf.done(7)
    assert bf.counts["done"] == 7
    assert bf.progress == 1.0
    assert bf.eta == 0.0
    assert recorded.value("jobmeter.backfill.progress", {NAME: "over"}) == 1.0
    with pytest.raises(ValueError, match="at least the 7 items counted already"):
        bf.set_total(6)
    bf.set_total(7)
    assert bf.total == 7


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda bf: bf.done(-1), ValueError, "n must be >= 0 \\(counts only grow\\), got -1"),
        (lambda bf: bf.done(1.5), TypeError, "n must be a whole number"),
        (lambda bf: bf.done(True), TypeError, "n must be a whole number"),
        (lambda bf: bf.skipped(-2), ValueError, "n must be >= 0"),
        (lambda bf: bf.failed(-1), ValueError, "n must be >= 0"),
        (lambda bf: bf.failed(error_type=42), TypeError, "error_type must be a non-empty str"),
        (lambda bf: bf.count("lost"), ValueError, "outcome must be one of done, failed, skipped"),
        (lambda bf: bf.count("done", error_type="X"), ValueError, "for outcome 'failed' only"),
        (lambda bf: bf.retry(n=-1), ValueError, "n must be >= 0"),
        (lambda bf: bf.set_total(-5), ValueError, "total must be >= 0"),
        (lambda bf: bf.set_total(3), ValueError, "at least the 10 items counted already"),
        (lambda bf: bf.batch(-1), ValueError, "size must be >= 0"),
        (lambda bf: bf.queue_size(-3), ValueError, "size must be >= 0"),
        (lambda bf: bf.rate_limited(True), TypeError, "retry_after must be seconds"),
        (lambda bf: bf.request("GET"), ValueError, "needs url= or server_address="),
        (lambda bf: bf.request("GET", "/relative"), ValueError, "url must be absolute"),
        (lambda bf: bf.request("", "http://h"), ValueError, "method must be an HTTP method"),
        (
            lambda bf: bf.request(url="http://h", status_code=42, duration=0.1),
            ValueError,
            "status_code must be an HTTP status",
        ),
        (lambda bf: bf.request(url="http://h", duration=-1), ValueError, "duration must be"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    call: object, error: type[Exception], message: str
) -> None:
    bf = Backfill("strict", total=20, progress=False)
    bf.done(10)
    before = bf.counts
    with pytest.raises(error, match=message):
        call(bf)  # type: ignore[operator]
    assert bf.counts == before


def test_checkpoint_directory_is_made(tmp_path: Path) -> None:
    """A checkpoint under a directory that does not exist yet works, like `mkdir -p`."""
    path = tmp_path / "state" / "nested" / "orders.json"
    with Backfill("orders", total=2, checkpoint=path, progress=False) as bf:
        bf.done(2)
    assert json.loads(path.read_text())["counts"]["done"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ValueError, "name must be a non-empty string"),
        ({"total": -1}, ValueError, "total must be >= 0"),
        ({"total": 2.5}, TypeError, "total must be a whole number"),
        ({"unit": ""}, ValueError, "unit must be a non-empty string"),
        ({"attributes": ["a"]}, TypeError, "attributes must be a mapping"),
        ({"push_interval": 0}, ValueError, "push_interval must be a number of seconds > 0"),
        ({"rate_window": math.inf}, ValueError, "rate_window must be a number of seconds > 0"),
        ({"checkpoint": "/etc/hostname/x.json"}, ValueError, "cannot be made"),
        ({"pushgateway": "ftp://gw"}, ConfigurationError, "accepted: a URL such as http://"),
        ({"push_grouping_key": {"job": "x"}}, ValueError, "cannot set 'job'"),
    ],
)
def test_bad_arguments_are_clear_errors(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = {"name": "bad", "progress": False, **kwargs}
    with pytest.raises(error, match=message):
        Backfill(**arguments)  # type: ignore[arg-type]


def test_bad_pushgateway_variable_warns_and_nothing_is_pushed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBMETER_PUSHGATEWAY_URL", "gateway:9091")
    bf = Backfill("env", progress=False)
    bf.done()
    bf.close()
    warnings = [
        r.getMessage() for r in caplog.records if "JOBMETER_PUSHGATEWAY_URL" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "JOBMETER_PUSHGATEWAY_URL='gateway:9091' is invalid" in warnings[0]
    assert warnings[0].endswith("nothing is pushed")
    monkeypatch.setenv("JOBMETER_STRICT", "true")
    with pytest.raises(ConfigurationError, match="JOBMETER_PUSHGATEWAY_URL='gateway:9091'"):
        Backfill("strict", progress=False)
    with pytest.raises(ConfigurationError, match="pushgateway='gateway:9091'"):
        Backfill("argument", progress=False, pushgateway="gateway:9091")


def test_track_counts_each_item_when_its_body_ends(recorded: InMemoryMetrics) -> None:
    bf = Backfill("tracked", progress=False)
    seen = [(day, bf.counts["done"]) for day in bf.track(["d1", "d2", "d3"])]
    assert seen == [("d1", 0), ("d2", 1), ("d3", 2)]
    assert bf.counts["done"] == 3
    assert bf.total == 3  # from len(), like tqdm
    assert recorded.count("jobmeter.backfill.item.duration", {NAME: "tracked"}) == 3


def test_track_untimed_counts_the_same_without_item_durations(recorded: InMemoryMetrics) -> None:
    bf = Backfill("untimed", progress=False)
    for i in bf.track(range(5), timed=False):
        if i == 1:
            bf.skipped()

    def run() -> None:
        for i in bf.track(range(5), timed=False):
            if i == 2:
                raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        run()
    assert bf.counts["done"] == 4 + 2
    assert bf.counts["skipped"] == 1
    assert bf.counts["failed"] == {}  # held until the program goes on with the backfill
    for _ in bf.track([], timed=False):
        pass
    assert bf.counts["failed"] == {"_OTHER": 1}
    assert bf.failed_items() == [5 + 2]  # the second loop started at completed=5
    assert recorded.count("jobmeter.backfill.item.duration", {NAME: "untimed"}) == 0


def test_track_counts_an_item_left_by_an_exception_as_failed_once_the_program_goes_on() -> None:
    bf = Backfill("raises", progress=False)

    def run() -> None:
        for i in bf.track(range(10)):
            if i == 4:
                raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        run()
    assert bf.counts["done"] == 4
    assert bf.counts["failed"] == {}
    assert bf.completed == 4  # the checkpoint would stay before item 4
    tracked = bf.track(range(5, 10))  # the program went on: item 4 counts failed now
    assert bf.counts["failed"] == {"_OTHER": 1}
    assert bf.failed_items() == [4]
    assert list(tracked) == [5, 6, 7, 8, 9]
    assert (bf.counts["done"], bf.completed) == (9, 10)


def test_track_does_not_count_an_item_left_by_break_or_return() -> None:
    bf = Backfill("stops", progress=False)
    for i in bf.track(range(10)):
        if i == 2:
            break

    def first_big() -> int:
        for i in bf.track(range(10)):
            if i > 5:
                return i
        return -1

    assert first_big() == 6
    tracked = bf.track(range(10))
    assert next(tracked) == 0
    tracked.close()
    assert bf.counts["done"] == 2 + 6 + 0
    assert bf.counts["failed"] == {}


def test_exceptions_caught_around_nested_loops_are_failures_of_the_inner_item() -> None:
    outer = Backfill("outer", progress=False)
    inner = Backfill("inner", progress=False)
    for day in outer.track(range(3)):
        try:
            for hour in inner.track(range(4)):
                if day == 1 and hour == 2:
                    raise ValueError("bad hour")
        except ValueError:
            pass
    assert outer.counts["done"] == 3
    assert inner.counts["done"] == 4 + 2 + 4
    assert inner.counts["failed"] == {"_OTHER": 1}


def test_counts_made_in_the_body_replace_the_items_own() -> None:
    """Skipping inside a tracked loop, or counting the rows of a batch, is not counted twice."""
    bf = Backfill("claims", progress=False)
    for batch in bf.track([[1, 2, 3], [], [4, 5]]):
        if not batch:
            bf.skipped()
            continue
        bf.done(len(batch))
    assert bf.counts["done"] == 5
    assert bf.counts["skipped"] == 1
    for i in bf.track(range(3)):
        if i == 1:
            bf.failed(error_type="ValueError")
    assert bf.counts["done"] == 5 + 2
    assert bf.counts["failed"] == {"ValueError": 1}


def test_counts_from_other_threads_do_not_replace_the_items_own() -> None:
    bf = Backfill("helpers", progress=False)
    for _ in bf.track(range(5)):
        helper = threading.Thread(target=bf.done)
        helper.start()
        helper.join()
    assert bf.counts["done"] == 10


def test_retries_rate_limits_batches_and_queue(recorded: InMemoryMetrics) -> None:
    bf = Backfill("api", progress=False)
    bf.retry("timeout")
    bf.retry(ConnectionResetError, n=2)
    bf.retry()
    assert bf.rate_limited(2.5) == 2.5
    assert bf.rate_limited("7", reason="429") == 7.0
    http_date = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    wait = bf.rate_limited(http_date, reason="429")
    assert wait is not None
    assert 100 < wait <= 120
    assert bf.rate_limited("soon, maybe", reason="429") is None  # counted, no wait recorded
    assert bf.rate_limited(-4) == 0.0
    with bf.batch(500):
        pass
    with pytest.raises(KeyError), bf.batch(20):
        raise KeyError("x")
    bf.batch(3)
    queue = [1, 2, 3, 4]
    bf.queue_size(lambda: len(queue))
    base = {NAME: "api"}
    reason = "jobmeter.backfill.reason"
    assert recorded.value("jobmeter.backfill.retries", {**base, reason: "timeout"}) == 1
    assert (
        recorded.value("jobmeter.backfill.retries", {**base, reason: "ConnectionResetError"}) == 2
    )
    assert recorded.value("jobmeter.backfill.retries", {**base, reason: "_OTHER"}) == 1
    assert recorded.value("jobmeter.backfill.rate_limit.hits", {**base, reason: "429"}) == 3
    assert recorded.value("jobmeter.backfill.rate_limit.hits", {**base, reason: "_OTHER"}) == 2
    (after,) = _histograms(recorded, "jobmeter.backfill.rate_limit.retry_after", base)
    assert after.count == 4
    assert after.sum == pytest.approx(2.5 + 7 + wait + 0, abs=1.0)
    sizes = _histograms(recorded, "jobmeter.backfill.batch.size", base)
    assert [(p.count, p.sum) for p in sizes] == [(3, 523)]
    assert recorded.count("jobmeter.backfill.batch.duration", base) == 2
    assert recorded.count("jobmeter.backfill.batch.duration", {"error.type": "KeyError"}) == 1
    assert recorded.value("jobmeter.backfill.queue.size", base) == 4
    queue.append(5)
    assert recorded.value("jobmeter.backfill.queue.size", base) == 5


def test_distinct_labels_are_capped_with_one_warning(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    bf = Backfill("noisy", progress=False)
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        for i in range(LABEL_LIMIT + 50):
            bf.failed(error_type=f"error-{i}")
    warnings = [r for r in caplog.records if "distinct error types" in r.getMessage()]
    assert len(warnings) == 1
    points = _numbers(recorded, ITEMS, {NAME: "noisy", "jobmeter.backfill.outcome": "failed"})
    assert len(points) == LABEL_LIMIT + 1
    assert sum(p.value for p in points) == LABEL_LIMIT + 50
    (overflow,) = [p for p in points if (p.attributes or {}).get("otel.metric.overflow")]
    assert overflow.value == 50


def test_two_open_backfills_of_one_name_add_up(recorded: InMemoryMetrics) -> None:
    first = Backfill("shared", total=10, progress=False)
    second = Backfill("shared", total=30, progress=False)
    first.done(4)
    second.done(6)
    assert _items(recorded, "done", **{NAME: "shared"}) == 10
    assert recorded.value("jobmeter.backfill.items.planned", {NAME: "shared"}) == 40
    assert recorded.value("jobmeter.backfill.progress", {NAME: "shared"}) == 0.25
    first.close()
    second.close()
    again = Backfill("shared", progress=False)  # replaces the closed ones
    again.done(1)
    assert _items(recorded, "done", **{NAME: "shared"}) == 1


def test_a_backfill_of_an_earlier_test_provider_does_not_leak_into_the_next() -> None:
    """jobmeter.testing.in_memory() in users' tests: each test sees its own backfills only.

    A backfill made before configure() is published by the provider installed later.
    """
    Backfill("before", progress=False).done(5)  # OTel's proxy meter: no provider yet
    with in_memory() as first:
        Backfill("earlier", progress=False).done(2)
        assert _items(first, "done", **{NAME: "earlier"}) == 2
        assert _items(first, "done", **{NAME: "before"}) == 5
    with in_memory() as later:
        Backfill("later", progress=False).done(1)
        names = {p.attributes[NAME] for p in _numbers(later, ITEMS, {}) if p.attributes}
        assert names == {"before", "later"}


def test_close_and_with_set_the_last_success_only_on_success(recorded: InMemoryMetrics) -> None:
    ok = Backfill("ends-well", progress=False)
    assert recorded.points("jobmeter.backfill.last_success.timestamp", {NAME: "ends-well"}) == []
    ok.close()
    ok.close()  # idempotent
    (success,) = _numbers(recorded, "jobmeter.backfill.last_success.timestamp", {NAME: "ends-well"})
    assert success.value >= recorded.value("jobmeter.backfill.start.timestamp", {NAME: "ends-well"})
    with pytest.raises(RuntimeError), Backfill("ends-badly", progress=False) as bad:
        raise RuntimeError("boom")
    assert bad.closed
    assert recorded.points("jobmeter.backfill.last_success.timestamp", {NAME: "ends-badly"}) == []


def test_deadline_is_published_as_unix_seconds(recorded: InMemoryMetrics) -> None:
    """The deadline gauge is exactly the given time, for a number and for an aware datetime."""
    metric = "jobmeter.backfill.deadline.timestamp"
    Backfill("by-number", progress=False, deadline=1_767_225_600.5)
    two_hours_east = timezone(timedelta(hours=2))  # 04:00 there is 02:00 UTC
    Backfill("by-datetime", progress=False, deadline=datetime(2026, 1, 1, 4, tzinfo=two_hours_east))
    Backfill("no-deadline", progress=False)
    assert recorded.value(metric, {NAME: "by-number"}) == 1_767_225_600.5
    assert recorded.value(metric, {NAME: "by-datetime"}) == 1_767_232_800.0
    assert recorded.points(metric, {NAME: "no-deadline"}) == []
    (point,) = _numbers(recorded, metric, {NAME: "by-number"})
    assert dict(point.attributes or {}) == {NAME: "by-number"}
    # Two open at once with one identity are one series: the earlier deadline can be missed first.
    Backfill("shared", progress=False, deadline=2_000_000_000)
    Backfill("shared", progress=False, deadline=1_900_000_000)
    assert recorded.value(metric, {NAME: "shared"}) == 1_900_000_000


@pytest.mark.parametrize(
    ("deadline", "error", "message"),
    [
        (datetime(2026, 1, 1), ValueError, "deadline must be .* timezone-aware .* naive"),
        ("2026-01-01", TypeError, "deadline must be a Unix timestamp in seconds"),
        (True, TypeError, "deadline must be a Unix timestamp in seconds"),
        (math.nan, ValueError, "deadline must be .* > 0, got nan"),
        (-5, ValueError, "deadline must be .* > 0, got -5"),
        (1_767_225_600_000, ValueError, "looks like milliseconds"),
    ],
)
def test_bad_deadline_is_a_clear_error(
    deadline: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Backfill("bad", progress=False, deadline=deadline)  # type: ignore[arg-type]


def test_measure_works_and_carries_the_backfill_name(recorded: InMemoryMetrics) -> None:
    bf = Backfill("measured", progress=False)
    with bf.measure("load", {"table": "orders"}):
        pass
    assert (
        recorded.count("jobmeter.operation.duration", {NAME: "measured", "operation.name": "load"})
        == 1
    )


def test_request_records_the_semantic_convention_histogram(recorded: InMemoryMetrics) -> None:
    bf = Backfill("calls", progress=False)
    bf.request("get", "https://api.example.com/v1/orders?page=3", status_code=200, duration=0.2)
    bf.request("BREW", server_address="pot.local", status_code=418, duration=0.1)
    with pytest.raises(TimeoutError), bf.request("POST", "http://api.example.com:8080/x"):
        raise TimeoutError
    with bf.request("PUT", "https://api.example.com/x") as timed:
        timed.status_code = 503
    points = _histograms(recorded, "http.client.request.duration", {NAME: "calls"})
    attributes = sorted(
        (tuple(sorted((k, str(v)) for k, v in (p.attributes or {}).items() if k != NAME)))
        for p in points
    )
    assert attributes == sorted([
        (("http.request.method", "GET"), ("http.response.status_code", "200"),
         ("server.address", "api.example.com"), ("server.port", "443")),
        (("error.type", "418"), ("http.request.method", "_OTHER"),
         ("http.response.status_code", "418"), ("server.address", "pot.local")),
        (("error.type", "TimeoutError"), ("http.request.method", "POST"),
         ("server.address", "api.example.com"), ("server.port", "8080")),
        (("error.type", "503"), ("http.request.method", "PUT"),
         ("http.response.status_code", "503"), ("server.address", "api.example.com"),
         ("server.port", "443")),
    ])  # fmt: skip
    (get,) = [p for p in points if (p.attributes or {}).get("http.request.method") == "GET"]
    assert get.sum == pytest.approx(0.2)


def test_httpx_and_requests_hooks_time_real_requests(recorded: InMemoryMetrics) -> None:
    bf = Backfill("hooks", progress=False)
    with http_server() as base:
        port = int(base.rsplit(":", 1)[1])
        with httpx.Client(transport=bf.httpx_transport()) as client:
            assert client.get(f"{base}/ok").status_code == 200
            assert client.get(f"{base}/status/429").status_code == 429

        async def fetch() -> int:
            async with httpx.AsyncClient(transport=bf.httpx_async_transport()) as client:
                return (await client.post(f"{base}/status/500")).status_code

        assert asyncio.run(fetch()) == 500
        with requests.Session() as session:
            bf.instrument_requests(session)
            bf.instrument_requests(session)  # twice is once
            assert session.get(f"{base}/status/404").status_code == 404
        with requests.Session() as session, pytest.raises(requests.ConnectionError):
            bf.instrument_requests(session).get("http://127.0.0.1:1/", timeout=2)
    points = _histograms(recorded, "http.client.request.duration", {NAME: "hooks"})
    found = sorted(
        (p.attributes["http.request.method"], p.attributes.get("http.response.status_code", 0),
         p.attributes.get("error.type", ""), p.count) for p in points if p.attributes
    )  # fmt: skip
    assert found == [
        ("GET", 0, "requests.exceptions.ConnectionError", 1),
        ("GET", 200, "", 1),
        ("GET", 404, "404", 1),
        ("GET", 429, "429", 1),
        ("POST", 500, "500", 1),
    ]
    assert {p.attributes["server.address"] for p in points if p.attributes} == {"127.0.0.1"}
    assert {p.attributes["server.port"] for p in points if p.attributes} == {port, 1}


def test_a_forked_child_counts_from_zero_and_leaves_the_checkpoint_alone(tmp_path: Path) -> None:
    path = tmp_path / "parent.json"
    bf = Backfill("forked", total=10, checkpoint=path, progress=False)
    bf.done(5)
    before = path.read_text()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        ok = bf.counts["done"] == 0 and bf.total is None
        bf.done(3)
        ok = ok and bf.counts["done"] == 3
        bf.close()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_text() == before  # the child neither wrote nor closed it
    assert bf.counts["done"] == 5
    bf.close()
    assert read_checkpoint(path)["counts"]["done"] == 5
