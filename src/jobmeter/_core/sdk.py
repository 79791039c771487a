"""configure(): a MeterProvider from OTEL_* settings, and the handle that owns it."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider as APIMeterProvider
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from jobmeter._core import fork, otel_private, reset, signals, waits
from jobmeter._core.config import Settings, resolve
from jobmeter._core.exporters import TrackedExporter, periodic_reader, push_exporter
from jobmeter._core.prometheus import PrometheusEndpoint
from jobmeter._core.resource import build_resource

_log = logging.getLogger("jobmeter")


class Telemetry:
    """What ``configure()`` set up: the MeterProvider, its endpoint and exporters.

    Attributes:
        settings: the resolved configuration.
        meter_provider: the provider collectors use (jobmeter's own, the
            application's if it had installed one, or a no-op one when
            ``OTEL_SDK_DISABLED=true``).
        owns_provider: whether jobmeter created the provider (and shuts it down).
    """

    def __init__(
        self,
        settings: Settings,
        meter_provider: APIMeterProvider,
        *,
        owns_provider: bool,
        prometheus: PrometheusEndpoint | None = None,
        push: Sequence[tuple[TrackedExporter, MetricReader]] = (),
    ) -> None:
        self.settings = settings
        self.meter_provider = meter_provider
        self.owns_provider = owns_provider
        self._prometheus = prometheus
        self._push = list(push)
        # Re-entrant: the SIGTERM handler may run shutdown() inside shutdown().
        self._lock = threading.RLock()
        self._shutdown = False

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        """(host, port) the Prometheus endpoint listens on, or None without one."""
        if self._prometheus is None:
            return None
        return (self._prometheus.host, self._prometheus.port)

    @property
    def prometheus_url(self) -> str | None:
        """The URL Prometheus scrapes, such as ``http://localhost:8000/metrics``."""
        return None if self._prometheus is None else self._prometheus.url

    @property
    def is_shutdown(self) -> bool:
        """Whether shutdown() has run."""
        return self._shutdown

    def force_flush(self, timeout_millis: float | None = None) -> bool:
        """Export what push exporters hold now; returns False if that did not finish in time.

        Never raises and never blocks longer than the timeout (default: the
        export timeout) plus half a second.
        """
        if not isinstance(self.meter_provider, MeterProvider) or not self.owns_provider:
            return True
        provider = self.meter_provider
        budget = self._budget(timeout_millis)
        return _bounded("force_flush", lambda: provider.force_flush(budget), budget)

    def shutdown(self, timeout_millis: float | None = None) -> bool:
        """Export the last data, stop the endpoint; idempotent, never raises.

        Returns within the export timeout plus half a second even when a
        collector refuses or hangs; returns False if the last export was lost.
        """
        with self._lock:
            if self._shutdown:
                return True
            self._shutdown = True
        ok = True
        if self.owns_provider and isinstance(self.meter_provider, MeterProvider):
            provider = self.meter_provider
            budget = self._budget(timeout_millis)
            # At exit one attempt is enough: no back-off while the job waits to end.
            for exporter, _ in self._push:
                otel_private.stop_retrying(exporter.inner)
            ok = _bounded("shutdown", lambda: provider.shutdown(budget), budget)
            for exporter, _ in self._push:
                if exporter.in_flight or not exporter.last_ok:
                    ok = False
                    why = (
                        f"no answer within {budget:.0f} ms"
                        if exporter.in_flight or exporter.cut_off
                        else f"exports fail: {exporter.last_error or 'unknown error'}"
                    )
                    _log.warning(
                        "jobmeter: the last export to %s was lost at shutdown (%s)",
                        exporter.target,
                        why,
                    )
                    if exporter.in_flight:
                        # Unblock an export still retrying, so that nothing outlives us long.
                        waits.quietly(exporter.shutdown)
        if self._prometheus is not None:
            waits.quietly(self._prometheus.close)
        return ok

    def _budget(self, timeout_millis: float | None) -> float:
        return self.settings.shutdown_budget_ms if timeout_millis is None else timeout_millis

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()  # a parent thread may have held it at fork time
        if not self.owns_provider or not isinstance(self.meter_provider, MeterProvider):
            return
        otel_private.reset_provider(self.meter_provider)
        # Inherited connections belong to the parent: each exporter starts afresh.
        fresh = []
        for exporter, reader in self._push:
            replacement = push_exporter(exporter.name, self.settings)
            otel_private.replace_exporter(reader, replacement)
            fresh.append((replacement, reader))
        self._push = fresh
        if self._prometheus is not None:
            # The parent keeps serving its port; the child must not hold it open.
            self._prometheus.abandon_in_child()
            self._prometheus = None

    def __repr__(self) -> str:
        return (
            f"Telemetry(exporters={self.settings.exporters!r}, "
            f"prometheus_url={self.prometheus_url!r}, owns_provider={self.owns_provider})"
        )


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
            ``prometheus_basic_auth_file`` and ``disabled``.

    Returns:
        The :class:`Telemetry` handle: ``shutdown()``, ``force_flush()`` and
        the bound Prometheus address. Shutdown also runs at interpreter exit.

    Raises:
        ConfigurationError: a value is invalid, or the Prometheus port is busy.
    """
    global _current
    with _lock:
        if _current is not None and not _current.is_shutdown:
            if overrides or metric_readers:
                _log.warning("jobmeter: configure() was called already; new arguments ignored")
            return _current
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
        _current = _build(settings, metric_readers)
        metrics.set_meter_provider(_current.meter_provider)
        atexit.register(_current.shutdown)
        fork.on_fork_in_child_weak(_current, "_after_fork_in_child")
        if _current._push:
            signals.on_sigterm(_current.shutdown, signals.TELEMETRY)
        return _current


def _build(settings: Settings, extra_readers: Sequence[MetricReader]) -> Telemetry:
    endpoint = None
    readers: list[MetricReader] = []
    push: list[tuple[TrackedExporter, MetricReader]] = []
    if "prometheus" in settings.exporters:
        endpoint = PrometheusEndpoint.from_settings(settings)
        readers.append(endpoint.reader)
    try:
        for name in settings.exporters:
            if name in ("otlp", "console"):
                exporter = push_exporter(name, settings)
                reader = periodic_reader(exporter, settings)
                push.append((exporter, reader))
                readers.append(reader)
        readers.extend(extra_readers)
        provider = MeterProvider(
            metric_readers=readers, resource=build_resource(settings), shutdown_on_exit=False
        )
    except BaseException:
        if endpoint is not None:
            endpoint.close()
        raise
    return Telemetry(settings, provider, owns_provider=True, prometheus=endpoint, push=push)


# How far past the export timeout shutdown() and force_flush() may run.
GRACE_S = 0.5


def _bounded(what: str, action: Callable[[], object], budget_ms: float) -> bool:
    """Run an SDK call in a daemon thread; give up after the budget plus GRACE_S."""
    outcome = waits.bounded(action, budget_ms / 1000.0 + GRACE_S, f"jobmeter-{what}")
    if not outcome.finished:
        _log.warning(
            "jobmeter: %s did not finish within %.0f ms (collector down or slow?); "
            "the last export is dropped and the program goes on",
            what,
            budget_ms,
        )
        return False
    if outcome.error is not None:
        _log.warning("jobmeter: %s failed: %s", what, outcome.error)
        return False
    return True


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
