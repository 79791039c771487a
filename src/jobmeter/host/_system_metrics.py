"""The system-wide metrics of ``HostCollector``: one read per group, its points in one pass.

``SystemPoints`` reads the machine's groups that are on: CPU (or per CPU),
memory and paging (one read for both), disks, network interfaces, file
systems and the load average, and adds their metrics to a ``Points`` batch,
every point with the collector's attributes. Attribute sets are built once
per series and reused by every collection.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from jobmeter import _energy
from jobmeter._core.instruments import HW_ENERGY, Instrument
from jobmeter._core.producers import Points
from jobmeter.host import _system as system

Attributes = dict[str, AttributeValue]
Values = list[tuple[float, Attributes]]


def _row(name: str, kind: Any, unit: str) -> Instrument:
    return Instrument(name, kind, unit, "")


CPU_TIME = _row("system.cpu.time", "counter", "s")
CPU_UTILIZATION = _row("system.cpu.utilization", "gauge", "1")
MEMORY_USAGE = _row("system.memory.usage", "up_down_counter", "By")
MEMORY_UTILIZATION = _row("system.memory.utilization", "gauge", "1")
PAGING_USAGE = _row("system.paging.usage", "up_down_counter", "By")
PAGING_UTILIZATION = _row("system.paging.utilization", "gauge", "1")
DISK_IO = _row("system.disk.io", "counter", "By")
DISK_OPERATIONS = _row("system.disk.operations", "counter", "{operation}")
NETWORK_IO = _row("system.network.io", "counter", "By")
NETWORK_PACKETS = _row("system.network.packet.count", "counter", "{packet}")
NETWORK_ERRORS = _row("system.network.errors", "counter", "{error}")
FILESYSTEM_USAGE = _row("system.filesystem.usage", "up_down_counter", "By")
ENERGY = HW_ENERGY  # the GPUs' too: one family on a scrape page needs one description
LOAD = tuple(_row(f"system.cpu.load_average.{w}", "gauge", "{thread}") for w in ("1m", "5m", "15m"))
# By group, in the order the metrics are exported; docs/metrics.md lists them.
SYSTEM_METRICS: Final[dict[str, tuple[Instrument, ...]]] = {
    "cpu": (CPU_TIME, CPU_UTILIZATION),
    "memory": (MEMORY_USAGE, MEMORY_UTILIZATION, PAGING_USAGE, PAGING_UTILIZATION),
    "disk": (DISK_IO, DISK_OPERATIONS),
    "network": (NETWORK_IO, NETWORK_PACKETS, NETWORK_ERRORS),
    "filesystem": (FILESYSTEM_USAGE,),
    "load": LOAD,
    "energy": (ENERGY,),
}
_MEMORY_STATES = ("used", "free", "buffers", "cached")
# Attribute sets kept at most (devices and interfaces come and go): past it, they are made anew.
_MAX_SERIES = 4096


class SystemPoints:
    """The machine's groups that are on in ``groups``, read and turned into points."""

    def __init__(self, attributes: Mapping[str, AttributeValue], groups: Collection[str]) -> None:
        self._base: Attributes = dict(attributes)
        self._per_cpu = "per_cpu" in groups
        self._cpu = system.CpuProbe(per_cpu=self._per_cpu)
        self._mounts = system.MountTable()
        self._series: dict[Any, Any] = {}  # attribute sets, by series
        builders: dict[str, Callable[[Points], None]] = {
            "cpu": self._add_cpu, "memory": self._add_memory, "disk": self._add_disks,
            "network": self._add_networks, "filesystem": self._add_filesystems,
            "load": self._add_load, "energy": self._add_energy,
        }  # fmt: skip
        on = {*groups, "cpu"} if self._per_cpu else set(groups)
        self.groups = [(group, build) for group, build in builders.items() if group in on]
        self.instruments = [i for group, _ in self.groups for i in SYSTEM_METRICS[group]]
        if "cpu" in on:
            self._cpu.sample()  # the baseline: utilization starts from here

    def close(self) -> None:
        self._mounts.close()

    def _forget_if_full(self) -> None:
        if len(self._series) >= _MAX_SERIES:
            self._series.clear()

    def _with(self, *extra: tuple[str, AttributeValue]) -> Attributes:
        found: Attributes | None = self._series.get(extra)
        if found is None:
            self._forget_if_full()
            found = self._series[extra] = {**self._base, **dict(extra)}
        return found

    def _add_cpu(self, points: Points) -> None:
        sample = self._cpu.sample()
        per_cpu = self._per_cpu
        for instrument, rows in ((CPU_TIME, sample.times), (CPU_UTILIZATION, sample.utilization)):
            values = []
            for number, modes in enumerate(rows):
                for mode, value in modes.items():
                    if per_cpu:
                        values.append((value, self._with(("cpu.logical_number", number),
                                                         ("cpu.mode", mode))))  # fmt: skip
                    else:
                        values.append((value, self._with(("cpu.mode", mode))))
            points.add(instrument, values)

    def _add_memory(self, points: Points) -> None:
        mem, swap = system.memory()
        states = [self._with(("system.memory.state", s)) for s in _MEMORY_STATES]
        figures = (mem.used, mem.free, mem.buffers, mem.cached)
        points.add(MEMORY_USAGE, zip(figures, states, strict=True))
        scale = 1 / mem.total if mem.total else 1
        points.add(
            MEMORY_UTILIZATION, [(v * scale, a) for v, a in zip(figures, states, strict=True)]
        )
        if swap.total:
            used = self._with(("system.paging.state", "used"))
            free = self._with(("system.paging.state", "free"))
            points.add(PAGING_USAGE, [(swap.used, used), (swap.free, free)])
            scale = 1 / swap.total
            points.add(PAGING_UTILIZATION, [(swap.used * scale, used), (swap.free * scale, free)])

    def _pair(self, key: str, name: str, direction: str, first: str, second: str) -> Any:
        """The two attribute sets of one device's directions, made once."""
        found = self._series.get((key, name))
        if found is None:
            self._forget_if_full()
            found = self._series[(key, name)] = (
                {**self._base, key: name, direction: first},
                {**self._base, key: name, direction: second},
            )
        return found

    def _add_disks(self, points: Points) -> None:
        io: Values = []
        operations: Values = []
        for name, (read, written, reads, writes) in system.disks().items():
            r, w = self._pair("system.device", name, "disk.io.direction", "read", "write")
            io += ((read, r), (written, w))
            operations += ((reads, r), (writes, w))
        points.add(DISK_IO, io)
        points.add(DISK_OPERATIONS, operations)

    def _add_networks(self, points: Points) -> None:
        io: Values = []
        packets: Values = []
        errors: Values = []
        for name, c in system.networks().items():
            r, t = self._pair("network.interface.name", name, "network.io.direction",
                              "receive", "transmit")  # fmt: skip
            io += ((c[0], r), (c[1], t))
            packets += ((c[2], r), (c[3], t))
            errors += ((c[4], r), (c[5], t))
        points.add(NETWORK_IO, io)
        points.add(NETWORK_PACKETS, packets)
        points.add(NETWORK_ERRORS, errors)

    def _add_filesystems(self, points: Points) -> None:
        values: Values = []
        for fs in self._mounts.usage():
            key = ("fs", fs.device, fs.mountpoint, fs.fstype, fs.mode)
            states = self._series.get(key)
            if states is None:
                self._forget_if_full()
                states = self._series[key] = [{
                    **self._base, "system.device": fs.device,
                    "system.filesystem.mountpoint": fs.mountpoint,
                    "system.filesystem.type": fs.fstype, "system.filesystem.mode": fs.mode,
                    "system.filesystem.state": state,
                } for state in ("used", "free", "reserved")]  # fmt: skip
            values += ((fs.used, states[0]), (fs.free, states[1]), (fs.reserved, states[2]))
        points.add(FILESYSTEM_USAGE, values)

    def _add_energy(self, points: Points) -> None:
        meter = _energy.meter()
        if not meter.rapl_available():
            return
        values: Values = []
        for zone, joules in meter.zones():
            key = ("rapl", zone.path)
            found = self._series.get(key)
            if found is None:
                self._forget_if_full()
                found = self._series[key] = {
                    **self._base, "hw.id": zone.path.rsplit("/", 1)[-1], "hw.name": zone.name,
                    "hw.type": zone.domain,
                }  # fmt: skip
            values.append((joules, found))
        points.add(ENERGY, values)

    def _add_load(self, points: Points) -> None:
        load = system.load_average()
        for instrument, value in zip(LOAD, load, strict=True):
            points.add(instrument, [(value, self._base)])
