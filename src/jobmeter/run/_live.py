"""What ``jobmeter run`` publishes: OTel metrics while it runs, a Pushgateway push at the end.

While the command runs, the latest sample is read by asynchronous instruments,
so Prometheus can scrape a long job on configure()'s endpoint. A batch job may
end between two scrapes: with ``JOBMETER_PUSHGATEWAY_URL`` set, the final
figures are pushed once at the end, grouped by job name and host (never by run
id: the Pushgateway keeps every group forever), with a last-success timestamp
only when the command succeeded.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from jobmeter._config import PUSHGATEWAY_URL
from jobmeter.collector import MetricsCollector
from jobmeter.run._runner import RunResult
from jobmeter.run._sampler import TreeSample

_log = logging.getLogger("jobmeter")


class RunCollector(MetricsCollector):
    """The figures of a running ``jobmeter run``, as asynchronous instruments."""

    def __init__(
        self,
        name: str = "jobmeter.run",
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        super().__init__(name, attributes=attributes, meter_provider=meter_provider)
        self._sample: TreeSample | None = None
        self._result: RunResult | None = None
        m = self.meter
        m.create_observable_counter(
            "jobmeter.run.cpu.time",
            [self._cpu],
            unit="s",
            description="CPU time of the whole process tree, by cpu.mode.",
        )
        m.create_observable_gauge(
            "jobmeter.run.cpu.busy",
            [self._busy],
            unit="{cpu}",
            description="CPUs the tree kept busy since the previous sample.",
        )
        m.create_observable_up_down_counter(
            "jobmeter.run.memory.usage",
            [self._memory],
            unit="By",
            description="Memory of the tree now, by jobmeter.memory.type (rss, pss).",
        )
        m.create_observable_gauge(
            "jobmeter.run.memory.peak",
            [self._peak],
            unit="By",
            description="The tree's peak memory so far (see run.json for its source).",
        )
        m.create_observable_counter(
            "jobmeter.run.disk.io",
            [self._io],
            unit="By",
            description="Storage bytes the tree read and wrote.",
        )
        m.create_observable_up_down_counter(
            "jobmeter.run.process.count",
            [self._processes],
            unit="{process}",
            description="Processes in the tree now.",
        )
        m.create_observable_up_down_counter(
            "jobmeter.run.thread.count",
            [self._threads],
            unit="{thread}",
            description="Threads in the tree now.",
        )

    def update(self, sample: TreeSample, result: RunResult) -> None:
        """Keep the latest sample and totals for the next collection."""
        self._sample, self._result = sample, result

    def _points(
        self, values: Iterable[tuple[float, dict[str, AttributeValue]]]
    ) -> list[Observation]:
        return [Observation(v, {**self.attributes, **extra}) for v, extra in values]

    def _cpu(self, options: CallbackOptions) -> Iterable[Observation]:
        r = self._result
        if r is None:
            return []
        return self._points([(r.cpu_user_seconds, {"cpu.mode": "user"}),
                             (r.cpu_system_seconds, {"cpu.mode": "system"})])  # fmt: skip

    def _busy(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self._sample is None else self._points([(self._sample.cpu_utilization, {})])

    def _memory(self, options: CallbackOptions) -> Iterable[Observation]:
        s = self._sample
        if s is None:
            return []
        return self._points([(s.rss, {"jobmeter.memory.type": "rss"}),
                             (s.pss, {"jobmeter.memory.type": "pss"})])  # fmt: skip

    def _peak(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self._result is None else self._points([(self._result.peak_memory_bytes, {})])

    def _io(self, options: CallbackOptions) -> Iterable[Observation]:
        r = self._result
        if r is None:
            return []
        return self._points([(r.read_bytes, {"disk.io.direction": "read"}),
                             (r.written_bytes, {"disk.io.direction": "write"})])  # fmt: skip

    def _processes(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self._sample is None else self._points([(self._sample.processes, {})])

    def _threads(self, options: CallbackOptions) -> Iterable[Observation]:
        return [] if self._sample is None else self._points([(self._sample.threads, {})])


def push_result(job: str, result: RunResult, url: str | None = None, timeout: float = 5.0) -> bool:
    """Push the run's final figures to the Pushgateway at ``url`` (or JOBMETER_PUSHGATEWAY_URL).

    Returns False, with a warning, when the gateway cannot be reached; never raises.
    """
    url = url or os.environ.get(PUSHGATEWAY_URL)
    if not url:
        return False
    registry = CollectorRegistry()

    def gauge(name: str, help_text: str, value: float) -> None:
        Gauge(name, help_text, registry=registry).set(value)

    now = time.time()
    gauge("jobmeter_run_wall_seconds", "Wall time of the last run.", result.wall_seconds)
    gauge(
        "jobmeter_run_cpu_user_seconds", "User CPU time of the last run.", result.cpu_user_seconds
    )
    gauge(
        "jobmeter_run_cpu_system_seconds",
        "System CPU time of the last run.",
        result.cpu_system_seconds,
    )
    gauge(
        "jobmeter_run_peak_memory_bytes", "Peak memory of the last run.", result.peak_memory_bytes
    )
    gauge("jobmeter_run_read_bytes", "Storage bytes read by the last run.", result.read_bytes)
    gauge(
        "jobmeter_run_written_bytes", "Storage bytes written by the last run.", result.written_bytes
    )
    gauge("jobmeter_run_exit_code", "Exit status of the last run.", result.exit_code)
    gauge("jobmeter_run_last_run_timestamp_seconds", "When the last run ended.", now)
    if result.exit_code == 0:
        # pushadd replaces only the metrics pushed: a failure keeps the last success's time.
        gauge("jobmeter_run_last_success_timestamp_seconds", "When a run last succeeded.", now)
    try:
        pushadd_to_gateway(url, job=job, grouping_key={"instance": socket.gethostname()},
                           registry=registry, timeout=timeout)  # fmt: skip
    except Exception as error:  # a gateway that is down must not fail the job
        _log.warning("jobmeter: cannot push to the Pushgateway at %s: %s", url, error)
        return False
    return True
