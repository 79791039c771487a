"""The program's own prometheus_client metrics (the default REGISTRY) on jobmeter's endpoint.

Real prometheus_client metrics on ``prometheus_client.REGISTRY``, incremented by
known amounts, served beside jobmeter's series on a free port: a real
Prometheus answers PromQL with the known values, and the pages parse with
prometheus_client's text and OpenMetrics parsers. Whatever a test registers on
REGISTRY it unregisters (the tests share one process).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import jobmeter
from _support.prometheus import PrometheusServer
from jobmeter import ConfigurationError, testing

OPENMETRICS = "application/openmetrics-text;version=1.0.0"
DURATION = "jobmeter_operation_duration_seconds"
# What prometheus_client's own collectors (process, gc, platform) serve on this machine.
BUILTINS = (
    prometheus_client.PROCESS_COLLECTOR,
    prometheus_client.GC_COLLECTOR,
    prometheus_client.PLATFORM_COLLECTOR,
)
BUILTIN_FAMILIES = {m.name for c in BUILTINS for m in c.collect()}


@pytest.fixture
def registered() -> Iterator[list[Any]]:
    """Collectors a test puts on REGISTRY; all taken off again afterwards."""
    found: list[Any] = []
    yield found
    for collector in found:
        REGISTRY.unregister(collector)


def _user_metrics(registered: list[Any]) -> None:
    """A counter (book 7, pen 2.5) and a histogram (0.1, 0.2, 3.0) of the program's own."""
    orders = prometheus_client.Counter("shop_orders", "Orders taken.", ["kind"])
    checkout = prometheus_client.Histogram(
        "shop_checkout_seconds", "Checkout time.", buckets=(0.25, 1.0, 5.0)
    )
    registered += [orders, checkout]
    for _ in range(7):
        orders.labels("book").inc()
    orders.labels("pen").inc(2.5)
    for seconds in (0.1, 0.2, 3.0):
        checkout.observe(seconds)


def _configure(**options: Any) -> str:
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0, **options)
    assert telemetry.prometheus_url is not None
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(4):
        with ops.measure("load"):
            pass
    return telemetry.prometheus_url


def _get(url: str, accept: str = "") -> tuple[int, str, str]:
    """(status, content type, body) of one scrape."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def _families(url: str) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """Both pages, parsed: (text families, OpenMetrics families, text page, OpenMetrics page)."""
    status, kind, text = _get(url)
    assert (status, kind.split(";")[0]) == (200, "text/plain")
    status, kind, om = _get(url, OPENMETRICS)
    assert (status, kind.split(";")[0]) == (200, "application/openmetrics-text")
    text_families = {f.name: f for f in parse_text(text)}
    om_families = {f.name: f for f in parse_om(om)}  # type: ignore[no-untyped-call]
    return text_families, om_families, text, om


def _valid(text: str, om: str) -> None:
    """No HELP or TYPE twice, no family split in two, one # EOF and it is the last line."""
    for page in (text, om):
        headers = [line for line in page.splitlines() if line.startswith("# TYPE ")]
        assert len(headers) == len(set(headers)), page
        names = [line.split(" ")[2] for line in headers]
        assert len(names) == len(set(names))
    assert om.count("# EOF") == 1
    assert om.endswith("# EOF\n")
    assert text.count("target_info{") == om.count("target_info{") == 1


def _value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    values = [
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (sample, labels, families[family].samples)
    return float(values[0])


@pytest.mark.prometheus
def test_prometheus_answers_the_programs_counter_and_histogram_beside_jobmeters(
    tmp_path: Path, registered: list[Any]
) -> None:
    """Prometheus scrapes the page (OpenMetrics, as it negotiates) and PromQL gives the counts."""
    _user_metrics(registered)
    url = _configure(service_name="shop")
    target = url.removeprefix("http://").removesuffix("/metrics")
    with PrometheusServer(tmp_path, [target], scrape_interval="1s") as prometheus:
        orders = prometheus.wait_for("shop_orders_total", lambda samples: len(samples) == 2)
        assert {labels["kind"]: value for labels, value in orders} == {"book": 7.0, "pen": 2.5}
        assert prometheus.query("shop_checkout_seconds_count")[0][1] == 3.0
        assert prometheus.query("shop_checkout_seconds_sum")[0][1] == pytest.approx(3.3)
        buckets = prometheus.query("shop_checkout_seconds_bucket")
        assert {labels["le"]: value for labels, value in buckets} == {
            "0.25": 2.0, "1.0": 2.0, "5.0": 3.0, "+Inf": 3.0,
        }  # fmt: skip
        [(_, load)] = prometheus.query(f'{DURATION}_count{{operation_name="load"}}')
        assert load == 4.0
        [(info, _)] = prometheus.query("target_info")
        assert info["service_name"] == "shop"
        [(_, up)] = prometheus.query('up{job="jobmeter"}')
        assert up == 1.0
        [health] = prometheus.targets()
        assert health["health"] == "up", health["lastError"]


def test_both_formats_hold_the_programs_families_with_its_values(registered: list[Any]) -> None:
    """Text 0.0.4 and OpenMetrics, each parsed by prometheus_client's own parser."""
    _user_metrics(registered)
    text_families, om_families, text, om = _families(_configure())
    _valid(text, om)
    assert _value(text_families, "shop_orders", "shop_orders_total", kind="book") == 7.0
    assert _value(om_families, "shop_orders", "shop_orders_total", kind="pen") == 2.5
    for families in (text_families, om_families):
        assert families["shop_checkout_seconds"].type == "histogram"
        assert _value(families, "shop_checkout_seconds", "shop_checkout_seconds_count") == 3.0
        assert _value(families, DURATION, f"{DURATION}_count", operation_name="load") == 4.0
    # No label of jobmeter's (scope, resource) is added to the program's series.
    assert {k for s in om_families["shop_orders"].samples for k in s.labels} == {"kind"}


def test_a_family_with_one_of_jobmeters_names_is_left_out_with_one_warning(
    registered: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A counter named as jobmeter's duration histogram: the histogram is served, once, valid."""
    clashing = prometheus_client.Counter(DURATION, "Not jobmeter's.")
    clashing.inc(99)
    registered.append(clashing)
    _user_metrics(registered)
    url = _configure()
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        for _ in range(3):
            text_families, om_families, text, om = _families(url)
    _valid(text, om)
    for families in (text_families, om_families):
        assert families[DURATION].type == "histogram"
        assert _value(families, DURATION, f"{DURATION}_count", operation_name="load") == 4.0
        assert _value(families, "shop_orders", "shop_orders_total", kind="book") == 7.0
    assert "99.0" not in text
    assert f"{DURATION}_total" not in om
    warnings = [r for r in caplog.records if DURATION in r.getMessage()]
    assert len(warnings) == 1  # six scrapes, one warning
    assert warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert f"registry's counter {DURATION} takes a name of jobmeter's histogram {DURATION}" in (
        message
    )
    assert "the endpoint serves jobmeter's histogram and leaves the registry's counter out" in (
        message
    )
    assert "JOBMETER_PROMETHEUS_DEFAULT_REGISTRY=false" in message


def test_the_registrys_target_info_gives_way_to_jobmeters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """REGISTRY.set_target_info(): one target_info on the page, jobmeter's, and one warning."""
    REGISTRY.set_target_info({"team": "shop"})
    try:
        url = _configure(service_name="etl")
        with caplog.at_level(logging.WARNING, logger="jobmeter"):
            _, om_families, text, om = _families(url)
            _families(url)
    finally:
        REGISTRY.set_target_info(None)
    _valid(text, om)
    [info] = om_families["target"].samples
    assert info.labels["service_name"] == "etl"
    assert "team" not in info.labels
    assert [r.getMessage() for r in caplog.records if "target" in r.getMessage()] == [
        "jobmeter: the default prometheus_client registry's info target takes a name of "
        "jobmeter's info target; the endpoint serves jobmeter's info and leaves the registry's "
        "info out (rename the info, or set JOBMETER_PROMETHEUS_DEFAULT_REGISTRY=false to serve "
        "none of the registry)"
    ]


def test_strict_a_clash_fails_the_scrape_and_the_server_goes_on(
    registered: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Strict: HTTP 500 naming the clash (in both formats), one error logged; fixed, 200 again."""
    clashing = prometheus_client.Gauge("jobmeter_operation_active", "Not jobmeter's.")
    registered.append(clashing)
    url = _configure(strict=True)
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        answers = [_get(url), _get(url, OPENMETRICS), _get(url)]
    for status, kind, body in answers:
        assert status == 500
        assert kind.startswith("text/plain")
        assert body.startswith("JOBMETER_PROMETHEUS_DEFAULT_REGISTRY='true' is invalid: the "
                               "default prometheus_client registry's gauge "
                               "jobmeter_operation_active takes a name of jobmeter's gauge "
                               "jobmeter_operation_active; accepted: ")  # fmt: skip
    errors = [r for r in caplog.records if "jobmeter_operation_active" in r.getMessage()]
    assert [r.levelno for r in errors] == [logging.ERROR]
    REGISTRY.unregister(clashing)
    registered.remove(clashing)
    text_families, _, text, om = _families(url)
    _valid(text, om)
    assert text_families["jobmeter_operation_active"].type == "gauge"


def test_prometheus_clients_own_app_serves_the_registry_too(registered: list[Any]) -> None:
    """What the fast page leaves to prometheus_client (escaping that rewrites names, name[])."""
    clashing = prometheus_client.Counter(DURATION, "Not jobmeter's.")
    registered.append(clashing)
    _user_metrics(registered)
    url = _configure()
    status, _, dots = _get(url, f"{OPENMETRICS};escaping=dots")
    assert status == 200
    # Its own writer's names (which its own parser does not read back for counters).
    assert 'shop__orders__total{kind="book"} 7.0\n' in dots
    assert f"# TYPE {DURATION.replace('_', '__')} histogram\n" in dots
    assert f"{DURATION.replace('_', '__')}__total" not in dots
    assert dots.count("# EOF") == 1
    assert dots.endswith("# EOF\n")
    _, _, named = _get(f"{url}?name[]=shop_orders_total&name[]={DURATION}_count")
    samples = [
        (s.name, s.labels.get("kind"), s.value) for f in parse_text(named) for s in f.samples
    ]
    assert sorted(samples) == [
        (f"{DURATION}_count", None, 4.0),
        ("shop_orders_total", "book", 7.0),
        ("shop_orders_total", "pen", 2.5),
    ]


@pytest.mark.parametrize(
    ("environ", "options"),
    [({"JOBMETER_PROMETHEUS_DEFAULT_REGISTRY": "false"}, {}),
     ({}, {"prometheus_default_registry": False}),
     ({"JOBMETER_PROMETHEUS_DEFAULT_REGISTRY": "true"}, {"prometheus_default_registry": "false"})],
)  # fmt: skip
def test_switched_off_the_programs_metrics_are_not_served(
    registered: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    options: dict[str, Any],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    _user_metrics(registered)
    text_families, om_families, text, om = _families(_configure(**options))
    _valid(text, om)
    for families in (text_families, om_families):
        assert "shop_orders" not in families
        assert "shop_checkout_seconds" not in families
        assert _value(families, DURATION, f"{DURATION}_count", operation_name="load") == 4.0


@pytest.mark.parametrize("mode", ["true", "all"])
def test_prometheus_clients_own_collectors_are_served_with_all_only(
    monkeypatch: pytest.MonkeyPatch, registered: list[Any], mode: str
) -> None:
    """process_*, python_gc_*, python_info: left out by default, valid pages with ``all``."""
    monkeypatch.setenv("JOBMETER_PROMETHEUS_DEFAULT_REGISTRY", mode)
    _user_metrics(registered)
    url = _configure()
    # HostCollector's process.* beside prometheus_client's process_*: no name in common.
    host = jobmeter.HostCollector(
        cpu=False, memory=False, disk=False, network=False, filesystem=False, load=False,
        gpu=False, energy=False,
    )  # fmt: skip
    try:
        text_families, om_families, text, om = _families(url)
    finally:
        host.shutdown()
    _valid(text, om)
    assert {"process_resident_memory_bytes", "python_gc_objects_collected", "python_info"} <= (
        BUILTIN_FAMILIES
    )
    for families in (text_families, om_families):
        served = BUILTIN_FAMILIES & set(families)
        assert served == (BUILTIN_FAMILIES if mode == "all" else set())
        assert "process_memory_usage_bytes" in families  # jobmeter's own, either way
        assert _value(families, "shop_orders", "shop_orders_total", kind="book") == 7.0
    if mode == "all":
        [rss] = om_families["process_resident_memory_bytes"].samples
        assert rss.value > 1e6


def test_a_collector_that_raises_is_left_out_with_one_warning(
    registered: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def describe(self) -> list[Any]:
            return []

        def collect(self) -> list[Any]:
            raise RuntimeError("database gone")

    broken = Broken()
    REGISTRY.register(broken)
    registered.append(broken)
    _user_metrics(registered)
    url = _configure()
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        text_families, _, text, om = _families(url)
    _valid(text, om)
    assert _value(text_families, "shop_orders", "shop_orders_total", kind="book") == 7.0
    [warning] = [r.getMessage() for r in caplog.records if "Broken" in r.getMessage()]
    assert "database gone" in warning


def test_a_value_that_cannot_be_used_warns_and_the_default_applies(
    registered: list[Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBMETER_PROMETHEUS_DEFAULT_REGISTRY", "maybe")
    _user_metrics(registered)
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        text_families, _, _, _ = _families(_configure())
    assert "shop_orders" in text_families
    [warning] = [r.getMessage() for r in caplog.records if "maybe" in r.getMessage()]
    assert "JOBMETER_PROMETHEUS_DEFAULT_REGISTRY='maybe' is invalid" in warning
    assert "accepted: true, false, all" in warning
    testing.reset()
    monkeypatch.setenv("JOBMETER_STRICT", "true")
    with pytest.raises(ConfigurationError, match="JOBMETER_PROMETHEUS_DEFAULT_REGISTRY='maybe'"):
        jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    with pytest.raises(ConfigurationError, match="prometheus_default_registry='sometimes'"):
        jobmeter.configure(prometheus_default_registry="sometimes")
