"""The peak memory of measured blocks, against the kernel's own figures.

Each case runs in a fresh interpreter, so that the process's high-water mark
is its own. The ground truth of a spike is the RSS the process had right after
touching every page of it (``/proc/self/statm``), read by the workload itself;
a block's peak must cover it and stay within a few MiB of it, while its RSS at
the end (``memory.usage``) is back near the start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import jobmeter
from jobmeter import store

MiB = 1 << 20
SPIKE = 300 * MiB
SLACK = 8 * MiB  # interpreter and allocator noise around a spike

PRELUDE = """
import json, os, resource, sys, threading
import jobmeter
from jobmeter import store
from jobmeter.collector import _peak
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
ops = jobmeter.MetricsCollector("t", meter_provider=MeterProvider(metric_readers=[reader]))
PAGE = os.sysconf("SC_PAGE_SIZE")
truth = {}

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

def spike(name, mib):
    block = bytearray(mib << 20)
    for i in range(0, len(block), PAGE):
        block[i] = 1
    truth[name] = rss()  # the highest the process went: every page touched, none freed
    del block

def points(metric):
    found = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == metric:
                    for p in m.data.data_points:
                        found[p.attributes["operation.name"]] = p.value
    return found

def done(**extra):
    print(json.dumps({"peak": points("jobmeter.operation.memory.peak"),
                      "usage": points("jobmeter.operation.memory.usage"),
                      "truth": truth, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      * 1024, "lifetime": _peak.lifetime_peak(),
                      "pinned": _peak._tracker.pinned, **extra}))
"""
# A process keeps in ru_maxrss the size of what it was forked from, through exec: started
# from pytest it would begin with pytest's RSS. Forked from a small shell, it begins small.
FROM_A_SMALL_PARENT = ["/bin/sh", "-c", '"$@" & wait $!', "sh"]


def _run(code: str, *, parent: list[str] = FROM_A_SMALL_PARENT) -> dict[str, Any]:
    done = subprocess.run(
        [*parent, sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    assert out["pinned"] is (parent is not FROM_A_SMALL_PARENT)
    return out


def _covers(peak: int, truth: int) -> None:
    """The block's peak is the spike's RSS, within the allocator's noise."""
    assert truth - SLACK <= peak <= truth + SLACK, (peak / MiB, truth / MiB)


def test_a_spike_freed_inside_the_block_is_its_peak() -> None:
    out = _run("""
        with ops.measure("load", peak_memory=True):
            before = rss()
            spike("load", 300)
        done(before=before)
    """)
    _covers(out["peak"]["load"], out["truth"]["load"])
    assert out["truth"]["load"] - out["before"] >= SPIKE - SLACK
    # What the block had at its end: the spike is gone (the figure that missed it).
    assert out["usage"]["load"] < out["truth"]["load"] - SPIKE + 2 * SLACK


def test_nested_blocks_each_get_the_peak_of_their_own_time() -> None:
    """The outer block sees both spikes; a sibling after the big spike sees only its own."""
    out = _run("""
        with ops.measure("outer", peak_memory=True):
            with ops.measure("big", peak_memory=True):
                spike("big", 300)
            with ops.measure("small", peak_memory=True):
                spike("small", 40)
        with ops.measure("after", peak_memory=True):
            spike("after", 20)
        done()
    """)
    peak, truth = out["peak"], out["truth"]
    _covers(peak["big"], truth["big"])
    _covers(peak["outer"], truth["big"])
    _covers(peak["small"], truth["small"])
    _covers(peak["after"], truth["after"])
    assert peak["small"] < peak["big"] - 200 * MiB
    # The kernel's figure was reset by the later blocks; jobmeter's lifetime peak was kept.
    assert out["maxrss"] < truth["big"] - 200 * MiB
    assert out["lifetime"] >= truth["big"] - SLACK


def test_a_block_open_in_another_thread_sees_the_process_peak() -> None:
    """A peak is the process's: a spike in one thread counts for every block open then."""
    out = _run("""
        opened, spiked = threading.Event(), threading.Event()
        def waiting():
            with ops.measure("waiting", peak_memory=True):
                opened.set()
                spiked.wait()
        thread = threading.Thread(target=waiting)
        thread.start()
        opened.wait()
        with ops.measure("spiking", peak_memory=True):
            spike("spiking", 300)
        spiked.set()
        thread.join()
        with ops.measure("later", peak_memory=True):
            spike("later", 30)
        done()
    """)
    peak, truth = out["peak"], out["truth"]
    _covers(peak["spiking"], truth["spiking"])
    _covers(peak["waiting"], truth["spiking"])
    _covers(peak["later"], truth["later"])


def test_a_mark_pinned_by_a_large_parent_does_not_inflate_the_blocks() -> None:
    """exec keeps the parent's size in ru_maxrss, where a reset cannot lower it: VmHWM then."""
    large_parent = [sys.executable, "-c", textwrap.dedent("""
        import os, sys
        block = bytearray(300 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os.execv(sys.argv[1], sys.argv[1:])
    """)]  # fmt: skip
    out = _run("""
        with ops.measure("small", peak_memory=True):
            spike("small", 20)
        done()
    """, parent=large_parent)  # fmt: skip
    assert out["maxrss"] >= SPIKE  # pinned indeed
    _covers(out["peak"]["small"], out["truth"]["small"])


def test_without_a_resettable_mark_a_peak_is_exact_for_a_new_record_and_a_floor_otherwise() -> None:
    """Where clear_refs cannot be written, the lifetime mark is all there is."""
    out = _run("""
        _peak._tracker.resettable = False  # as on a read-only /proc
        with ops.measure("record", peak_memory=True):
            spike("record", 300)
        with ops.measure("below", peak_memory=True):
            before = rss()
            spike("below", 50)
        done(before=before)
    """)
    _covers(out["peak"]["record"], out["truth"]["record"])
    # Not a new record: the larger of the RSS at its start and end, below its true peak.
    assert out["peak"]["below"] <= out["truth"]["below"]
    assert out["peak"]["below"] >= out["before"] - SLACK
    assert out["maxrss"] >= out["truth"]["record"] - SLACK  # nothing was reset


def test_decorated_functions_and_generators_take_their_peak() -> None:
    out = _run("""
        @ops.measure("decorated", peak_memory=True)
        def work():
            spike("decorated", 100)
        work()
        @ops.measure("generator", peak_memory=True)
        def items():
            yield 1
            spike("generator", 60)
            yield 2
        list(items())
        done()
    """)
    _covers(out["peak"]["decorated"], out["truth"]["decorated"])
    _covers(out["peak"]["generator"], out["truth"]["generator"])


def test_by_default_the_peak_is_taken_only_while_a_run_records(tmp_path: Path) -> None:
    out = _run(f"""
        with ops.measure("plain"):
            spike("plain", 50)
        with ops.measure("refused", peak_memory=False):
            pass
        with jobmeter.Run("peaks", directory={str(tmp_path)!r}) as run:
            with ops.measure("in-run"):
                spike("in-run", 300)
            with ops.measure("off", peak_memory=False):
                pass
            with ops.measure("small"):
                spike("small", 20)
        done(summary=json.load(open(run.directory / "run.json"))["summary"],
             directory=str(run.directory))
    """)
    assert set(out["peak"]) == {"in-run", "small"}
    _covers(out["peak"]["in-run"], out["truth"]["in-run"])
    # The later block reset the kernel's mark; the run's peak still has the spike.
    assert out["summary"]["peak_rss_single_process_bytes"] >= out["truth"]["in-run"] - SLACK
    assert out["summary"]["peak_memory_bytes"] >= out["truth"]["in-run"] - SLACK
    report = store.report(store.list_runs(tmp_path)[-1])
    operations = {op["operation"]: op for op in report.records.operations}
    in_run = operations["in-run"]
    assert in_run["peak_memory_max_bytes"] == out["peak"]["in-run"]
    assert in_run["peak_memory_p95_bytes"] == out["peak"]["in-run"]  # one block: exact
    assert operations["off"]["peak_memory_max_bytes"] is None


def test_the_peak_of_commands_under_jobmeter_run_survives_their_resets(tmp_path: Path) -> None:
    """The wrapper's peak comes from the kernel (wait4, VmHWM), which the resets lowered."""
    # The wrapper starts the command from a small launcher: its ru_maxrss starts small.
    script = tmp_path / "job.py"
    script.write_text(
        PRELUDE
        + textwrap.dedent("""
        with ops.measure("spike"):
            spike("spike", 300)
        with ops.measure("small"):
            spike("small", 10)
        done()
    """)
    )
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--no-metrics", "--dir",
         str(tmp_path / "runs"), "--", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    _covers(out["peak"]["spike"], out["truth"]["spike"])
    assert out["maxrss"] < out["truth"]["spike"] - 200 * MiB  # the kernel's figure was reset
    [run] = store.list_runs(tmp_path / "runs")
    summary = json.loads((run.directory / "run.json").read_text())["summary"]
    assert summary["peak_rss_single_process_bytes"] >= out["truth"]["spike"] - SLACK


def test_the_lifetime_peak_is_left_in_the_run_at_its_interval(tmp_path: Path) -> None:
    """A run that dies mid-way keeps the peak its resets hid, up to the last interval.

    The peak is published by the recorder's drain, not by the block that saw it: a
    growing job would otherwise write a file every few blocks.
    """
    out = _run(f"""
        import time
        from pathlib import Path
        from jobmeter._rundata.recorder import Recorder
        recorder = Recorder(Path({str(tmp_path)!r}), interval=0.05).start()
        with ops.measure("spike", peak_memory=True):
            spike("spike", 300)
        with ops.measure("after", peak_memory=True):  # its reset hides the spike from the kernel
            pass
        target = Path({str(tmp_path)!r}) / f"peak.{{os.getpid()}}"
        for _ in range(400):  # the recorder's next drains
            if target.exists() and int(target.read_text()) >= truth["spike"] - (8 << 20):
                break
            time.sleep(0.01)
        done(published=int(target.read_text()))  # read before stop() and any exit hook
        sys.stdout.flush()
        os._exit(0)
    """)
    assert out["maxrss"] < out["truth"]["spike"] - 200 * MiB  # the kernel's figure was reset
    _covers(out["published"], out["truth"]["spike"])


def test_peak_memory_needs_resources() -> None:
    ops = jobmeter.MetricsCollector("t")
    with pytest.raises(ValueError, match="peak_memory=True needs resources=True"):
        ops.measure("x", resources=False, peak_memory=True)
    ops.measure("x", resources=False, peak_memory=False)  # no peak asked: fine


def test_a_forked_child_takes_its_own_peaks() -> None:
    """The child's windows and files are its own: /proc/self of the parent is not reset."""
    out = _run("""
        with ops.measure("parent", peak_memory=True):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                with ops.measure("child", peak_memory=True):
                    spike("child", 200)
                os.write(write_end, json.dumps(
                    [points("jobmeter.operation.memory.peak")["child"], truth["child"]]
                ).encode())
                os._exit(0)
            os.waitpid(pid, 0)
            child_peak, child_truth = json.loads(os.read(read_end, 1000))
            spike("parent", 50)
        done(child_peak=child_peak, child_truth=child_truth)
    """)
    _covers(out["child_peak"], out["child_truth"])
    _covers(out["peak"]["parent"], out["truth"]["parent"])  # the child's spike is not its own
    assert "child" not in out["peak"]
