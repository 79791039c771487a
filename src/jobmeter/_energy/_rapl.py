"""The RAPL energy counters of the Linux powercap tree, read without double counting.

``/sys/class/powercap`` lists every RAPL zone flat: ``intel-rapl:0`` (a package),
its sub-zones ``intel-rapl:0:0`` (core), ``intel-rapl:0:1`` (uncore),
``intel-rapl:0:2`` (dram), and top zones such as ``intel-rapl:1`` (psys, the
whole platform). AMD processors show the same ``intel-rapl`` zones on most
kernels; ``amd-rapl`` is accepted where a kernel names them so. Which zones
count:

- packages (``package-N``) are the CPU's energy, ``hw.type`` ``cpu``;
- ``dram`` zones are memory, which Intel meters apart from the package;
- core and uncore are parts of their package: adding them would count the
  same joules twice (codecarbon's #788), so they are never read;
- psys covers the package and more: never added to it, and not read either;
- ``intel-rapl-mmio`` zones are the same package counters read another way:
  used only for a package the MSR interface does not list.

Each counter wraps at its ``max_energy_range_uj``. ``Zone.read`` keeps a total
that goes on across wraps, so any two totals of a process differ by the energy
between them as long as it is read at least once per wrap (about an hour at
100 W; the host collector and ``jobmeter run`` read it every few seconds).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from typing import Final

#: Zone directories under <sysfs>/class/powercap: a control type, then indices.
_ZONE: Final = re.compile(r"^(intel-rapl|intel-rapl-mmio|amd-rapl)((?::\d+)+)$")
_MMIO: Final = "intel-rapl-mmio"
#: The most digits a counter file holds (a 64-bit number and a newline).
_READ_BYTES: Final = 32


@dataclass
class Zone:
    """One counted RAPL zone, its ``energy_uj`` held open; the caller serializes reads."""

    path: str
    domain: str  # "cpu" or "dram"
    name: str  # package-0, dram, ...
    fd: int
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = field(default=0)  # since the zone was opened, across wraps

    def read(self) -> int:
        """The zone's energy since it was opened, in µJ (raises OSError or ValueError)."""
        raw = int(os.pread(self.fd, _READ_BYTES, 0))
        last = self.last_uj
        if raw >= last:
            self.total_uj += raw - last
        elif self.max_range_uj > 0:  # wrapped: up to the top (0..max inclusive), then from zero
            self.total_uj += self.max_range_uj + 1 - last + raw
        self.last_uj = raw
        return self.total_uj

    def close(self) -> None:
        """Close the counter file."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


@dataclass
class Found:
    """The zones that can be read, and why others could not (empty without RAPL)."""

    zones: list[Zone]
    unreadable: list[str]  # "<zone>/energy_uj: <reason>"
    root: str


def _domain(name: str, depth: int) -> str | None:
    """The hw.type a zone's energy counts as; None for zones inside another counted one."""
    if name.startswith("package"):
        return "cpu" if depth == 1 else None
    if name == "dram":
        return "dram"
    return None  # core, uncore (parts of a package), psys (all of it and more)


def _text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def discover(sysfs: str) -> Found:
    """Open the counters to read under ``sysfs``/class/powercap."""
    root = os.path.join(sysfs, "class", "powercap")
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return Found([], [], root)
    zones: list[Zone] = []
    unreadable: list[str] = []
    counted: set[tuple[str, str]] = set()  # (domain, name) of MSR zones: mmio twins are skipped
    # MSR zones first, so that the mmio twin of a listed package is recognised.
    for entry in sorted(entries, key=lambda e: e.startswith(_MMIO)):
        match = _ZONE.match(entry)
        if match is None:
            continue
        path = os.path.join(root, entry)
        name = _text(os.path.join(path, "name")) or ""
        domain = _domain(name, match.group(2).count(":"))
        if domain is None:
            continue
        socket = match.group(2).split(":")[1]  # dram of package N is N's, like its name
        key = (domain, name if domain == "cpu" else f"{name}:{socket}")
        if match.group(1) == _MMIO and key in counted:
            continue
        if _text(os.path.join(path, "enabled")) == "0":
            continue
        counter = os.path.join(path, "energy_uj")
        try:
            fd = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            unreadable.append(f"{entry}/energy_uj: {error.strerror or error}")
            continue
        max_range = _text(os.path.join(path, "max_energy_range_uj")) or ""
        zone = Zone(path, domain, name, fd, int(max_range) if max_range.isdigit() else 0)
        try:
            zone.last_uj = int(os.pread(fd, _READ_BYTES, 0))
        except (OSError, ValueError) as error:  # root-only counters open, then refuse reads
            zone.close()
            reason = error.strerror if isinstance(error, OSError) else "not a number"
            unreadable.append(f"{entry}/energy_uj: {reason or error}")
            continue
        counted.add(key)
        zones.append(zone)
    return Found(zones, unreadable, root)
