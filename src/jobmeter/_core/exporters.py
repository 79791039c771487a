"""Push exporters (OTLP gRPC, OTLP HTTP, console) built from Settings."""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from jobmeter._core import otel_private
from jobmeter._core.config import Settings

_log = logging.getLogger("jobmeter")
_CUMULATIVE = AggregationTemporality.CUMULATIVE
_DELTA = AggregationTemporality.DELTA


def temporality(preference: str) -> dict[type, AggregationTemporality]:
    """The specification's OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE table."""
    if preference == "cumulative":
        return dict.fromkeys(_INSTRUMENTS, _CUMULATIVE)
    delta_for_async_counter = _DELTA if preference == "delta" else _CUMULATIVE
    return {
        Counter: _DELTA,
        ObservableCounter: delta_for_async_counter,
        Histogram: _DELTA,
        UpDownCounter: _CUMULATIVE,
        ObservableUpDownCounter: _CUMULATIVE,
        ObservableGauge: _CUMULATIVE,
    }


_INSTRUMENTS = (
    Counter,
    UpDownCounter,
    Histogram,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)


# The SDK's OTLP exporters log each failed attempt and each retry: hundreds of
# lines while a collector is down for an hour. jobmeter warns once per outage.
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


class _OutageFilter(logging.Filter):
    """Keeps the SDK exporters' first message of an export, and drops them during an outage."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[int] = set()  # id() of each TrackedExporter in an outage
        self.first_message: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        # The first says why (refused, TLS, 503); later ones say "aborting retry".
        if self.first_message is None:
            self.first_message = record.getMessage()
        return not self.failing  # the first failure's messages pass


_outage = _OutageFilter()


def _quiet_sdk_loggers() -> None:
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if _outage not in logger.filters:
            logger.addFilter(_outage)


def otlp_exporter(settings: Settings) -> MetricExporter:
    """An OTLP exporter; every option passed explicitly, in the unit it expects."""
    _quiet_sdk_loggers()
    timeout_s = settings.otlp_timeout_ms / 1000.0  # the Python exporters take seconds
    preferred = temporality(settings.otlp_temporality)
    headers = dict(settings.otlp_headers)
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=settings.otlp_endpoint,
            insecure=settings.otlp_endpoint.startswith("http://"),
            headers=headers or None,
            timeout=timeout_s,
            preferred_temporality=preferred,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=settings.otlp_endpoint,
        headers=headers or None,
        timeout=timeout_s,
        preferred_temporality=preferred,
    )


class TrackedExporter(MetricExporter):
    """Wraps an exporter to know whether the last export landed, and to warn once per outage.

    The SDK logs every failed export; a job whose collector is down for an
    hour would log hundreds of errors. Here the first failure warns, the
    recovery says so, and shutdown() can tell whether the final export was lost.
    """

    def __init__(self, inner: MetricExporter, target: str, name: str) -> None:
        super().__init__(**otel_private.preferences(inner))
        self.inner = inner
        self.target = target
        self.name = name  # its OTEL_METRICS_EXPORTER name, to build it again after a fork
        self.in_flight = False
        self.last_ok = True
        self.failures = 0
        self.last_error: str | None = None  # why the exports of this outage fail
        self.shut_down = False
        self.cut_off = False  # shut down while an export waited for an answer
        self._lock = threading.Lock()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.in_flight = True
        _outage.first_message = None
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as error:
            _log.debug("jobmeter: exporter raised", exc_info=True)
            result = MetricExportResult.FAILURE
            self._failed(str(error))
        else:
            if result is MetricExportResult.SUCCESS:
                self._succeeded()
            else:
                # The SDK returns FAILURE without a reason; its first log line says why.
                self._failed(_outage.first_message or "export failed")
        finally:
            self.in_flight = False
        return result

    def _failed(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            first = self.last_ok
            self.last_ok = False
            # The first failure's reason is the telling one; at shutdown the SDK only
            # says "aborting retry".
            self.last_error = reason if first else self.last_error
            _outage.failing.add(id(self))
        if first:
            _log.warning(
                "jobmeter: cannot export metrics to %s (%s); the job goes on and jobmeter "
                "retries at every interval", self.target, reason,
            )  # fmt: skip

    def _succeeded(self) -> None:
        with self._lock:
            recovered = not self.last_ok
            self.last_ok = True
            self.last_error = None
            _outage.failing.discard(id(self))
        if recovered:
            _log.warning("jobmeter: exporting metrics to %s works again", self.target)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.shut_down:
            return  # the SDK's exporters log a warning on a second shutdown
        self.shut_down = True
        self.cut_off = self.in_flight
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def push_exporter(name: str, settings: Settings) -> TrackedExporter:
    """The exporter behind one name of OTEL_METRICS_EXPORTER (other than prometheus/none)."""
    if name == "otlp":
        target = f"{settings.otlp_endpoint} ({settings.otlp_protocol})"
        return TrackedExporter(otlp_exporter(settings), target, name)
    if name == "console":
        return TrackedExporter(ConsoleMetricExporter(), "the console", name)
    raise ValueError(f"no push exporter named {name!r}")


def periodic_reader(exporter: MetricExporter, settings: Settings) -> PeriodicExportingMetricReader:
    """A reader exporting every OTEL_METRIC_EXPORT_INTERVAL ms."""
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.export_interval_ms,
        export_timeout_millis=settings.export_timeout_ms,
    )
