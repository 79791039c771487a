"""The RAPL reader: which zones count, wraps, unreadable counters, and the meter's readings.

Ground truth is the fake powercap tree's counters, advanced by known amounts:
the readings must be exactly what was added to the zones that count, never
the sub-domains of a package added to it (codecarbon's #788), never a guess
where nothing can be read (its #244).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.fake_powercap import FakePowercap
from jobmeter import _energy
from jobmeter._energy import FRESH_S, difference

APPROX = 1e-6


@pytest.fixture
def meter() -> Iterator[_energy.EnergyMeter]:
    _energy._reset_for_tests()
    yield _energy.meter()
    _energy._reset_for_tests()


def fresh(meter: _energy.EnergyMeter) -> _energy.Reading:
    """A reading that is not the cached one (the cache lasts FRESH_S)."""
    meter._at = float("-inf")
    return meter.read()


def test_packages_and_dram_count_core_uncore_and_psys_do_not(
    powercap: FakePowercap, meter: _energy.EnergyMeter
) -> None:
    """A package holds its core and uncore; psys holds all: only package and dram add up."""
    powercap.intel_server(sockets=2)
    start = fresh(meter)
    assert start == (0.0, 0.0, None)
    powercap.zones["intel-rapl:0"].add(10.0)
    powercap.zones["intel-rapl:0:0"].add(6.0)  # core: inside package-0
    powercap.zones["intel-rapl:0:1"].add(2.0)  # uncore: inside package-0
    powercap.zones["intel-rapl:0:2"].add(3.0)  # dram of socket 0
    powercap.zones["intel-rapl:1"].add(4.5)  # package-1
    powercap.zones["intel-rapl:1:2"].add(0.25)  # dram of socket 1
    powercap.zones["intel-rapl:2"].add(40.0)  # psys: the platform
    cpu, dram, gpu = difference(start, fresh(meter))
    assert cpu == pytest.approx(14.5, abs=APPROX)
    assert dram == pytest.approx(3.25, abs=APPROX)
    assert gpu is None
    assert sorted(zone.name for zone in meter._zones or ()) == [
        "dram", "dram", "package-0", "package-1",
    ]  # fmt: skip


def test_a_counter_that_wraps_goes_on_counting(
    powercap: FakePowercap, meter: _energy.EnergyMeter
) -> None:
    """The counter restarts at zero past max_energy_range_uj: the energy is not negative or lost."""
    top = 100_000_000  # 100 J: wraps quickly
    zone = powercap.zone("intel-rapl:0", "package-0", start_uj=top - 2_000_000, max_range_uj=top)
    start = fresh(meter)
    zone.add(5.0)  # 2 J to the top, then 3 J past zero
    assert zone.value_uj < 4_000_000  # it did wrap
    middle = fresh(meter)
    zone.add(97.0)  # almost a whole turn more, read once between
    end = fresh(meter)
    assert difference(start, middle)[0] == pytest.approx(5.0, abs=APPROX)
    assert difference(start, end)[0] == pytest.approx(102.0, abs=APPROX)


def test_the_mmio_twin_of_a_package_is_not_added(
    powercap: FakePowercap, meter: _energy.EnergyMeter
) -> None:
    """intel-rapl-mmio:0 is package-0 again, read through MMIO: counted once."""
    msr = powercap.zone("intel-rapl:0", "package-0")
    mmio = powercap.zone("intel-rapl-mmio:0", "package-0")
    start = fresh(meter)
    msr.add(7.0)
    mmio.add(7.0)
    assert difference(start, fresh(meter))[0] == pytest.approx(7.0, abs=APPROX)


def test_mmio_alone_and_amd_zones_are_read(
    powercap: FakePowercap, meter: _energy.EnergyMeter
) -> None:
    """Where only MMIO (or a kernel's amd-rapl) lists a package, that is the package."""
    mmio = powercap.zone("intel-rapl-mmio:0", "package-0")
    amd = powercap.zone("amd-rapl:1", "package-1")
    start = fresh(meter)
    mmio.add(1.5)
    amd.add(2.5)
    cpu, dram, _ = difference(start, fresh(meter))
    assert cpu == pytest.approx(4.0, abs=APPROX)
    assert dram is None


def test_disabled_zones_and_other_entries_are_skipped(
    powercap: FakePowercap, meter: _energy.EnergyMeter
) -> None:
    powercap.zone("intel-rapl:0", "package-0")
    off = powercap.zone("intel-rapl:1", "package-1", enabled=False)
    (powercap.powercap / "intel-rapl").mkdir()  # the control type itself: no zone
    (powercap.powercap / "dtpm").mkdir()
    start = fresh(meter)
    off.add(50.0)
    assert difference(start, fresh(meter))[0] == 0.0
    assert [zone.name for zone in meter._zones or ()] == ["package-0"]


def test_no_powercap_tree_is_one_info_line_and_no_reading(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    meter: _energy.EnergyMeter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No guess from the CPU model's TDP: nothing, and one line that says so."""
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="jobmeter"):
        assert fresh(meter) == (None, None, None)
        assert fresh(meter) == (None, None, None)
    lines = [r for r in caplog.records if "RAPL" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "CPU energy is not reported" in lines[0].getMessage()
    assert meter.rapl_available() is False


def test_energy_off_reads_nothing(
    powercap: FakePowercap, monkeypatch: pytest.MonkeyPatch, meter: _energy.EnergyMeter
) -> None:
    powercap.intel_server()
    monkeypatch.setenv("JOBMETER_ENERGY", "false")
    assert fresh(meter) == (None, None, None)
    assert meter.rapl_available() is False


def test_a_bad_energy_value_warns_and_energy_stays_on(
    powercap: FakePowercap,
    monkeypatch: pytest.MonkeyPatch,
    meter: _energy.EnergyMeter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    powercap.intel_server()
    monkeypatch.setenv("JOBMETER_ENERGY", "sometimes")
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        assert fresh(meter)[0] == 0.0
    (warning,) = [r for r in caplog.records if "JOBMETER_ENERGY" in r.getMessage()]
    assert "sometimes" in warning.getMessage()


def test_a_block_start_may_share_a_reading_younger_than_a_millisecond(
    powercap: FakePowercap, meter: _energy.EnergyMeter
) -> None:
    """The counters tick every ~1 ms: a block's start reuses a reading that young; ends read."""
    zone = powercap.zone("intel-rapl:0", "package-0")
    first = fresh(meter)
    zone.add(1.0)
    meter._at = time.perf_counter() + 60  # the last reading stays young for this test
    assert meter.read(fresh=False) == first
    assert difference(first, fresh(meter))[0] == pytest.approx(1.0, abs=APPROX)
    assert FRESH_S == 0.001


def test_a_counter_that_fails_later_is_dropped_with_one_line(
    powercap: FakePowercap, meter: _energy.EnergyMeter, caplog: pytest.LogCaptureFixture
) -> None:
    zone = powercap.zone("intel-rapl:0", "package-0")
    powercap.zone("intel-rapl:0:2", "dram")
    fresh(meter)
    (zone.path / "energy_uj").write_text("garbage\n")  # in place: the held file reads it
    with caplog.at_level(logging.INFO, logger="jobmeter"):
        cpu, dram, _ = fresh(meter)
        fresh(meter)
    assert cpu is None  # no package left to read; the dram stays
    assert dram == 0.0
    assert len([r for r in caplog.records if "no longer reported" in r.getMessage()]) == 1


_UNREADABLE_CHILD = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
from jobmeter import _energy
print("reading", _energy.meter().read())
"""


def test_root_only_counters_are_one_info_line_and_no_guess(powercap: FakePowercap) -> None:
    """Since Linux 5.10 energy_uj is mode 0400 (Platypus): an ordinary user cannot read it.

    As root (CI), the child runs without the capabilities that let root read any
    file (setpriv), so the owner's 0400 applies to it as to any other user.
    """
    powercap.intel_server()
    command = [sys.executable, "-c", _UNREADABLE_CHILD]
    for zone in powercap.zones.values():
        counter = zone.path / "energy_uj"
        if os.geteuid() == 0:
            os.chown(counter, 65534, 65534)
            counter.chmod(0o400)
        else:
            counter.chmod(0o000)
    if os.geteuid() == 0:
        command = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                   "--bounding-set=-dac_override,-dac_read_search", "--", *command]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    out = done.stdout
    assert "reading (None, None, None)" in out
    lines = [line for line in out.splitlines() if "RAPL" in line]
    assert len(lines) == 1, out
    assert lines[0].startswith("INFO ")
    assert "not readable" in lines[0]
    assert "ermission denied" in lines[0]
    assert "root-only" in lines[0]


def test_jobmeter_info_says_which_counters_are_read(powercap: FakePowercap) -> None:
    def counters() -> str:
        done = subprocess.run([sys.executable, "-m", "jobmeter", "info", "--json"],
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return str(json.loads(done.stdout)["jobmeter.energy.counters"])

    assert counters() == f"none readable under {powercap.powercap}"
    powercap.intel_server()
    assert counters() == "RAPL: intel-rapl:0 (package-0), intel-rapl:0:2 (dram)"
