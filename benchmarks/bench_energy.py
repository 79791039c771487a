"""What reading energy costs: ``measure()`` with energy on and off, and one counter read.

No CI machine has RAPL, so the counters are a powercap tree of plain files
(``JOBMETER_SYSFS_PATH``), the layout of a one-socket Intel server: package-0
with core, uncore and dram sub-zones, and psys. jobmeter reads two of them
(package and dram). The figures are the cost of jobmeter's own path (the
syscalls and the Python around them); on real hardware the kernel adds its MSR
read to each ``energy_uj`` read, a few microseconds (``perf stat`` on a real
machine shows it), which this VM cannot measure.

Cases, interleaved, ``timeit`` with the garbage collector off:

- ``bare_record``: the SDK's ``Histogram.record`` (the reference);
- ``measure_energy_off``: ``measure(..., energy=False)``, i.e. what a block costs on
  a machine without counters (CI's and most VMs');
- ``measure_energy_on``: the default ``measure()`` with counters to read;
- ``energy_read``: one fresh read of the counters (``EnergyMeter.zones()``), what a
  host collection adds for its ``energy`` group.
"""

from __future__ import annotations

import os
import tempfile
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import jobmeter
from benchmarks._common import (
    Check,
    Progress,
    RatioResult,
    Target,
    gc_off,
    interleaved,
    jobmeter_reset,
    median_min_max,
    meter_providers,
    points_of,
    ratio_checks,
    ratio_lines,
    ratio_results,
)
from jobmeter import _energy
from jobmeter._core.instruments import DURATION_BUCKETS

CALLS = 100_000
READS = 20_000
REPEATS = 7

TARGETS = (
    Target("measure_energy_off / bare_record", "measure_energy_off", "bare_record", 2.0),
    Target("measure_energy_on / bare_record", "measure_energy_on", "bare_record", 3.0),
    Target(
        "measure_energy_on / measure_energy_off", "measure_energy_on", "measure_energy_off", 1.5
    ),
)

_ZONES = (("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core"), ("intel-rapl:0:1", "uncore"),
          ("intel-rapl:0:2", "dram"), ("intel-rapl:1", "psys"))  # fmt: skip


@contextmanager
def fake_powercap() -> Iterator[Path]:
    """A one-socket powercap tree under a temporary sysfs, JOBMETER_SYSFS_PATH pointing at it."""
    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-sysfs-") as temporary:
        root = Path(temporary)
        for entry, name in _ZONES:
            zone = root / "class" / "powercap" / entry
            zone.mkdir(parents=True)
            (zone / "name").write_text(name + "\n")
            (zone / "energy_uj").write_text("123456789\n")
            (zone / "max_energy_range_uj").write_text("262143328850\n")
        before = os.environ.get("JOBMETER_SYSFS_PATH")
        os.environ["JOBMETER_SYSFS_PATH"] = str(root)
        _energy._reset_for_tests()
        try:
            yield root
        finally:
            _energy._reset_for_tests()
            if before is None:
                os.environ.pop("JOBMETER_SYSFS_PATH", None)
            else:
                os.environ["JOBMETER_SYSFS_PATH"] = before


@dataclass
class CaseResult:
    name: str
    description: str
    calls: int
    median_us: float
    min_us: float
    max_us: float
    per_call_us: list[float]


@dataclass
class EnergyResults:
    cases: dict[str, CaseResult]
    ratios: list[RatioResult]
    zones_read: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def checks(self) -> list[Check]:
        return ratio_checks(self.ratios)


def run(*, calls: int = CALLS, reads: int = READS, repeats: int = REPEATS,
        progress: Progress | None = None) -> EnergyResults:  # fmt: skip
    """Time every case ``repeats`` times, interleaved; microseconds per call."""
    started = perf_counter()
    with jobmeter_reset(), meter_providers() as providers, fake_powercap():
        meter = _energy.meter()
        if not meter.rapl_available():
            raise RuntimeError("the fake powercap tree was not read: the benchmark is wrong")
        zones = len(meter.zones())
        provider, _ = providers.new()
        histogram = provider.get_meter("bench").create_histogram(
            "bench.duration", unit="s", explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)
        )
        on, on_reader = providers.new()
        off, off_reader = providers.new()
        namespace = {
            "histogram": histogram, "meter": meter,
            "on": jobmeter.MetricsCollector("bench", meter_provider=on),
            "off": jobmeter.MetricsCollector("bench", meter_provider=off),
        }  # fmt: skip
        cases = {
            "bare_record": ("SDK Histogram.record(0.001, {operation.name, table})",
                            'histogram.record(0.001, {"operation.name": "load", "table": "o"})',
                            calls),
            "measure_energy_off": ('measure("load", {"table": "o"}, energy=False)',
                                   'with off.measure("load", {"table": "o"}, energy=False):\n'
                                   "    pass", calls),
            "measure_energy_on": ('measure("load", {"table": "o"}), package and dram read',
                                  'with on.measure("load", {"table": "o"}):\n    pass', calls),
            "energy_read": (f"EnergyMeter.zones(): one fresh read of the {zones} counted zones",
                            "meter.zones()", reads),
        }  # fmt: skip
        timers = {name: timeit.Timer(stmt, globals=namespace) for name, (_, stmt, _) in
                  cases.items()}  # fmt: skip
        per_call: dict[str, list[float]] = {name: [] for name in cases}
        with gc_off():
            for name, (_, _, n) in cases.items():
                timers[name].timeit(max(n // 10, 1))  # warm-up
            for name in interleaved(list(cases), repeats, "energy", progress):
                n = cases[name][2]
                per_call[name].append(timers[name].timeit(n) / n * 1e6)
        # The energy-on blocks must have read energy, and the energy-off ones none.
        for reader, wanted in ((on_reader, True), (off_reader, False)):
            if bool(points_of(reader, "jobmeter.operation.energy")) != wanted:
                raise RuntimeError("the energy cases do not measure what they claim")
    results = {}
    for name, (description, _, n) in cases.items():
        median_us, min_us, max_us = median_min_max(per_call[name])
        results[name] = CaseResult(name, description, n, median_us, min_us, max_us, per_call[name])
    medians = {name: r.median_us for name, r in results.items()}
    mins = {name: r.min_us for name, r in results.items()}
    return EnergyResults(results, ratio_results(TARGETS, medians, mins), zones,
                         perf_counter() - started)  # fmt: skip


def format_report(results: EnergyResults) -> str:
    lines = [
        "energy: measure() with energy on and off, and one counter read "
        f"({results.zones_read} zones of a fake one-socket powercap tree; "
        "microseconds per call, median and min)",
        "",
    ]
    lines.extend(
        f"  {r.name:<22}{r.median_us:>9.2f}{r.min_us:>9.2f}  {r.description}"
        for r in results.cases.values()
    )
    lines += ["", *ratio_lines(results.ratios, 44), f"\n  ({results.seconds:.1f} s)"]
    return "\n".join(lines)
