"""A fake powercap tree (``<root>/class/powercap``) for ``JOBMETER_SYSFS_PATH``.

No CI machine exposes RAPL (virtual machines have none, and the counters are
root-only where they exist), so the tests build the tree the kernel would:
one directory per zone with ``name``, ``energy_uj``, ``max_energy_range_uj``
and ``enabled``, the layout of ``intel-rapl:0`` (package), ``intel-rapl:0:0``
(core), ``intel-rapl:0:2`` (dram) and ``intel-rapl:1`` (psys). Counters are
advanced in place (``os.pwrite`` at offset 0, fixed width), as sysfs serves
them, so a reader holding the file open sees each new value; they wrap at
their maximum like the real ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: A realistic maximum: about 262 kJ, as on many Intel packages.
MAX_RANGE_UJ = 262_143_328_850
_WIDTH = 20  # digits, so that every write replaces the whole value


@dataclass
class FakeZone:
    """One zone of the fake tree."""

    path: Path
    max_range_uj: int
    value_uj: int

    def set_uj(self, value: int) -> None:
        """Write the counter (kept within 0 and the maximum, as the hardware does)."""
        self.value_uj = value % (self.max_range_uj + 1)
        fd = os.open(self.path / "energy_uj", os.O_WRONLY)
        try:
            os.pwrite(fd, f"{self.value_uj:0{_WIDTH}d}\n".encode(), 0)
        finally:
            os.close(fd)

    def add(self, joules: float) -> None:
        """Advance the counter by ``joules``, wrapping past the maximum."""
        self.set_uj(self.value_uj + round(joules * 1e6))


class FakePowercap:
    """The tree under ``root``; ``zone(...)`` adds zones, ``zones[...]`` finds them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.powercap = root / "class" / "powercap"
        self.powercap.mkdir(parents=True, exist_ok=True)
        self.zones: dict[str, FakeZone] = {}

    def zone(
        self,
        entry: str,
        name: str,
        *,
        start_uj: int = 1_000_000,
        max_range_uj: int = MAX_RANGE_UJ,
        enabled: bool = True,
    ) -> FakeZone:
        """Add zone ``entry`` (``intel-rapl:0``) named ``name`` (``package-0``)."""
        path = self.powercap / entry
        path.mkdir()
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (path / "enabled").write_text("1\n" if enabled else "0\n")
        (path / "energy_uj").write_text("")
        zone = self.zones[entry] = FakeZone(path, max_range_uj, 0)
        zone.set_uj(start_uj)
        return zone

    def intel_server(self, sockets: int = 1) -> FakePowercap:
        """Packages with core, uncore and dram sub-zones, and a psys zone."""
        for socket in range(sockets):
            self.zone(f"intel-rapl:{socket}", f"package-{socket}")
            self.zone(f"intel-rapl:{socket}:0", "core")
            self.zone(f"intel-rapl:{socket}:1", "uncore")
            self.zone(f"intel-rapl:{socket}:2", "dram")
        self.zone(f"intel-rapl:{sockets}", "psys")
        return self

    def add_everywhere(self, joules: float) -> None:
        """Advance every zone by ``joules`` (what a double count would add up)."""
        for zone in self.zones.values():
            zone.add(joules)
