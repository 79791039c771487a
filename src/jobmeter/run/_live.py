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
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import pushgateway
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.instruments import Instrument, observe
from jobmeter._rundata.summary import RunResult
from jobmeter.collector import MetricsCollector
from jobmeter.run._sampler import TreeSample

_log = logging.getLogger("jobmeter")


Points = list[tuple[float, dict[str, AttributeValue]]]
Read = Callable[[TreeSample, RunResult], Points]

# (instrument, what to read from the latest sample and totals); docs/metrics.md lists them.
RUN_METRICS: Final[tuple[tuple[Instrument, Read], ...]] = (
    (Instrument("jobmeter.run.cpu.time", "counter", "s",
                "CPU time of the whole process tree, by cpu.mode."),
     lambda s, r: [(r.cpu_user_seconds, {"cpu.mode": "user"}),
                   (r.cpu_system_seconds, {"cpu.mode": "system"})]),
    (Instrument("jobmeter.run.cpu.busy", "gauge", "{cpu}",
                "CPUs the tree kept busy since the previous sample."),
     lambda s, r: [(s.cpu_utilization, {})]),
    (Instrument("jobmeter.run.memory.usage", "up_down_counter", "By",
                "Memory of the tree now, by jobmeter.memory.type (rss, pss)."),
     lambda s, r: [(s.rss, {"jobmeter.memory.type": "rss"}),
                   (s.pss, {"jobmeter.memory.type": "pss"})]),
    (Instrument("jobmeter.run.memory.peak", "gauge", "By",
                "The tree's peak memory so far (see run.json for its source)."),
     lambda s, r: [(r.peak_memory_bytes, {})]),
    (Instrument("jobmeter.run.disk.io", "counter", "By", "Storage bytes the tree read and wrote."),
     lambda s, r: [(r.read_bytes, {"disk.io.direction": "read"}),
                   (r.written_bytes, {"disk.io.direction": "write"})]),
    (Instrument("jobmeter.run.energy", "counter", "J",
                "Energy the machine used since the run started, by hw.type (cpu, dram, gpu), "
                "where the machine meters it."),
     lambda s, r: [(joules, {"hw.type": domain})
                   for domain, joules in (r.energy_joules or {}).items()]),
    (Instrument("jobmeter.run.process.count", "up_down_counter", "{process}",
                "Processes in the tree now."),
     lambda s, r: [(s.processes, {})]),
    (Instrument("jobmeter.run.thread.count", "up_down_counter", "{thread}",
                "Threads in the tree now."),
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
        for instrument, read in RUN_METRICS:
            observe(self.meter, instrument, self._callback(read))

    def update(self, sample: TreeSample, result: RunResult) -> None:
        """Keep the latest sample and totals for the next collection."""
        self._latest = (sample, result)

    def _callback(self, read: Read) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def points(options: CallbackOptions) -> Iterable[Observation]:
            if self._latest is None:  # before the first sample
                return []
            return [
                Observation(value, {**self.attributes, **extra})
                for value, extra in read(*self._latest)
            ]

        return points


# What the final push holds: the Prometheus names follow from these as on the
# endpoint (jobmeter.run.wall in s is jobmeter_run_wall_seconds).
PUSHED: Final = (
    Instrument("jobmeter.run.wall", "gauge", "s", "Wall time of the last run."),
    Instrument("jobmeter.run.cpu_user", "gauge", "s", "User CPU time of the last run."),
    Instrument("jobmeter.run.cpu_system", "gauge", "s", "System CPU time of the last run."),
    Instrument("jobmeter.run.peak_memory", "gauge", "By", "Peak memory of the last run."),
    Instrument("jobmeter.run.read", "gauge", "By", "Storage bytes read by the last run."),
    Instrument("jobmeter.run.written", "gauge", "By", "Storage bytes written by the last run."),
    Instrument("jobmeter.run.exit_code", "gauge", "1", "Exit status of the last run."),
    Instrument("jobmeter.run.last_run_timestamp", "gauge", "s", "When the last run ended."),
    Instrument("jobmeter.run.last_success_timestamp", "gauge", "s",
               "When a run last succeeded."),
)  # fmt: skip
PUSH_TIMEOUT_S: Final = 5.0


def push_result(job: str, result: RunResult, url: str | None = None) -> bool:
    """Push the run's final figures to the Pushgateway at ``url`` (or JOBMETER_PUSHGATEWAY_URL).

    Grouped by ``job`` and host. Returns False, with a warning, when the
    gateway cannot be reached or its URL is not one; never raises.
    """
    try:
        target = pushgateway.gateway_url(url)
    except ConfigurationError as error:
        _log.warning("jobmeter: %s; the run's figures are not pushed", error)
        return False
    if target is None:
        return False
    now = time.time()
    values = (
        result.wall_seconds, result.cpu_user_seconds, result.cpu_system_seconds,
        result.peak_memory_bytes, result.read_bytes, result.written_bytes, result.exit_code, now,
        # Only on success: a failure keeps the last success's time (pushadd replaces only
        # the metrics pushed).
        now if result.exit_code == 0 else None,
    )  # fmt: skip
    families = [
        metric
        for instrument, value in zip(PUSHED, values, strict=True)
        if value is not None and (metric := pushgateway.family(instrument, [(value, {})]))
    ]
    gateway = pushgateway.Pushgateway(target, job, pushgateway.grouping_key(), PUSH_TIMEOUT_S)
    return gateway.push_final(families)
