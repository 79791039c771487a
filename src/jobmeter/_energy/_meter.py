"""``EnergyMeter``: the process-wide reader of the machine's energy counters.

A reading is the energy each domain used since the meter first saw it, in
joules: ``(cpu, dram, gpu)``, None for a domain the machine does not meter.
The difference of two readings is the energy between them; blocks and runs
keep their first reading and subtract it from their last.

RAPL counters tick about once a millisecond, so a block starts from a
reading younger than ``FRESH_S`` where there is one (the end of the block
before it, in a loop) and ends with a fresh one: a block reads the files once,
and the energies of back-to-back blocks add up to the counters' rise. Started on first use, never at
import: the powercap tree is listed once (under ``JOBMETER_SYSFS_PATH``), and
without readable counters one INFO line says why and CPU energy is not
reported (never estimated).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from time import perf_counter
from typing import Final, TypeAlias

from jobmeter._core import fork, reset
from jobmeter._core.environment import read
from jobmeter._core.hardware_settings import DEFAULT_SYSFS_PATH, ENERGY, SYSFS_PATH
from jobmeter._core.parse import parse_bool, parse_text
from jobmeter._energy._gpu import GpuEnergy
from jobmeter._energy._rapl import Zone, discover

_log = logging.getLogger("jobmeter")

#: (cpu J, dram J, gpu J) since the meter first saw each; None where not metered.
Reading: TypeAlias = tuple[float | None, float | None, float | None]
#: The domains of a reading, in its order: the ``hw.type`` of each figure.
DOMAINS: Final = ("cpu", "dram", "gpu")
#: A RAPL reading this young (seconds) is given again: the counters tick every ~1 ms.
FRESH_S: Final = 0.001


class EnergyMeter:
    """The machine's energy counters, read by every block and run of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zones: list[Zone] | None = None  # None: not listed yet
        self._enabled: bool | None = None
        self._cpu: float | None = None
        self._dram: float | None = None
        self._at = float("-inf")
        self._gpu = GpuEnergy()
        self._found = "not looked for yet"  # what describe() says of the RAPL counters
        fork.on_fork_in_child(self._after_fork_in_child)

    @property
    def enabled(self) -> bool:
        """Whether energy is read at all (``JOBMETER_ENERGY``, default true)."""
        enabled = self._enabled
        if enabled is None:
            enabled = self._enabled = read(ENERGY, parse_bool, True, "energy is read", strict=None)
        return enabled

    def rapl_available(self) -> bool:
        """Whether RAPL counters can be read; lists them on the first call."""
        zones = self._zones
        if zones is None:
            with self._lock:
                if self._zones is None:
                    self._zones = self._start() if self.enabled else []
                zones = self._zones
        return bool(zones)

    def _start(self) -> list[Zone]:
        sysfs = read(SYSFS_PATH, parse_text, DEFAULT_SYSFS_PATH, "the default applies", strict=None)
        found = discover(sysfs)
        self._found = (
            "RAPL: " + ", ".join(f"{z.path.rsplit('/', 1)[-1]} ({z.name})" for z in found.zones)
            if found.zones
            else f"none readable under {found.root}"
            + (f" ({'; '.join(found.unreadable)})" if found.unreadable else "")
        )
        if found.unreadable and not found.zones:
            _log.info("jobmeter: the RAPL energy counters under %s are not readable (%s; they are "
                      "root-only on many kernels); CPU energy is not reported", found.root,
                      "; ".join(found.unreadable))  # fmt: skip
        elif not found.zones:
            _log.info("jobmeter: no RAPL energy counters under %s; CPU energy is not reported",
                      found.root)  # fmt: skip
        elif found.unreadable:
            _log.info("jobmeter: some RAPL counters are not readable (%s); their energy is not "
                      "reported", "; ".join(found.unreadable))  # fmt: skip
        return found.zones

    def read(
        self, *, gpu: bool = False, fresh: bool = True, environ: Mapping[str, str] | None = None
    ) -> Reading:
        """The energy of each domain since first seen; ``gpu`` also reads the GPUs the job may use.

        ``fresh=False`` accepts the last RAPL reading if it is younger than
        ``FRESH_S``: a block starts with it and ends with a fresh one, so that
        back-to-back short blocks share their boundaries and their energies add
        up to the counters' rise. ``environ`` is the environment of the job
        (default: this process's), whose ``CUDA_VISIBLE_DEVICES`` (or
        ``ROCR_VISIBLE_DEVICES``) says which GPUs count.
        """
        now = perf_counter()
        if (fresh or now - self._at >= FRESH_S) and (self._zones or self._zones is None):
            self._read_rapl(now, fresh)
        return self._cpu, self._dram, self._gpu.read(environ) if gpu and self.enabled else None

    def _read_rapl(self, now: float, fresh: bool) -> None:
        if not self.rapl_available():
            return
        with self._lock:
            if now - self._at < (0.0 if fresh else FRESH_S):  # another thread read it meanwhile
                return
            totals = {"cpu": 0, "dram": 0}
            found = set()
            for zone in self._zones or ():
                try:
                    totals[zone.domain] += zone.read()
                except (OSError, ValueError) as error:
                    self._lost(zone, error)
                    continue
                found.add(zone.domain)
            self._cpu = totals["cpu"] / 1e6 if "cpu" in found else None
            self._dram = totals["dram"] / 1e6 if "dram" in found else None
            self._at = now

    def describe(self) -> str:
        """Which counters are read (``RAPL: intel-rapl:0 (package-0), ...``), or why none."""
        if not self.enabled:
            return "off (JOBMETER_ENERGY=false)"
        self.rapl_available()
        return self._found

    def zones(self) -> list[tuple[Zone, float]]:
        """Each counted RAPL zone and its energy since first read (J), read now."""
        self._read_rapl(perf_counter(), True)
        return [(zone, zone.total_uj / 1e6) for zone in self._zones or ()]

    def _lost(self, zone: Zone, error: Exception) -> None:
        """A counter that fails is dropped for good: its total would stop and start."""
        _log.info("jobmeter: the RAPL counter %s failed (%s); its energy is no longer reported",
                  zone.path, error)  # fmt: skip
        zone.close()
        self._zones = [z for z in self._zones or () if z is not zone]

    def _after_fork_in_child(self) -> None:
        # The held files and totals stay valid in the child; only the lock is the parent's.
        self._lock = threading.Lock()

    def _reset_for_tests(self) -> None:
        with self._lock:
            for zone in self._zones or ():
                zone.close()
            self._zones, self._enabled = None, None
            self._cpu = self._dram = None
            self._at = float("-inf")
            self._gpu = GpuEnergy()


def difference(start: Reading, end: Reading) -> Reading:
    """The energy between two readings, per domain; None where either did not meter it."""
    return (
        None if start[0] is None or end[0] is None else max(end[0] - start[0], 0.0),
        None if start[1] is None or end[1] is None else max(end[1] - start[1], 0.0),
        None if start[2] is None or end[2] is None else max(end[2] - start[2], 0.0),
    )


_meter: EnergyMeter | None = None


def meter() -> EnergyMeter:
    """The process-wide meter, made on first use."""
    global _meter
    if _meter is None:
        _meter = EnergyMeter()
        reset.on_reset(_reset_for_tests, reset.FIGURES)
    return _meter


def _reset_for_tests() -> None:
    """Forget the counters, the settings read and the totals: the next read starts again."""
    if _meter is not None:
        _meter._reset_for_tests()
