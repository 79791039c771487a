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
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from jobmeter._core.config import PUSHGATEWAY_URL
from jobmeter.collector import MetricsCollector
from jobmeter.run._command import RunResult
from jobmeter.run._sampler import TreeSample

_log = logging.getLogger("jobmeter")


Points = list[tuple[float, dict[str, AttributeValue]]]
Read = Callable[[TreeSample, RunResult], Points]

# (name, kind, unit, description, what to read from the latest sample and totals)
RUN_METRICS: Final[tuple[tuple[str, str, str, str, Read], ...]] = (
    ("jobmeter.run.cpu.time", "counter", "s", "CPU time of the whole process tree, by cpu.mode.",
     lambda s, r: [(r.cpu_user_seconds, {"cpu.mode": "user"}),
                   (r.cpu_system_seconds, {"cpu.mode": "system"})]),
    ("jobmeter.run.cpu.busy", "gauge", "{cpu}",
     "CPUs the tree kept busy since the previous sample.",
     lambda s, r: [(s.cpu_utilization, {})]),
    ("jobmeter.run.memory.usage", "up_down_counter", "By",
     "Memory of the tree now, by jobmeter.memory.type (rss, pss).",
     lambda s, r: [(s.rss, {"jobmeter.memory.type": "rss"}),
                   (s.pss, {"jobmeter.memory.type": "pss"})]),
    ("jobmeter.run.memory.peak", "gauge", "By",
     "The tree's peak memory so far (see run.json for its source).",
     lambda s, r: [(r.peak_memory_bytes, {})]),
    ("jobmeter.run.disk.io", "counter", "By", "Storage bytes the tree read and wrote.",
     lambda s, r: [(r.read_bytes, {"disk.io.direction": "read"}),
                   (r.written_bytes, {"disk.io.direction": "write"})]),
    ("jobmeter.run.process.count", "up_down_counter", "{process}", "Processes in the tree now.",
     lambda s, r: [(s.processes, {})]),
    ("jobmeter.run.thread.count", "up_down_counter", "{thread}", "Threads in the tree now.",
     lambda s, r: [(s.threads, {})]),
)  # fmt: skip


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
        self._latest: tuple[TreeSample, RunResult] | None = None
        create = {
            "counter": self.meter.create_observable_counter,
            "gauge": self.meter.create_observable_gauge,
            "up_down_counter": self.meter.create_observable_up_down_counter,
        }
        for metric, kind, unit, description, read in RUN_METRICS:
            create[kind](metric, [self._callback(read)], unit=unit, description=description)

    def update(self, sample: TreeSample, result: RunResult) -> None:
        """Keep the latest sample and totals for the next collection."""
        self._latest = (sample, result)

    def _callback(self, read: Read) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if self._latest is None:  # before the first sample
                return []
            return [
                Observation(value, {**self.attributes, **extra})
                for value, extra in read(*self._latest)
            ]

        return observe


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
