"""``UsageMeter``: one block's figures, against what the kernel says another way."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobmeter.collector import UsageMeter

MIB = 2**20


def _write_bytes() -> int:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["write_bytes"])


def _vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_block_gets_its_wall_cpu_peak_and_io(tmp_path: Path) -> None:
    meter = UsageMeter()
    written_before = _write_bytes()
    start = time.perf_counter()
    with meter:
        block = bytearray(120 * MIB)
        for i in range(0, len(block), 4096):
            block[i] = 1
        rss_inside = _vm_rss()
        del block
        with open(tmp_path / "out", "wb") as f:
            f.write(os.urandom(3 * MIB))
            f.flush()
            os.fsync(f.fileno())
    wall = time.perf_counter() - start
    written = _write_bytes() - written_before
    usage = meter.usage
    assert usage is not None
    assert 0 < usage.wall_seconds <= wall
    assert usage.cpu_seconds <= usage.wall_seconds + 0.01  # one thread
    assert rss_inside - MIB <= usage.peak_rss_bytes  # freed before the end: the peak kept it
    assert usage.rss_bytes < rss_inside - 100 * MIB
    assert usage.written_bytes == written >= 3 * MIB
    assert usage.children_cpu_seconds == 0.0


def test_children_waited_for_count_apart() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter = UsageMeter(energy=False)
    with meter:
        subprocess.run([sys.executable, "-c", "x = sum(range(3_000_000))"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage = meter.usage
    assert usage is not None
    kernel = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert usage.children_cpu_seconds == pytest.approx(kernel, abs=1e-6)
    assert usage.children_cpu_seconds > 0.01
    assert usage.energy_joules is None


def test_one_meter_measures_one_block_at_a_time() -> None:
    meter = UsageMeter()
    with meter, pytest.raises(RuntimeError, match="make one per block"), meter:
        pass
