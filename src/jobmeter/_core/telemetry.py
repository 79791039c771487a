"""The Telemetry handle: what configure() set up, its flush, shutdown and fork hooks.

Shutdown never raises and never holds the job past the export timeout plus
GRACE_S: the SDK's own calls run in a daemon thread that is given up on
(opentelemetry-python #3309, #2663, #5574).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence

from opentelemetry.metrics import MeterProvider as APIMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

from jobmeter._core import otel_private, waits
from jobmeter._core.config import Settings
from jobmeter._core.exporters import TrackedExporter, push_exporter
from jobmeter._core.prometheus import PrometheusEndpoint
from jobmeter._core.shared_endpoint import SharedEndpoint
from jobmeter._core.shared_member import SharedMember

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
        prometheus: PrometheusEndpoint | SharedMember | None = None,
        push: Sequence[tuple[TrackedExporter, MetricReader]] = (),
        hosted: SharedEndpoint | None = None,
    ) -> None:
        self.settings = settings
        self.meter_provider = meter_provider
        self.owns_provider = owns_provider
        self._prometheus = prometheus
        self._push = list(push)
        self._hosted = hosted
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
    def shared_environment(self) -> dict[str, str]:
        """What a command's environment needs to join this endpoint (empty: it cannot)."""
        return {} if self._hosted is None else self._hosted.environment

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
        if isinstance(self._prometheus, SharedMember):
            # Its last words need the reader, before the provider shuts down.
            waits.quietly(self._prometheus.close)
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
        if self._hosted is not None:
            waits.quietly(self._hosted.close)
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
        self._hosted = None  # the parent's to serve and to remove
        if isinstance(self._prometheus, SharedMember):
            self._prometheus.rejoin_in_child()
        elif self._prometheus is not None:
            # The parent keeps serving its port; the child must not hold it open.
            self._prometheus.abandon_in_child()
            self._prometheus = None
        _shutdown_at_worker_exit(self)

    def __repr__(self) -> str:
        return (
            f"Telemetry(exporters={self.settings.exporters!r}, "
            f"prometheus_url={self.prometheus_url!r}, owns_provider={self.owns_provider})"
        )


def _shutdown_at_worker_exit(telemetry: Telemetry) -> None:
    """In a multiprocessing worker, shut down as it ends: it ends with os._exit(), past atexit."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None:
        return
    # multiprocessing runs its finalizers as a worker ends, but clears them right after the
    # fork, after this hook: an after-forker runs later and registers the finalizer then.
    mp_util.register_after_fork(
        telemetry, lambda t: mp_util.Finalize(t, t.shutdown, exitpriority=0)
    )


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
