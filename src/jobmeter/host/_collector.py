"""``HostCollector`` and ``start_host_metrics()``; the process instruments.

The system-wide instruments are ``_system_metrics``; the GPU ones ``_gpu``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core.config import host_groups
from jobmeter.collector import MetricsCollector
from jobmeter.host._process import ProcessProbe, ProcessSample
from jobmeter.host._system_metrics import (
    Callback,
    SharedSamples,
    SystemInstruments,
    create_counter,
    create_gauge_like,
)


class HostCollector(MetricsCollector):
    """Process and system metrics of this machine, collected when a reader collects.

    Args:
        name: the collector's (instrumentation scope) name.
        attributes: attributes added to every point.
        meter_provider: defaults to the global MeterProvider.
        pid: the process to watch; None (default) is the current process,
            resolved at each collection, so a forked worker reports itself.
        tree: also count every descendant of the process.
        cpu, per_cpu, memory, disk, network, filesystem, load, process, gpu:
            turn one group of metrics on (True) or off (False); None keeps the
            default (all but ``per_cpu``) or what ``JOBMETER_HOST_METRICS`` says.

    Raises:
        ConfigurationError: ``JOBMETER_HOST_METRICS`` names an unknown group.
    """

    def __init__(
        self,
        name: str = "jobmeter.host",
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        meter_provider: MeterProvider | None = None,
        pid: int | None = None,
        tree: bool = False,
        cpu: bool | None = None,
        per_cpu: bool | None = None,
        memory: bool | None = None,
        disk: bool | None = None,
        network: bool | None = None,
        filesystem: bool | None = None,
        load: bool | None = None,
        process: bool | None = None,
        gpu: bool | None = None,
    ) -> None:
        super().__init__(name, attributes=attributes, meter_provider=meter_provider)
        switches = {
            "cpu": cpu, "per_cpu": per_cpu, "memory": memory, "disk": disk, "network": network,
            "filesystem": filesystem, "load": load, "process": process, "gpu": gpu,
        }  # fmt: skip
        self.groups = host_groups(switches)
        self._samples = SharedSamples()
        self._process = ProcessProbe(pid, tree)
        self._process_attributes = dict(self.attributes)
        if pid is not None:
            self._process_attributes["process.pid"] = pid
        if "process" in self.groups:
            self._create_process_instruments()
            self._process.sample()  # the baseline: utilization starts from here
        self._system = SystemInstruments(self.meter, self.attributes, self.groups, self._samples)
        self.gpu = None
        if "gpu" in self.groups:
            from jobmeter.host._gpu import GPUCollector

            self.gpu = GPUCollector(
                attributes=attributes, meter_provider=meter_provider, pids=self.watched_pids
            )

    # -- sampling ------------------------------------------------------------

    def _process_sample(self) -> ProcessSample | None:
        return self._samples.get("process", self._process.sample)

    def watched_pids(self) -> list[int]:
        """The pids measured now: the process, and its descendants in tree mode."""
        sample = self._process_sample()
        return [] if sample is None else sample.pids

    def _points(self, values: Iterable[tuple[float, dict[str, Any]]]) -> list[Observation]:
        base = self._process_attributes
        return [Observation(value, {**base, **extra}) for value, extra in values]

    def _counter(self, name: str, unit: str, callback: Callback) -> None:
        create_counter(self.meter, name, unit, callback)

    def _gauge_like(self, name: str, unit: str, callback: Callback, additive: bool) -> None:
        create_gauge_like(self.meter, name, unit, callback, additive)

    # -- process -------------------------------------------------------------

    def _create_process_instruments(self) -> None:
        def from_sample(
            read: Callable[[ProcessSample], list[tuple[float, dict[str, Any]]]],
        ) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                sample = self._process_sample()
                return [] if sample is None else self._points(read(sample))

            return callback

        self._counter(
            "process.cpu.time",
            "s",
            from_sample(
                lambda s: [
                    (s.cpu_user, {"cpu.mode": "user"}),
                    (s.cpu_system, {"cpu.mode": "system"}),
                ]
            ),
        )
        self._gauge_like(
            "process.cpu.utilization",
            "1",
            from_sample(lambda s: [(v, {"cpu.mode": mode}) for mode, v in s.utilization.items()]),
            False,
        )
        self._gauge_like("process.memory.usage", "By", from_sample(lambda s: [(s.rss, {})]), True)
        self._gauge_like("process.memory.virtual", "By", from_sample(lambda s: [(s.vms, {})]), True)
        self._counter(
            "process.disk.io",
            "By",
            from_sample(
                lambda s: [
                    (s.read_bytes, {"disk.io.direction": "read"}),
                    (s.write_bytes, {"disk.io.direction": "write"}),
                ]
            ),
        )
        self._gauge_like(
            "process.thread.count", "{thread}", from_sample(lambda s: [(s.threads, {})]), True
        )
        self._gauge_like(
            "process.unix.file_descriptor.count",
            "{file_descriptor}",
            from_sample(lambda s: [(s.fds, {})]),
            True,
        )
        self._counter(
            "process.context_switches",
            "{context_switch}",
            from_sample(
                lambda s: [
                    (s.ctx_voluntary, {"process.context_switch.type": "voluntary"}),
                    (s.ctx_involuntary, {"process.context_switch.type": "involuntary"}),
                ]
            ),
        )
        self._counter("process.paging.faults", "{fault}", from_sample(lambda s: [
            (s.faults_minor, {"process.paging.fault_type": "minor"}),
            (s.faults_major, {"process.paging.fault_type": "major"})]))  # fmt: skip


_started: HostCollector | None = None
_started_lock = threading.Lock()


def start_host_metrics(**switches: bool) -> HostCollector:
    """Turn on process, system and (where present) GPU metrics for this process; idempotent.

    Args:
        **switches: group switches of :class:`HostCollector` (``per_cpu=True``, ...).

    Returns:
        The one HostCollector of the process, on the global MeterProvider.
    """
    global _started
    with _started_lock:
        if _started is None:
            _started = HostCollector(**switches)  # type: ignore[arg-type]
        return _started
