"""Load and bounds: unbounded attribute values, many threads, long runs.

The default tests are scaled down to run in seconds; the full sizes (10 M
measure() calls, a 10-minute run) are marked ``soak`` and run by ``make soak``.
Each test prints its figures (pytest -s shows them) for docs/reliability.md.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import jobmeter
from jobmeter import testing
from jobmeter.cli import app
from jobmeter.collector._totals import CARDINALITY_LIMIT, SDK_CARDINALITY_LIMIT

DURATION = "jobmeter.operation.duration"
OVERFLOW = "otel.metric.overflow"
MIB = 1024 * 1024


def _rss(pid: int | str = "self") -> int:
    """Resident memory of a process from /proc, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _histogram_points(metrics: testing.InMemoryMetrics) -> list[Any]:
    return [
        point
        for _resource, metric in metrics.metrics()
        if metric.name == DURATION
        for point in metric.data.data_points
    ]


# -- cardinality --------------------------------------------------------------------------------


def test_100000_distinct_attribute_values_stay_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """One warning, an overflow series that keeps every count, no growth on the next 100,000."""
    caplog.set_level(logging.WARNING)
    with testing.in_memory() as metrics:
        ops = jobmeter.MetricsCollector("cardinality")
        gc.collect()
        rss_before = _rss()
        for i in range(100_000):
            with ops.measure("lookup", {"user.id": f"u{i}"}):
                pass
        metrics.metrics()  # collect once: the SDK's own series exist from here on
        gc.collect()
        rss_first = _rss()
        # tracemalloc slows every allocation: exact bytes for the second 100,000 only.
        tracemalloc.start()
        first = tracemalloc.get_traced_memory()[0]
        for i in range(100_000, 200_000):
            with ops.measure("lookup", {"user.id": f"u{i}"}):
                pass
        gc.collect()
        second = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        points = _histogram_points(metrics)
        cpu = metrics.points("jobmeter.operation.cpu.time")
    print(f"\ncardinality: RSS +{(rss_first - rss_before) / MIB:.1f} MiB after 100,000 values; "
          f"traced +{(second - first) / MIB:.2f} MiB after 100,000 more")  # fmt: skip
    warnings = [r for r in caplog.records if "attribute sets" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"more than {CARDINALITY_LIMIT} attribute sets" in warnings[0].getMessage()
    # The histogram: at most the SDK's limit of series, every block counted.
    assert len(points) == SDK_CARDINALITY_LIMIT + 1  # the SDK keeps 2000 sets + its overflow
    assert sum(p.count for p in points) == 200_000
    overflow = [p for p in points if (p.attributes or {}).get(OVERFLOW) is True]
    assert len(overflow) == 1
    assert overflow[0].count > 190_000
    # CPU time: 999 attribute sets + the overflow set, two cpu.mode points each.
    assert len(cpu) == 2 * (CARDINALITY_LIMIT + 1)
    assert len([p for p in cpu if (p.attributes or {}).get(OVERFLOW) is True]) == 2
    # Bounded: 999 + 2000 series cost a few MiB; the next 100,000 values nothing.
    assert rss_first - rss_before < 64 * MIB
    assert second - first < 1 * MIB


# -- many threads -------------------------------------------------------------------------------


def _hammer(tmp_path: Path, threads: int, per_thread: int) -> dict[str, Any]:
    """``threads`` threads measure ``per_thread`` blocks each inside a Run; figures back."""
    half = per_thread // 2
    rss: list[int] = []
    flush = float(os.environ["JOBMETER_RUN_FLUSH_INTERVAL"])

    def settled_rss() -> None:
        # Between drains, blocks wait in memory for the next flush: read after one.
        time.sleep(2 * flush)
        gc.collect()
        # glibc keeps what 32 threads freed in per-thread arenas; give it back first, so
        # RSS shows live memory, not the allocator's high-water mark.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        rss.append(_rss())

    barrier = threading.Barrier(threads, action=settled_rss)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            measured = ops.measure("hot", resources=False)
            barrier.wait()
            for _ in range(half):
                with measured:  # one object per thread: measure() is not re-entered across
                    pass
            barrier.wait()
            for _ in range(per_thread - half):
                with ops.measure("hot", resources=False):
                    pass
            barrier.wait()
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    root = tmp_path / "runs"
    with testing.in_memory() as metrics:
        ops = jobmeter.MetricsCollector("load")
        started = time.perf_counter()
        with jobmeter.Run("load", directory=root, interval=0.5) as run:
            pool = [threading.Thread(target=work) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
        elapsed = time.perf_counter() - started
        assert not errors, errors
        count = metrics.count(DURATION, {"operation.name": "hot"})
    result = CliRunner().invoke(app, ["report", run.id, "--json", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    recorded = {op["label"]: op["count"] for op in report["operations"]}
    figures = {
        "calls": threads * per_thread,
        "seconds": elapsed,
        "histogram_count": count,
        "recorded": recorded.get("hot"),
        "rss_start": rss[0],
        "rss_half": rss[1],
        "rss_end": rss[2],
    }
    print(f"\nthreads: {json.dumps(figures)}")
    return figures


def _check_hammer(figures: dict[str, Any]) -> None:
    assert figures["histogram_count"] == figures["calls"]
    assert figures["recorded"] == figures["calls"]
    # Flat: the second half adds no more than noise (pending records drain each flush).
    assert figures["rss_end"] - figures["rss_half"] < 16 * MIB


def test_32_threads_lose_no_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMETER_RUN_FLUSH_INTERVAL", "0.5")
    _check_hammer(_hammer(tmp_path, threads=32, per_thread=20_000))


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_10_million_calls_from_32_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMETER_RUN_FLUSH_INTERVAL", "1")
    _check_hammer(_hammer(tmp_path, threads=32, per_thread=312_500))


# -- a long run ---------------------------------------------------------------------------------


def _long_run(tmp_path: Path, seconds: float) -> dict[str, Any]:
    """`jobmeter run --interval 0.1` of a sleeping job; the wrapper's RSS read as it runs."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))},
        "JOBMETER_RUN_DIR": str(tmp_path / "runs"),
        "OTEL_EXPORTER_PROMETHEUS_PORT": "0",  # the default exporter, on any free port
    }
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--interval", "0.1", "--",
         sys.executable, "-c", f"import time; time.sleep({seconds})"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    rss: list[tuple[float, int]] = []
    started = time.monotonic()
    while wrapper.poll() is None:
        try:
            rss.append((time.monotonic() - started, _rss(wrapper.pid)))
        except (OSError, AssertionError):  # it ended between poll() and the read
            break
        time.sleep(0.25)
    _out, err = wrapper.communicate(timeout=60)
    assert wrapper.returncode == 0, err.decode()
    (run,) = (tmp_path / "runs").iterdir()
    usage = run / "usage.jsonl"
    lines = usage.read_bytes().splitlines(keepends=True)
    # Settled: after start-up (imports, the first samples), up to the end.
    settled = [value for at, value in rss if at >= 2.0]
    window = max(len(settled) // 4, 1)
    figures = {
        "seconds": seconds,
        "samples": len(lines),
        "usage_bytes": usage.stat().st_size,
        "line_bytes_median": statistics.median(len(line) for line in lines),
        "line_bytes_max": max(len(line) for line in lines),
        "rss_early": statistics.median(settled[:window]),
        "rss_late": statistics.median(settled[-window:]),
        "rss_max": max(value for _, value in rss),
    }
    print(f"\nlong run: {json.dumps(figures)}")
    return figures


def _check_long_run(figures: dict[str, Any]) -> None:
    expected = figures["seconds"] / 0.1
    assert 0.8 * expected <= figures["samples"] <= expected + 5
    # Each sample costs one line of about the same size: the file grows linearly.
    assert figures["line_bytes_max"] <= 2 * figures["line_bytes_median"]
    assert figures["usage_bytes"] <= figures["samples"] * figures["line_bytes_max"]
    assert figures["rss_late"] - figures["rss_early"] < 8 * MIB


def test_a_long_run_keeps_the_wrapper_flat(tmp_path: Path) -> None:
    _check_long_run(_long_run(tmp_path, seconds=10))


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_a_ten_minute_run_keeps_the_wrapper_flat(tmp_path: Path) -> None:
    _check_long_run(_long_run(tmp_path, seconds=600))
