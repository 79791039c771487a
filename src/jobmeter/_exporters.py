"""Push exporters (OTLP gRPC, OTLP HTTP, console) built from Settings."""

from __future__ import annotations

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
    PeriodicExportingMetricReader,
)

from jobmeter._config import Settings

_CUMULATIVE = AggregationTemporality.CUMULATIVE
_DELTA = AggregationTemporality.DELTA


def temporality(preference: str) -> dict[type, AggregationTemporality]:
    """The specification's OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE table."""
    if preference == "cumulative":
        return {kind: _CUMULATIVE for kind in _INSTRUMENTS}
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


def otlp_exporter(settings: Settings) -> MetricExporter:
    """An OTLP exporter; every option passed explicitly, in the unit it expects."""
    timeout_s = settings.otlp_timeout_ms / 1000.0  # the Python exporters take seconds
    preferred = temporality(settings.otlp_temporality)
    headers = dict(settings.otlp_headers)
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=settings.otlp_endpoint,
            insecure=settings.otlp_endpoint.startswith("http://"),
            headers=headers or None,
            timeout=timeout_s,
            preferred_temporality=preferred,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=settings.otlp_endpoint,
        headers=headers or None,
        timeout=timeout_s,
        preferred_temporality=preferred,
    )


def push_exporter(name: str, settings: Settings) -> MetricExporter:
    """The exporter behind one name of OTEL_METRICS_EXPORTER (other than prometheus/none)."""
    if name == "otlp":
        return otlp_exporter(settings)
    if name == "console":
        return ConsoleMetricExporter()
    raise ValueError(f"no push exporter named {name!r}")


def periodic_reader(exporter: MetricExporter, settings: Settings) -> PeriodicExportingMetricReader:
    """A reader exporting every OTEL_METRIC_EXPORT_INTERVAL ms."""
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.export_interval_ms,
        export_timeout_millis=settings.export_timeout_ms,
    )
