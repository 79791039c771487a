"""The page written from the points is the page OTel's reader and prometheus_client write.

Each test gives one provider two readers: OTel's own ``PrometheusMetricReader``
(the reference, formatted by prometheus_client) and jobmeter's ``ScrapeReader``
(the page written by ``exposition``). Both collect the same instruments, and
the pages must be equal byte for byte, in text format 0.0.4 and OpenMetrics,
and parse to the same families with prometheus_client's parsers. What the
writer does not write (names prometheus_client escapes, exponential
histograms) is served by prometheus_client's app.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import jobmeter
from jobmeter import testing
from jobmeter._core.prometheus import IDENTITY
from jobmeter._core.scrape_page import ScrapeReader, scrape_app


class Pair:
    """One provider, read by OTel's reader and by jobmeter's."""

    def __init__(self, resource_filter: Callable[[str], bool] | None = None, **options: Any):
        self.reference_registry = CollectorRegistry(auto_describe=False)
        self.registry = CollectorRegistry(auto_describe=False)
        self.reference = PrometheusMetricReader(
            registry=self.reference_registry, resource_attribute_filter=resource_filter
        )
        self.reader = ScrapeReader(self.registry, resource_filter)
        self.reader.fast = True
        self.provider = MeterProvider(
            metric_readers=[self.reference, self.reader], shutdown_on_exit=False, **options
        )

    def pages(self, openmetrics: bool) -> tuple[bytes | None, bytes]:
        """(jobmeter's page, the reference page), collected one after the other."""
        ours = self.reader.page(openmetrics)
        write = openmetrics_latest if openmetrics else generate_latest
        return ours, write(self.reference_registry)


@pytest.fixture
def pair() -> Iterator[Pair]:
    testing.reset()
    found = Pair(resource=Resource({"service.name": "etl", "process.pid": 42, "k.x": True}))
    yield found
    found.provider.shutdown()
    testing.reset()


def _same(pair: Pair) -> bytes:
    text_ours, text_reference = pair.pages(False)
    om_ours, om_reference = pair.pages(True)
    assert text_ours is not None
    assert om_ours is not None
    assert text_ours.decode() == text_reference.decode()
    assert om_ours.decode() == om_reference.decode()
    assert list(parse_text(text_ours.decode())) == list(parse_text(text_reference.decode()))
    assert list(parse_om(om_ours.decode())) == list(parse_om(om_reference.decode()))  # type: ignore[no-untyped-call]
    return text_ours


def test_measured_operations_are_written_as_the_reference_writes_them(pair: Pair) -> None:
    ops = jobmeter.MetricsCollector("etl", meter_provider=pair.provider)
    other = jobmeter.MetricsCollector(
        "etl-2", attributes={"team": "data"}, meter_provider=pair.provider
    )
    for i in range(30):
        with ops.measure("load", {"table": f"t{i % 3}"}, peak_memory=True):
            pass
        with other.measure("load", resources=i % 2 == 0):
            pass
    with pytest.raises(KeyError), ops.measure("parse"):
        raise KeyError("x")
    page = _same(pair)
    assert b"jobmeter_operation_duration_seconds_bucket{" in page
    assert b"jobmeter_operation_cpu_time_seconds_total{" in page
    assert b'error_type="KeyError"' in page


def test_instruments_of_every_kind_and_awkward_names_and_values(pair: Pair) -> None:
    meter = pair.provider.get_meter("app", "1.2", "https://schema", attributes={"tier": "a"})
    plain = pair.provider.get_meter("bare")
    counter = meter.create_counter("requests_total", unit="{request}", description='a "b"\nc\\')
    counter.add(3, {"http.method": "GET", "1st": "x", "quote": 'a"b\\c\nd'})
    counter.add(1234567, {"http.method": "POST"})
    meter.create_up_down_counter("queue.depth", unit="1").add(-5, {"q": "in"})
    meter.create_gauge("temperature", unit="Cel").set(21.5, {"ok": True, "n": 3, "f": 0.5})
    meter.create_gauge("size", unit="By").set(10**20, {"list": ["a", "b"]})
    meter.create_gauge("ratio", unit="%").set(1e-7)
    plain.create_histogram(
        "latency", unit="ms", explicit_bucket_boundaries_advisory=[1, 2, 5]
    ).record(3, {"route": "/"})
    plain.create_histogram("signed", explicit_bucket_boundaries_advisory=[-1.0, 0.0, 1.0]).record(
        0.5
    )
    plain.create_histogram("default.buckets").record(2_000_000.0)

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(7, {"cpu": "0"}), Observation(8.25, {"cpu": "1"})]

    meter.create_observable_counter("cpu.seconds", [observe], unit="s")
    meter.create_observable_gauge("load", [observe])
    meter.create_observable_up_down_counter("threads", [observe], unit="{thread}")
    _same(pair)
    _same(pair)  # and again, from the texts kept


def test_a_family_of_two_scopes_keeps_the_reference_labels() -> None:
    """Two meters' metrics of one name share a family, labelled by the first one's keys."""
    pair = Pair()
    pair.provider.get_meter("a").create_counter("jobs").add(1, {"x": "1"})
    pair.provider.get_meter("b").create_counter("jobs").add(2, {"y": "2", "z": "3"})
    _same(pair)
    pair.provider.shutdown()


def test_shared_endpoint_labels_each_series_with_its_process() -> None:
    pair = Pair(
        IDENTITY.__contains__,
        resource=Resource({"service.instance.id": "abc", "process.pid": 7, "host": "h"}),
    )
    pair.provider.get_meter("m").create_counter("jobs").add(1)
    page = _same(pair)
    assert b'process_pid="7"' in page
    pair.provider.shutdown()


def test_nothing_recorded_is_an_empty_page() -> None:
    pair = Pair()
    assert pair.pages(False) == (b"", b"")
    assert pair.pages(True) == (b"# EOF\n", b"# EOF\n")
    pair.provider.shutdown()


def test_pages_it_cannot_write_are_left_to_prometheus_client() -> None:
    """A name that the text format keeps and OpenMetrics rewrites (a View may give one)."""
    pair = Pair(views=[View(instrument_name="odd", name="odd:name")])
    pair.provider.get_meter("m").create_counter("odd").add(1)
    assert pair.reader.page(False) is None
    for accept in ("text/plain", "application/openmetrics-text"):
        environ = {"HTTP_ACCEPT": accept}
        served = _serve(pair, environ)
        assert served[1] == _reference_served(pair, environ)[1]
        assert b"odd" in served[1]
    pair.provider.shutdown()


def _serve(pair: Pair, environ: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a GET of /metrics from the endpoint's app."""
    app = scrape_app(pair.reader, make_wsgi_app(pair.registry))
    found: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        found.update(headers, status=status)

    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    body = b"".join(app({**request, **environ}, start_response))
    return found, body


def _reference_served(pair: Pair, environ: dict[str, str]) -> tuple[dict[str, str], bytes]:
    found: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        found.update(headers, status=status)

    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    body = b"".join(make_wsgi_app(pair.reference_registry)({**request, **environ}, start_response))
    return found, body


PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "text/plain;version=0.0.4",
        "application/openmetrics-text;version=1.0.0",
        "application/openmetrics-text",
        PROMETHEUS_3,
        "text/plain;version=1.0.0;escaping=underscores",
        "application/openmetrics-text;version=1.0.0;escaping=dots",
    ],
)
@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_content_negotiation_and_gzip_as_prometheus_client(
    pair: Pair, accept: str, encoding: str
) -> None:
    ops = jobmeter.MetricsCollector("etl", meter_provider=pair.provider)
    with ops.measure("load", {"table": "orders"}):
        pass
    environ = {"HTTP_ACCEPT": accept, "HTTP_ACCEPT_ENCODING": encoding}
    headers, body = _serve(pair, environ)
    reference_headers, reference_body = _reference_served(pair, environ)
    # Only the fast page says its length; dots escaping rewrites names: prometheus_client's.
    assert ("Content-Length" in headers) == ("dots" not in accept)
    assert headers["Content-Type"] == reference_headers["Content-Type"]
    assert headers.get("Content-Encoding") == reference_headers.get("Content-Encoding")
    if encoding:
        body, reference_body = gzip.decompress(body), gzip.decompress(reference_body)
    assert body == reference_body


def test_name_filters_and_other_methods_are_prometheus_clients(pair: Pair) -> None:
    ops = jobmeter.MetricsCollector("etl", meter_provider=pair.provider)
    with ops.measure("load"):
        pass
    for environ in (
        {"QUERY_STRING": "name[]=jobmeter_operation_active"},
        {"REQUEST_METHOD": "OPTIONS"},
        {"PATH_INFO": "/favicon.ico"},
    ):
        assert _serve(pair, environ) == _reference_served(pair, environ)


def test_collections_for_anything_else_are_not_kept(pair: Pair) -> None:
    """A force_flush collects every reader: the fast reader keeps nothing of it."""
    ops = jobmeter.MetricsCollector("etl", meter_provider=pair.provider)
    with ops.measure("load"):
        pass
    for _ in range(5):
        pair.provider.force_flush()
    assert len(pair.reader._collector._metrics_datas) == 0
    page = pair.reader.page(False)
    assert page is not None
    # OTel's own reader serves each queued collection again: the same series six times.
    assert page.count(b"\njobmeter_operation_active{") == 1
    assert generate_latest(pair.reference_registry).count(b"\njobmeter_operation_active{") > 1
