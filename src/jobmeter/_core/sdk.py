"""configure(): a MeterProvider from OTEL_* settings, and the handle that owns it."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from jobmeter._core import fork, otel_private, reset, signals, threads
from jobmeter._core.config import Settings, resolve
from jobmeter._core.endpoint_reservation import Reservation
from jobmeter._core.environment import reject
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.exporters import TrackedExporter, periodic_reader, push_exporter
from jobmeter._core.prometheus import PrometheusEndpoint
from jobmeter._core.resource import build_resource
from jobmeter._core.shared_endpoint import open_shared
from jobmeter._core.shared_member import SharedMember, shared_directory
from jobmeter._core.telemetry import Telemetry

_log = logging.getLogger("jobmeter")


_lock = threading.Lock()
_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The handle of the last configure(), if any."""
    return _current


def configure(*, metric_readers: Sequence[MetricReader] = (), **overrides: Any) -> Telemetry:
    """Set up OpenTelemetry metrics from the OTEL_* environment, without an agent.

    Reads the variables listed in docs/configuration.md; keyword arguments of
    the same meaning override them. With OTEL_METRICS_EXPORTER unset, serves a
    Prometheus endpoint on localhost:8000. Idempotent: a second call returns the
    first handle. If the application installed its own global MeterProvider,
    jobmeter uses it, starts nothing and warns once.

    Args:
        metric_readers: extra readers to attach (an InMemoryMetricReader in tests).
        **overrides: ``service_name``, ``service_version``, ``resource_attributes``,
            ``exporters``, ``otlp_endpoint``, ``otlp_protocol``, ``otlp_headers``,
            ``otlp_timeout_ms``, ``otlp_temporality``, ``export_interval_ms``,
            ``export_timeout_ms``, ``prometheus_host``, ``prometheus_port``,
            ``prometheus_certfile``, ``prometheus_keyfile``,
            ``prometheus_client_cafile``, ``prometheus_basic_auth``,
            ``prometheus_basic_auth_file``, ``prometheus_default_registry``,
            ``price_per_kwh``,
            ``price_per_cpu_hour``, ``price_per_gpu_hour``, ``price_per_gb_hour``,
            ``currency``, ``disabled`` and ``strict``.

    Returns:
        The :class:`Telemetry` handle: ``shutdown()``, ``force_flush()`` and
        the bound Prometheus address. Shutdown also runs at interpreter exit.

    Raises:
        ConfigurationError: a keyword argument is invalid; in strict mode
            (``JOBMETER_STRICT=true`` or ``strict=True``) also an environment
            value that cannot be used, a busy port or a TLS file that does not
            load, each of which is otherwise one warning.
    """
    return _configure(metric_readers, overrides, host=False)


def configure_host(
    reservation: Reservation | None = None, settings: Settings | None = None, **overrides: Any
) -> Telemetry:
    """configure() for ``jobmeter run``: the endpoint is shared with the command's processes.

    ``Telemetry.shared_environment`` then names what the command needs to join.
    With a ``reservation`` (made before the command started) the endpoint serves
    its port and directory, with its settings; ``settings`` resolved already
    stand for the overrides (no variable is read, or warned about, twice).
    """
    if reservation is not None:
        settings = reservation.settings
    return _configure((), overrides, host=True, settings=settings, reservation=reservation)


def _configure(
    metric_readers: Sequence[MetricReader],
    overrides: dict[str, Any],
    *,
    host: bool,
    settings: Settings | None = None,
    reservation: Reservation | None = None,
) -> Telemetry:
    global _current
    with _lock:
        if _current is not None and not _current.is_shutdown:
            if overrides or metric_readers:
                _log.warning("jobmeter: configure() was called already; new arguments ignored")
            return _current
        if settings is None:
            settings = resolve(overrides)
        existing = otel_private.installed_provider()
        if _current is not None and existing is _current.meter_provider:
            # OpenTelemetry allows one global MeterProvider per process, and ours is shut down.
            _log.warning(
                "jobmeter: configure() after shutdown() cannot install a new MeterProvider "
                "(OpenTelemetry allows one per process); nothing more is exported. "
                "Tests can call jobmeter.testing.reset()."
            )
            return _current
        if existing is not None:
            if metric_readers:
                _log.warning(
                    "jobmeter: metric_readers were not attached: the application's own "
                    "MeterProvider is in use; attach them to it instead"
                )
            _log.warning(
                "jobmeter: the application installed its own MeterProvider; jobmeter uses it "
                "as it is and starts no exporter of its own"
            )
            _current = Telemetry(settings, existing, owns_provider=False)
            return _current
        if settings.disabled:
            settings = replace(settings, exporters=("none",))
            _current = Telemetry(settings, NoOpMeterProvider(), owns_provider=False)
            return _current
        _current = _build(settings, metric_readers, host, reservation)
        metrics.set_meter_provider(_current.meter_provider)
        atexit.register(_current.shutdown)
        fork.on_fork_in_child_weak(_current, "_after_fork_in_child")
        if _current._push or isinstance(_current._prometheus, SharedMember):
            signals.on_sigterm(_current.shutdown, signals.TELEMETRY)
        return _current


def _endpoint(
    settings: Settings, host: bool, reservation: Reservation | None
) -> PrometheusEndpoint | SharedMember | None:
    """The shared endpoint of the run this process is in, else its own; None if it cannot be."""
    if reservation is not None:
        return PrometheusEndpoint(
            settings.prometheus_host, settings.prometheus_port, tls=reservation.tls,
            basic_auth=settings.prometheus_basic_auth, shared=True, listener=reservation.listener,
            default_registry=settings.prometheus_default_registry, strict=settings.strict,
        )  # fmt: skip
    joined = shared_directory(settings)
    if joined is not None:
        try:
            return SharedMember(
                *joined, default_registry=settings.prometheus_default_registry,
                strict=settings.strict,
            )  # fmt: skip
        except OSError as error:
            _log.warning("jobmeter: cannot join the shared endpoint at %s (%s); serving an "
                         "endpoint of this process's own", joined[0], error)  # fmt: skip
    try:
        return PrometheusEndpoint.from_settings(settings, shared=host)
    except ConfigurationError as error:
        reject(error, "the job goes on without the Prometheus endpoint", strict=settings.strict)
        return None


def _build(
    settings: Settings,
    extra_readers: Sequence[MetricReader],
    host: bool,
    reservation: Reservation | None,
) -> Telemetry:
    endpoint = None
    hosted = None
    readers: list[MetricReader] = []
    push: list[tuple[TrackedExporter, MetricReader]] = []
    if "prometheus" in settings.exporters:
        endpoint = _endpoint(settings, host, reservation)
        if endpoint is not None:
            readers.append(endpoint.reader)
    try:
        for name in settings.exporters:
            if name in ("otlp", "console"):
                with threads.masked():  # the reader's export thread, gRPC's own
                    exporter = push_exporter(name, settings)
                    reader = periodic_reader(exporter, settings)
                threads.mask_threads_across_fork()  # after the reader's fork hook
                push.append((exporter, reader))
                readers.append(reader)
        readers.extend(extra_readers)
        provider = MeterProvider(
            metric_readers=readers, resource=build_resource(settings), shutdown_on_exit=False
        )
        if host and isinstance(endpoint, PrometheusEndpoint):
            hosted = reservation.shared if reservation else open_shared(settings, endpoint.url)
            if hosted is not None:
                endpoint.hosted = hosted.merged
    except BaseException:
        if endpoint is not None:
            endpoint.close()
        raise
    if endpoint is not None:
        endpoint.start()  # now that the reader is registered: no scrape reads an empty page
    return Telemetry(
        settings, provider, owns_provider=True, prometheus=endpoint, push=push, hosted=hosted
    )


def _forget_telemetry() -> None:
    """Shut the telemetry down and let OpenTelemetry accept a new global provider."""
    global _current
    with _lock:
        telemetry, _current = _current, None
    if telemetry is not None:
        telemetry.shutdown()
        atexit.unregister(telemetry.shutdown)
    signals.remove_sigterm_handler()
    otel_private.reset_api_globals()


# Registered when the SDK set-up is imported: a provider the application installed
# (without configure()) is forgotten too.
reset.on_reset(_forget_telemetry, reset.TELEMETRY)
