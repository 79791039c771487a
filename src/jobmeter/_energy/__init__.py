"""The machine's energy: RAPL counters for CPU and DRAM, GPU energy counters or power.

One process-wide :class:`EnergyMeter` (``meter()``) that ``measure()``, the
host collector and runs read; a ``Reading`` is ``(cpu, dram, gpu)`` joules
since the meter first saw each domain, and ``difference()`` of two is the
energy between them. These are the machine's figures, not a share of them:
two blocks running at once each see all of it.
"""

from jobmeter._energy._meter import (
    DOMAINS,
    FRESH_S,
    EnergyMeter,
    Reading,
    _reset_for_tests,
    difference,
    meter,
)
from jobmeter._energy._rapl import Zone, discover

__all__ = [
    "DOMAINS",
    "FRESH_S",
    "EnergyMeter",
    "Reading",
    "Zone",
    "_reset_for_tests",
    "difference",
    "discover",
    "meter",
]
