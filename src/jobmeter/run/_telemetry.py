"""``jobmeter run``'s own telemetry: reserved before the command starts, up once it runs.

Loading the OpenTelemetry SDK, the exporters and the HTTP server costs about
0.1 s of CPU, which a short command would wait for and every command would
share its first samples with. So, before the command starts, only what its
processes need is made, with the standard library (the settings, read and
warned about once; the endpoint's port and shared directory,
``_core.endpoint_reservation``); the SDK comes up in a thread
``START_AFTER_S`` after the command started. The run's instruments read the
latest sample, so the samples taken before are not lost: the first collection
reads the latest. A command that ends before then brings the SDK up only when
an exporter pushes (OTLP, console), for its final export; with a pull exporter
alone there would be nobody to read it, and the reservation is released.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from jobmeter._core import threads
from jobmeter._core.config import Settings, resolve
from jobmeter._core.endpoint_reservation import reserve
from jobmeter._core.environment import read
from jobmeter._core.parse import parse_pushgateway_url
from jobmeter._core.variables import PUSHGATEWAY_URL
from jobmeter._rundata.summary import RunResult
from jobmeter.run._sampler import TreeSample

if TYPE_CHECKING:
    from jobmeter._core.telemetry import Telemetry
    from jobmeter.run._live import RunCollector

_log = logging.getLogger("jobmeter")

#: How long the command runs before the wrapper loads its telemetry.
START_AFTER_S: Final = 0.2
#: Exporters that send data on their own: a run's final figures need them up.
PUSHING: Final = ("otlp", "console")


class WrapperTelemetry:
    """The wrapper's endpoint and exporters, and the run's live figures on them.

    Args:
        metrics: False starts no exporter and opens no endpoint (the final
            Pushgateway push still happens where one is configured).
        overrides: configure() keywords (the run's ``service_name``).
        attributes: the attributes of the run's figures.
    """

    def __init__(
        self, metrics: bool, overrides: Mapping[str, Any], attributes: Mapping[str, str]
    ) -> None:
        self._overrides = dict(overrides)
        self._attributes = dict(attributes)
        settings = resolve(self._overrides)
        # No exporter (OTEL_METRICS_EXPORTER=none, OTEL_SDK_DISABLED): nothing to load at all.
        exporting = metrics and not settings.disabled and not set(settings.exporters) <= {"none"}
        self.settings: Settings | None = settings if exporting else None
        self._reservation = reserve(settings) if exporting else None
        if settings.strict:
            # Strict: a Pushgateway URL that cannot be used stops the run before it starts.
            read(PUSHGATEWAY_URL, parse_pushgateway_url, None, "nothing is pushed")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._state = "waiting"  # then "cancelled" or "up"
        self._thread: threading.Thread | None = None
        self._latest: tuple[TreeSample, RunResult] | None = None
        self._live: RunCollector | None = None
        self._telemetry: Telemetry | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What the command's environment needs to join the wrapper's endpoint."""
        return {} if self._reservation is None else self._reservation.environment

    def on_sample(self, sample: TreeSample, result: RunResult) -> None:
        """Keep the latest sample for the run's figures; the first one starts the timer."""
        self._latest = (sample, result)
        live = self._live
        if live is not None:
            live.update(sample, result)
        elif self._thread is None and self.settings is not None:
            self._thread = threading.Thread(
                target=self._start_later, name="jobmeter-run-telemetry", daemon=True
            )
            threads.start(self._thread)

    def _start_later(self) -> None:
        self._wake.wait(START_AFTER_S)
        with self._lock:
            if self._state != "waiting":
                return
            self._state = "up"
        try:
            self._bring_up()
        except Exception as error:  # the command runs on: its figures are in the store
            _log.warning("jobmeter: the run's telemetry did not start (%s); the run is "
                         "recorded, but not exported", error)  # fmt: skip

    def _bring_up(self) -> None:
        from jobmeter._core.sdk import configure_host
        from jobmeter.run._live import RunCollector

        assert self.settings is not None
        self._telemetry = configure_host(
            self._reservation, settings=self.settings, **self._overrides
        )
        live = RunCollector(attributes=self._attributes)
        if self._latest is not None:
            live.update(*self._latest)
        self._live = live

    def finish(self, job: str, result: RunResult) -> None:
        """The final figures exported and pushed, then everything shut down."""
        with self._lock:
            started = self._state == "up"
            self._state = "up" if started else "cancelled"
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if not started and self.settings is not None:
            if any(name in PUSHING for name in self.settings.exporters):
                self._bring_up()  # the final export holds the command's figures
            elif self._reservation is not None:
                self._reservation.release()
        if self._live is not None and self._latest is not None:
            self._live.update(self._latest[0], result)
        if read(PUSHGATEWAY_URL, parse_pushgateway_url, None, "nothing is pushed") is not None:
            from jobmeter.run._live import push_result

            push_result(job, result)
        if self._telemetry is not None:
            self._telemetry.shutdown()
