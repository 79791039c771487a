"""HostCollector against ground truth from real subprocesses, switches, intervals and fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import pytest

import jobmeter
from jobmeter._core.config import DEFAULT_HOST_GROUPS
from jobmeter.host import HostCollector
from jobmeter.testing import InMemoryMetrics, in_memory

MIB = 1024 * 1024
# A child that does one known thing per line read on stdin, and says "ok" after each.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    held = []
    for command in sys.stdin:
        command = command.strip()
        if command == "allocate":
            held.append(bytearray(200 * 1024 * 1024))  # zero-filled: every page touched
        elif command == "burn":
            start = time.process_time()
            x = 0
            while time.process_time() - start < 1.0:
                for i in range(10_000):
                    x += i * i
        elif command == "write":
            with open(sys.argv[1], "wb") as out:
                out.write(os.urandom(32 * 1024 * 1024))
                out.flush()
                os.fsync(out.fileno())
        print("ok", flush=True)
    """
)


class Child:
    def __init__(self, tmp_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path / "written.bin")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def do(self, command: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    started = Child(tmp_path)
    started.do("noop")  # interpreter started and idle
    yield started
    started.close()


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as metrics:
        yield metrics


def _fresh(recorded: InMemoryMetrics, name: str, attributes: Mapping[str, object]) -> float:
    time.sleep(0.25)  # past the sample cache: the next collection reads anew
    return recorded.value(name, attributes)


def test_memory_of_another_process_matches_what_it_allocated(
    recorded: InMemoryMetrics, child: Child
) -> None:
    HostCollector(pid=child.pid, cpu=False, memory=False, disk=False, network=False,
                  filesystem=False, load=False, gpu=False)  # fmt: skip
    before = _fresh(recorded, "process.memory.usage", {"process.pid": child.pid})
    child.do("allocate")
    after = _fresh(recorded, "process.memory.usage", {"process.pid": child.pid})
    assert after - before == pytest.approx(200 * MIB, rel=0.05)
    assert recorded.value("process.memory.virtual", {"process.pid": child.pid}) >= after


def test_cpu_time_of_another_process_matches_what_it_burned(
    recorded: InMemoryMetrics, child: Child
) -> None:
    HostCollector(pid=child.pid, gpu=False)
    attributes = {"process.pid": child.pid}
    before = _fresh(recorded, "process.cpu.time", attributes)
    child.do("burn")
    after = _fresh(recorded, "process.cpu.time", attributes)
    assert after - before == pytest.approx(1.0, rel=0.10)


def test_disk_writes_of_another_process_match_what_it_wrote(
    recorded: InMemoryMetrics, child: Child
) -> None:
    HostCollector(pid=child.pid, gpu=False)
    attributes = {"process.pid": child.pid, "disk.io.direction": "write"}
    before = _fresh(recorded, "process.disk.io", attributes)
    child.do("write")
    after = _fresh(recorded, "process.disk.io", attributes)
    assert after - before == pytest.approx(32 * MIB, rel=0.05)


def test_utilization_is_over_the_interval_not_the_lifetime(
    recorded: InMemoryMetrics, child: Child
) -> None:
    """Utilization is CPU time over the time between two collections, then ~0 when idle."""
    HostCollector(pid=child.pid, gpu=False)
    cpus = len(os.sched_getaffinity(0))
    attributes = {"process.pid": child.pid}
    time.sleep(1.0)  # an idle second first: a lifetime average would be far lower
    cpu_before = _fresh(recorded, "process.cpu.time", attributes)
    started = time.monotonic()
    child.do("burn")
    time.sleep(0.25)
    busy = recorded.value("process.cpu.utilization", attributes)
    elapsed = time.monotonic() - started
    cpu_after = recorded.value("process.cpu.time", attributes)
    assert cpu_after - cpu_before >= 0.9
    expected = (cpu_after - cpu_before) / (elapsed * cpus)
    assert busy == pytest.approx(expected, rel=0.15)
    lifetime = cpu_after / (time.time() - psutil.Process(child.pid).create_time()) / cpus
    assert busy > 1.3 * lifetime
    time.sleep(0.5)
    idle = _fresh(recorded, "process.cpu.utilization", attributes)
    assert idle < 0.05


def test_tree_mode_counts_descendants(recorded: InMemoryMetrics, child: Child) -> None:
    HostCollector(pid=os.getpid(), tree=True, cpu=False, memory=False, disk=False,
                  network=False, filesystem=False, load=False, gpu=False)  # fmt: skip
    attributes = {"process.pid": os.getpid()}
    before = _fresh(recorded, "process.memory.usage", attributes)
    child.do("allocate")
    after = _fresh(recorded, "process.memory.usage", attributes)
    assert after - before == pytest.approx(200 * MIB, rel=0.05)
    assert recorded.value("process.thread.count", attributes) >= 2


def test_default_groups_and_semantic_convention_attributes(recorded: InMemoryMetrics) -> None:
    HostCollector(gpu=False)
    time.sleep(0.3)  # utilization needs an interval since the collector was created
    names = {metric.name for _, metric in recorded.metrics()}
    assert {
        "process.cpu.time", "process.cpu.utilization", "process.memory.usage",
        "process.memory.virtual", "process.disk.io", "process.thread.count",
        "process.unix.file_descriptor.count", "process.context_switches",
        "process.paging.faults", "system.cpu.time", "system.cpu.utilization",
        "system.memory.usage", "system.memory.utilization", "system.disk.io",
        "system.disk.operations", "system.network.io", "system.network.packet.count",
        "system.network.errors", "system.filesystem.usage", "system.cpu.load_average.1m",
    } <= names  # fmt: skip
    # Per-CPU series are off by default.
    assert not [p for p in recorded.points("system.cpu.time") if "cpu.logical_number" in
                (p.attributes or {})]  # fmt: skip
    modes = {(p.attributes or {})["cpu.mode"] for p in recorded.points("system.cpu.time")}
    assert {"user", "system", "idle"} <= modes
    memory = recorded.points("system.memory.usage")
    assert {(p.attributes or {})["system.memory.state"] for p in memory} == {
        "used", "free", "buffers", "cached"}  # fmt: skip
    # Own process: no process.pid attribute (it is in the resource).
    assert recorded.points("process.memory.usage", {"process.pid": os.getpid()}) == []
    assert recorded.value("process.memory.usage") > 10 * MIB


def test_disabled_groups_produce_no_series(recorded: InMemoryMetrics) -> None:
    HostCollector(network=False, filesystem=False, load=False, process=False, gpu=False)
    names = {metric.name for _, metric in recorded.metrics()}
    assert not [n for n in names if n.startswith(("system.network", "system.filesystem",
                                                  "system.cpu.load", "process."))]  # fmt: skip
    assert "system.cpu.time" in names


def test_per_cpu_when_asked(recorded: InMemoryMetrics) -> None:
    HostCollector(per_cpu=True, process=False, gpu=False)
    numbers = {(p.attributes or {}).get("cpu.logical_number")
               for p in recorded.points("system.cpu.time")}  # fmt: skip
    assert numbers == set(range(os.cpu_count() or 1))


def test_environment_chooses_groups(
    monkeypatch: pytest.MonkeyPatch, recorded: InMemoryMetrics
) -> None:
    monkeypatch.setenv("JOBMETER_HOST_METRICS", "cpu, memory")
    HostCollector()
    prefixes = {metric.name.rsplit(".", 1)[0] for _, metric in recorded.metrics()}
    assert prefixes <= {"system.cpu", "system.memory", "system.paging"}
    assert "system.cpu" in prefixes


def test_unknown_group_warns_and_the_default_groups_apply(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBMETER_HOST_METRICS", "cpu,gpus")
    assert HostCollector().groups == DEFAULT_HOST_GROUPS
    [warning] = [
        r.getMessage() for r in caplog.records if "JOBMETER_HOST_METRICS" in r.getMessage()
    ]
    assert warning == (
        "jobmeter: JOBMETER_HOST_METRICS='cpu,gpus' is invalid: unknown group 'gpus'; accepted: "
        "cpu, per_cpu, memory, disk, network, filesystem, load, process, gpu, energy "
        "(comma-separated); it is ignored and the default applies"
    )


def test_unknown_group_is_a_clear_error_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBMETER_HOST_METRICS", "cpu,gpus")
    monkeypatch.setenv("JOBMETER_STRICT", "true")
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        HostCollector()
    assert str(raised.value) == (
        "JOBMETER_HOST_METRICS='cpu,gpus' is invalid: unknown group 'gpus'; accepted: cpu, "
        "per_cpu, memory, disk, network, filesystem, load, process, gpu, energy (comma-separated)"
    )
    with pytest.raises(TypeError, match="gpus"):
        HostCollector(gpus=True)  # type: ignore[call-arg]  # a wrong argument in code raises


def test_forked_child_reports_its_own_process() -> None:
    script = textwrap.dedent(
        """
        import json, os, time
        from jobmeter.host import HostCollector
        from jobmeter.testing import in_memory
        with in_memory() as recorded:
            HostCollector(cpu=False, memory=False, disk=False, network=False,
                          filesystem=False, load=False, gpu=False)
            parent_rss = recorded.value("process.memory.usage")
            pid = os.fork()
            if pid == 0:
                held = bytearray(150 * 1024 * 1024)
                time.sleep(0.3)
                print(json.dumps({
                    "pid": os.getpid(),
                    "resource_pid": recorded.resource().attributes["process.pid"],
                    "rss": recorded.value("process.memory.usage"),
                    "parent_rss": parent_rss,
                }), flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    seen = json.loads(done.stdout)
    assert seen["resource_pid"] == seen["pid"]
    assert seen["rss"] - seen["parent_rss"] == pytest.approx(150 * MIB, rel=0.10)


def test_start_host_metrics_is_idempotent(recorded: InMemoryMetrics) -> None:
    from jobmeter.host import _collector as host

    host._started = None
    first = jobmeter.start_host_metrics(gpu=False)
    assert jobmeter.start_host_metrics() is first
    assert recorded.value("process.memory.usage") > 0
    host._started = None


def test_info_command_prints_machine_facts() -> None:
    done = subprocess.run([sys.executable, "-m", "jobmeter", "info", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    facts = json.loads(done.stdout)
    assert facts["host.name"] == os.uname().nodename
    assert facts["jobmeter.host.cpu.logical_count"] == os.cpu_count()
    assert facts["jobmeter.host.memory.total"] > 0
    assert facts["jobmeter.host.gpu.count"] == 0
    table = subprocess.run([sys.executable, "-m", "jobmeter", "info"], capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert "host.cpu.model.name" in table.stdout
