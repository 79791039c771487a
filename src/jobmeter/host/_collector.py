"""``HostCollector`` and ``start_host_metrics()``; the process metrics.

A HostCollector is a metric producer (``_core.producers``): at each collection
of each reader it reads each group once and builds that group's points in one
pass. The system-wide groups are ``_system_metrics``; the GPU ones ``_gpu``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Metric
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.util.types import AttributeValue

from jobmeter._core import producers
from jobmeter._core.config import host_groups
from jobmeter._core.instruments import Instrument
from jobmeter._version import __version__
from jobmeter.collector import MetricsCollector
from jobmeter.host._process import ProcessProbe, ProcessSample
from jobmeter.host._system_metrics import SystemPoints

_log = logging.getLogger("jobmeter")


def _row(name: str, kind: Any, unit: str) -> Instrument:
    return Instrument(name, kind, unit, "")


CPU_TIME = _row("process.cpu.time", "counter", "s")
CPU_UTILIZATION = _row("process.cpu.utilization", "gauge", "1")
MEMORY_USAGE = _row("process.memory.usage", "up_down_counter", "By")
MEMORY_VIRTUAL = _row("process.memory.virtual", "up_down_counter", "By")
DISK_IO = _row("process.disk.io", "counter", "By")
THREADS = _row("process.thread.count", "up_down_counter", "{thread}")
FDS = _row("process.unix.file_descriptor.count", "up_down_counter", "{file_descriptor}")
CONTEXT_SWITCHES = _row("process.context_switches", "counter", "{context_switch}")
PAGING_FAULTS = _row("process.paging.faults", "counter", "{fault}")
PROCESS_METRICS: Final = (CPU_TIME, CPU_UTILIZATION, MEMORY_USAGE, MEMORY_VIRTUAL, DISK_IO,
                          THREADS, FDS, CONTEXT_SWITCHES, PAGING_FAULTS)  # fmt: skip
# The process sample a GPU collection may reuse for the pids it measures.
PIDS_MAX_AGE_S = 0.2


class HostCollector(MetricsCollector):
    """Process and system metrics of this machine, collected when a reader collects.

    Each collection of each reader (a Prometheus scrape, an OTLP export, an
    in-memory read) reads each group of figures once, fresh, and reports
    them under the OpenTelemetry semantic-convention names. A group that
    fails to read is left out of that collection, with one warning.

    Args:
        name: the collector's (instrumentation scope) name.
        attributes: attributes added to every point.
        meter_provider: defaults to the global MeterProvider.
        pid: the process to watch; None (default) is the current process,
            resolved at each collection, so a forked worker reports itself.
        tree: also count every descendant of the process.
        cpu, per_cpu, memory, disk, network, filesystem, load, process, gpu, energy:
            turn one group of metrics on (True) or off (False); None keeps the
            default (all but ``per_cpu``) or what ``JOBMETER_HOST_METRICS`` says.
            ``energy`` is the RAPL counters of the CPU packages and DRAM
            (``hw.energy``), where they can be read.

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
        energy: bool | None = None,
    ) -> None:
        super().__init__(name, attributes=attributes, meter_provider=meter_provider)
        switches = {
            "cpu": cpu, "per_cpu": per_cpu, "memory": memory, "disk": disk, "network": network,
            "filesystem": filesystem, "load": load, "process": process, "gpu": gpu,
            "energy": energy,
        }  # fmt: skip
        self.groups = host_groups(switches)
        self.scope = InstrumentationScope(name, __version__)
        self._process = ProcessProbe(pid, tree)
        self._last_sample: ProcessSample | None = None
        base: dict[str, AttributeValue] = dict(self.attributes)
        if pid is not None:
            base["process.pid"] = pid
        self._attributes = _process_attributes(base)
        if "process" in self.groups:
            self._process.sample()  # the baseline: utilization starts from here
        self._system = SystemPoints(self.attributes, self.groups)
        self.instruments: Sequence[Instrument] = [
            *(PROCESS_METRICS if "process" in self.groups else ()),
            *self._system.instruments,
        ]
        self._failed: set[str] = set()
        self._pid = os.getpid()
        self._start_ns = time.time_ns()
        self._registration = producers.register(self.meter, self)
        self.gpu = None
        if "gpu" in self.groups:
            from jobmeter.host._gpu import GPUCollector

            self.gpu = GPUCollector(
                attributes=attributes, meter_provider=meter_provider, pids=self.watched_pids
            )

    def watched_pids(self) -> list[int]:
        """The pids measured now: the process, and its descendants in tree mode."""
        sample = self._last_sample
        if sample is not None and time.monotonic() - sample.at < PIDS_MAX_AGE_S:
            return list(sample.pids)
        return self._process.pids()

    def produce(self) -> list[Metric]:
        """The collector's metrics now, each group read once (called by every reader)."""
        if os.getpid() != self._pid:  # a forked child: its own counters, from now
            self._pid, self._start_ns = os.getpid(), time.time_ns()
        points = producers.Points(self._start_ns, time.time_ns())
        if "process" in self.groups:
            try:
                self._add_process(points)
            except Exception:
                self._group_failed("process")
        for group, add in self._system.groups:
            try:
                add(points)
            except Exception:
                self._group_failed(group)
        return points.metrics

    def shutdown(self) -> None:
        """Stop reporting: no reader collects this collector's host (or GPU) metrics again."""
        global _started
        self._registration.unregister()
        self._system.close()
        if self.gpu is not None:
            self.gpu.shutdown()
        with _started_lock:
            if _started is self:
                _started = None

    def _group_failed(self, group: str) -> None:
        if group not in self._failed:
            self._failed.add(group)
            _log.warning("jobmeter: reading the %s figures of %r failed; they are left out "
                         "while it fails", group, self, exc_info=True)  # fmt: skip

    def _add_process(self, points: producers.Points) -> None:
        sample = self._process.sample()
        self._last_sample = sample
        if sample is None:
            return
        a = self._attributes
        points.add(CPU_TIME, ((sample.cpu_user, a["user"]), (sample.cpu_system, a["system"])))
        points.add(CPU_UTILIZATION, [(v, a[mode]) for mode, v in sample.utilization.items()])
        points.add(MEMORY_USAGE, ((sample.rss, a[""]),))
        points.add(MEMORY_VIRTUAL, ((sample.vms, a[""]),))
        points.add(DISK_IO, ((sample.read_bytes, a["read"]), (sample.write_bytes, a["write"])))
        points.add(THREADS, ((sample.threads, a[""]),))
        points.add(FDS, ((sample.fds, a[""]),))
        points.add(CONTEXT_SWITCHES, ((sample.ctx_voluntary, a["voluntary"]),
                                      (sample.ctx_involuntary, a["involuntary"])))  # fmt: skip
        points.add(PAGING_FAULTS, ((sample.faults_minor, a["minor"]),
                                   (sample.faults_major, a["major"])))  # fmt: skip


def _process_attributes(base: dict[str, AttributeValue]) -> dict[str, dict[str, AttributeValue]]:
    """The attribute sets of the process points, by the value of their one extra attribute."""
    extra = {
        "user": ("cpu.mode", "user"), "system": ("cpu.mode", "system"),
        "read": ("disk.io.direction", "read"), "write": ("disk.io.direction", "write"),
        "voluntary": ("process.context_switch.type", "voluntary"),
        "involuntary": ("process.context_switch.type", "involuntary"),
        "minor": ("process.paging.fault_type", "minor"),
        "major": ("process.paging.fault_type", "major"),
    }  # fmt: skip
    return {"": base, **{name: {**base, key: value} for name, (key, value) in extra.items()}}


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
