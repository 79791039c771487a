"""The scrape page: OTel's Prometheus reader, with the page written by ``exposition``.

``ScrapeReader`` is OTel's ``PrometheusMetricReader`` (same temporality, same
registry collector, so anything that reads its registry gets what it always
got). An endpoint that serves it sets ``fast``: a scrape then takes the
collection itself and writes the page with ``Exposition``, in the format
prometheus_client's content negotiation picks (``choose_encoder``: text 0.0.4,
or OpenMetrics 1.0 for Prometheus), gzipped when asked. What the fast page
does not write is served by prometheus_client's own app, unchanged: other
methods, ``/favicon.ico``, ``name[]`` filters, escaping schemes that rewrite
names, and pages with names it would escape. Where the reader has a
``default`` (``default_registry``), the families of prometheus_client's
default registry follow jobmeter's on both pages.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import parse_qs

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted
from prometheus_client.openmetrics import exposition as openmetrics

from jobmeter._core.default_registry import DefaultRegistry, text_with_registry
from jobmeter._core.exposition import Exposition

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Escapings that leave legacy names as they are (every name the fast page writes is one).
_PLAIN_ESCAPINGS: Final = frozenset({openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8})
#: gzip level of the pages: 1 packs 5.3 MB in 8 ms (to 150 KB), prometheus_client's 9 in 117 ms.
GZIP_LEVEL: Final = 1


class ScrapeReader(PrometheusMetricReader):
    """OTel's Prometheus reader, whose collections a fast scrape page may take.

    Args:
        registry: the registry its collector joins, as OTel's reader does.
        resource_attribute_filter: resource attributes that label every series.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        resource_attribute_filter: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(registry=registry, resource_attribute_filter=resource_attribute_filter)
        self.exposition = Exposition(resource_attribute_filter)
        #: Set by an endpoint that serves ``page()``: collections made for anything else
        #: (a force_flush) are dropped, since no one would read them.
        self.fast = False
        #: What the pages serve of prometheus_client's default registry; None for nothing.
        self.default: DefaultRegistry | None = None
        self._taking = False
        self._passing = False
        self._taken: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if self._taking:
            self._taken = metrics_data
        elif self._passing or not self.fast:
            super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def page(
        self,
        openmetrics_format: bool,
        escaping: str = openmetrics.UNDERSCORES,
        *,
        mark: bool = False,
    ) -> bytes | None:
        """A collection as a page, or None: prometheus_client must write this one.

        The caller serializes scrapes (one collection at a time). ``mark``: a
        shared endpoint's text page (``DefaultRegistry.text``).
        """
        self._taking = True
        try:
            self.collect()
            data, self._taken = self._taken, None
        finally:
            self._taking = False
        default = self.default
        tail = None
        if default is not None:
            tail = functools.partial(
                default.text, openmetrics_format=openmetrics_format, escaping=escaping, mark=mark
            )
        return self.exposition.write(data, openmetrics_format, tail)

    def passing(self, call: Callable[[], Any]) -> Any:
        """Run ``call`` with collections going to prometheus_client's collector."""
        self._passing = True
        try:
            return call()
        finally:
            self._passing = False


def text_page(reader: ScrapeReader, registry: CollectorRegistry, *, mark: bool = False) -> bytes:
    """The page in text format 0.0.4, the default registry's too (the caller serializes scrapes)."""
    page = reader.page(False, mark=mark) if reader.fast else None
    if page is None:
        default = reader.default
        page = reader.passing(lambda: text_with_registry(registry, default, mark=mark))
    return page


def _format(encoder: Any) -> bool | None:
    """True for OpenMetrics, False for text, None for what only prometheus_client writes."""
    if encoder is generate_latest:
        return False
    if not isinstance(encoder, functools.partial):
        return None
    options = encoder.keywords
    if options.get("escaping") not in _PLAIN_ESCAPINGS:
        return None
    if encoder.func is openmetrics.generate_latest and options.get("version") == "1.0.0":
        return True
    return False if encoder.func is generate_latest and set(options) == {"escaping"} else None


def scrape_app(reader: ScrapeReader, fallback: WSGIApp) -> WSGIApp:
    """A WSGI app serving ``reader``'s fast page, and ``fallback`` for the rest."""
    reader.fast = True

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        page = None
        if (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("PATH_INFO") != "/favicon.ico"
            and "name[]" not in parse_qs(environ.get("QUERY_STRING", ""))
        ):
            encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
            openmetrics_format = _format(encoder)
            if openmetrics_format is not None:
                keywords = getattr(encoder, "keywords", {})
                page = reader.page(
                    openmetrics_format, keywords.get("escaping", openmetrics.UNDERSCORES)
                )
        if page is None:
            return list(reader.passing(lambda: fallback(environ, start_response)))
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            page = gzip.compress(page, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", [*headers, ("Content-Length", str(len(page)))])
        return [page]

    return app
