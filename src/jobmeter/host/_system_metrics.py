"""The system-wide instruments of ``HostCollector``, and the samples its callbacks share.

``SystemInstruments`` creates the instruments of the machine's groups: CPU
(or per CPU), memory and paging, disks, network interfaces, filesystems and
the load average, every point with the collector's attributes. The callbacks
of one collection share one psutil sample per group through ``SharedSamples``,
which the process instruments of ``HostCollector`` use as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter.host import _system as system

T = TypeVar("T")
Callback = Callable[[CallbackOptions], Iterable[Observation]]

# Samples younger than this are shared by the callbacks of one collection.
SAMPLE_TTL_S = 0.2


class SharedSamples:
    """One sample per group per collection, shared by that group's callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def get(self, group: str, read: Callable[[], T]) -> T:
        """The group's sample younger than ``SAMPLE_TTL_S``, or a new one from ``read()``."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(group)
            if cached is not None and now - cached[0] < SAMPLE_TTL_S:
                return cached[1]  # type: ignore[no-any-return]
            value = read()
            self._cache[group] = (now, value)
            return value


def create_counter(meter: Meter, name: str, unit: str, callback: Callback) -> None:
    meter.create_observable_counter(name, callbacks=[callback], unit=unit)


def create_gauge_like(
    meter: Meter, name: str, unit: str, callback: Callback, additive: bool
) -> None:
    """An up-down counter for a quantity that sums (bytes, threads), else a gauge."""
    if additive:
        meter.create_observable_up_down_counter(name, callbacks=[callback], unit=unit)
    else:
        meter.create_observable_gauge(name, callbacks=[callback], unit=unit)


class SystemInstruments:
    """The instruments of the machine's groups that are on in ``groups``."""

    def __init__(
        self,
        meter: Meter,
        attributes: Mapping[str, AttributeValue],
        groups: Collection[str],
        samples: SharedSamples,
    ) -> None:
        self._meter = meter
        self._attributes = attributes
        self._samples = samples
        self._per_cpu = "per_cpu" in groups
        self._cpu = system.CpuProbe(per_cpu=self._per_cpu)
        if "cpu" in groups or "per_cpu" in groups:
            self._create_cpu_instruments()
            self._cpu.sample()
        if "memory" in groups:
            self._create_memory_instruments()
        if "disk" in groups:
            self._create_disk_instruments()
        if "network" in groups:
            self._create_network_instruments()
        if "filesystem" in groups:
            self._gauge_like("system.filesystem.usage", "By", self._observe_filesystem, True)
        if "load" in groups:
            self._create_load_instruments()

    def _counter(self, name: str, unit: str, callback: Callback) -> None:
        create_counter(self._meter, name, unit, callback)

    def _gauge_like(self, name: str, unit: str, callback: Callback, additive: bool) -> None:
        create_gauge_like(self._meter, name, unit, callback, additive)

    def _points(self, values: Iterable[tuple[float, dict[str, Any]]]) -> list[Observation]:
        return [Observation(value, {**self._attributes, **extra}) for value, extra in values]

    def _cpu_points(self, which: str) -> list[Observation]:
        sample = self._samples.get("cpu", self._cpu.sample)
        rows = sample.times if which == "time" else sample.utilization
        per_cpu = self._per_cpu
        points = []
        for number, modes in enumerate(rows):
            extra: dict[str, Any] = {"cpu.logical_number": number} if per_cpu else {}
            points += [Observation(v, {**self._attributes, **extra, "cpu.mode": m})
                       for m, v in modes.items()]  # fmt: skip
        return points

    def _create_cpu_instruments(self) -> None:
        self._counter("system.cpu.time", "s", lambda o: self._cpu_points("time"))
        self._gauge_like("system.cpu.utilization", "1", lambda o: self._cpu_points("util"), False)

    def _create_memory_instruments(self) -> None:
        states = ("used", "free", "buffers", "cached")

        def usage(ratio: bool) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                mem = self._samples.get("memory", system.memory)
                scale = 1 / mem.total if ratio and mem.total else 1
                return self._points(
                    (getattr(mem, s, 0) * scale, {"system.memory.state": s}) for s in states
                )

            return callback

        def paging(ratio: bool) -> Callback:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                swap = self._samples.get("swap", system.swap)
                if not swap.total:
                    return []
                scale = 1 / swap.total if ratio else 1
                return self._points(
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
                disks = self._samples.get("disk", system.disks)
                return self._points(
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
                nics = self._samples.get("network", system.networks)
                return self._points(
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
        return self._points(
            (getattr(fs, state), {
                "system.device": fs.device, "system.filesystem.mountpoint": fs.mountpoint,
                "system.filesystem.type": fs.fstype, "system.filesystem.mode": fs.mode,
                "system.filesystem.state": state,
            })
            for fs in self._samples.get("filesystem", lambda: list(system.filesystems()))
            for state in ("used", "free", "reserved")
        )  # fmt: skip

    def _create_load_instruments(self) -> None:
        for index, window in enumerate(("1m", "5m", "15m")):

            def callback(options: CallbackOptions, index: int = index) -> Iterable[Observation]:
                load = self._samples.get("load", system.load_average)
                return self._points([(load[index], {})])

            self._gauge_like(f"system.cpu.load_average.{window}", "{thread}", callback, False)
