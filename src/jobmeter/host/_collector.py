"""``HostCollector`` and ``start_host_metrics()``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core.config import host_groups
from jobmeter.collector import MetricsCollector
from jobmeter.host import _system as system
from jobmeter.host._process import ProcessProbe, ProcessSample

T = TypeVar("T")
Callback = Callable[[CallbackOptions], Iterable[Observation]]

# Samples younger than this are shared by the callbacks of one collection.
SAMPLE_TTL_S = 0.2


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
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._process = ProcessProbe(pid, tree)
        self._process_attributes = dict(self.attributes)
        if pid is not None:
            self._process_attributes["process.pid"] = pid
        self._cpu = system.CpuProbe(per_cpu="per_cpu" in self.groups)
        if "process" in self.groups:
            self._create_process_instruments()
            self._process.sample()  # the baseline: utilization starts from here
        if "cpu" in self.groups or "per_cpu" in self.groups:
            self._create_cpu_instruments()
            self._cpu.sample()
        if "memory" in self.groups:
            self._create_memory_instruments()
        if "disk" in self.groups:
            self._create_disk_instruments()
        if "network" in self.groups:
            self._create_network_instruments()
        if "filesystem" in self.groups:
            self._gauge_like("system.filesystem.usage", "By", self._observe_filesystem, True)
        if "load" in self.groups:
            self._create_load_instruments()
        self.gpu = None
        if "gpu" in self.groups:
            from jobmeter.host._gpu import GPUCollector

            self.gpu = GPUCollector(
                attributes=attributes, meter_provider=meter_provider, pids=self.watched_pids
            )

    # -- sampling ------------------------------------------------------------

    def _sampled(self, group: str, read: Callable[[], T]) -> T:
        """One sample per group per collection, shared by that group's callbacks."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(group)
            if cached is not None and now - cached[0] < SAMPLE_TTL_S:
                return cached[1]  # type: ignore[no-any-return]
            value = read()
            self._cache[group] = (now, value)
            return value

    def _process_sample(self) -> ProcessSample | None:
        return self._sampled("process", self._process.sample)

    def watched_pids(self) -> list[int]:
        """The pids measured now: the process, and its descendants in tree mode."""
        sample = self._process_sample()
        return [] if sample is None else sample.pids

    def _points(self, values: Iterable[tuple[float, dict[str, Any]]]) -> list[Observation]:
        base = self._process_attributes
        return [Observation(value, {**base, **extra}) for value, extra in values]

    def _counter(self, name: str, unit: str, callback: Callback) -> None:
        self.meter.create_observable_counter(name, callbacks=[callback], unit=unit)

    def _gauge_like(self, name: str, unit: str, callback: Callback, additive: bool) -> None:
        if additive:
            self.meter.create_observable_up_down_counter(name, callbacks=[callback], unit=unit)
        else:
            self.meter.create_observable_gauge(name, callbacks=[callback], unit=unit)

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

    # -- system --------------------------------------------------------------

    def _cpu_points(self, which: str) -> list[Observation]:
        sample = self._sampled("cpu", self._cpu.sample)
        rows = sample.times if which == "time" else sample.utilization
        per_cpu = "per_cpu" in self.groups
        points = []
        for number, modes in enumerate(rows):
            extra: dict[str, Any] = {"cpu.logical_number": number} if per_cpu else {}
            points += [Observation(v, {**self.attributes, **extra, "cpu.mode": m})
                       for m, v in modes.items()]  # fmt: skip
        return points

    def _create_cpu_instruments(self) -> None:
        self._counter("system.cpu.time", "s", lambda o: self._cpu_points("time"))
        self._gauge_like("system.cpu.utilization", "1", lambda o: self._cpu_points("util"), False)

    def _system_points(self, values: Iterable[tuple[float, dict[str, Any]]]) -> list[Observation]:
        return [Observation(value, {**self.attributes, **extra}) for value, extra in values]

    def _create_memory_instruments(self) -> None:
        states = ("used", "free", "buffers", "cached")

        def usage(ratio: bool) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                mem = self._sampled("memory", system.memory)
                scale = 1 / mem.total if ratio and mem.total else 1
                return self._system_points(
                    (getattr(mem, s, 0) * scale, {"system.memory.state": s}) for s in states
                )

            return callback

        def paging(ratio: bool) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                swap = self._sampled("swap", system.swap)
                if not swap.total:
                    return []
                scale = 1 / swap.total if ratio else 1
                return self._system_points(
                    (getattr(swap, s) * scale, {"system.paging.state": s}) for s in ("used", "free")
                )

            return callback

        self._gauge_like("system.memory.usage", "By", usage(False), True)
        self._gauge_like("system.memory.utilization", "1", usage(True), False)
        self._gauge_like("system.paging.usage", "By", paging(False), True)
        self._gauge_like("system.paging.utilization", "1", paging(True), False)

    def _create_disk_instruments(self) -> None:
        def io(fields: tuple[str, str]) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                disks = self._sampled("disk", system.disks)
                return self._system_points(
                    (getattr(c, f), {"system.device": d, "disk.io.direction": direction})
                    for d, c in disks.items()
                    for f, direction in zip(fields, ("read", "write"), strict=True)
                )

            return callback

        self._counter("system.disk.io", "By", io(("read_bytes", "write_bytes")))
        self._counter("system.disk.operations", "{operation}", io(("read_count", "write_count")))

    def _create_network_instruments(self) -> None:
        def io(fields: tuple[str, str]) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                nics = self._sampled("network", system.networks)
                return self._system_points(
                    (getattr(c, f), {"network.interface.name": n, "network.io.direction": d})
                    for n, c in nics.items()
                    for f, d in zip(fields, ("receive", "transmit"), strict=True)
                )

            return callback

        self._counter("system.network.io", "By", io(("bytes_recv", "bytes_sent")))
        self._counter(
            "system.network.packet.count", "{packet}", io(("packets_recv", "packets_sent"))
        )
        self._counter("system.network.errors", "{error}", io(("errin", "errout")))

    def _observe_filesystem(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._system_points(
            (getattr(fs, state), {
                "system.device": fs.device, "system.filesystem.mountpoint": fs.mountpoint,
                "system.filesystem.type": fs.fstype, "system.filesystem.mode": fs.mode,
                "system.filesystem.state": state,
            })
            for fs in self._sampled("filesystem", lambda: list(system.filesystems()))
            for state in ("used", "free", "reserved")
        )  # fmt: skip

    def _create_load_instruments(self) -> None:
        for index, window in enumerate(("1m", "5m", "15m")):

            def callback(options: CallbackOptions, index: int = index) -> Iterable[Observation]:
                load = self._sampled("load", system.load_average)
                return self._system_points([(load[index], {})])

            self._gauge_like(f"system.cpu.load_average.{window}", "{thread}", callback, False)


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
