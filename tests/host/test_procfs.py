"""The /proc readers against psutil, the reference they replace, on this machine.

Each reader must give what psutil gives for the fields HostCollector reports;
counters are read a moment apart, so they may only have grown in between.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import psutil
import pytest

from jobmeter.host import _procfs, _system

MIB = 1024 * 1024


def _between(first: float, value: float, last: float, slack: float = 0.0) -> bool:
    return first - slack <= value <= last + slack


def test_cpu_times_match_psutil() -> None:
    before = _system.cpu_modes(psutil.cpu_times())
    [found] = _procfs.cpu_times(per_cpu=False)
    after = _system.cpu_modes(psutil.cpu_times())
    assert found.keys() == before.keys()
    tick = 1 / _procfs.CLOCK_TICKS
    for mode, value in found.items():
        assert _between(before[mode], value, after[mode], slack=tick), mode
    per_cpu = _procfs.cpu_times(per_cpu=True)
    assert len(per_cpu) == len(psutil.cpu_times(percpu=True))


def test_memory_matches_psutil() -> None:
    memory, swap = _procfs.meminfo()
    reference, reference_swap = psutil.virtual_memory(), psutil.swap_memory()
    assert memory.total == reference.total
    assert swap.total == reference_swap.total
    # The rest moves with the machine: within 64 MiB of a read a moment later.
    for field in ("used", "free", "buffers", "cached"):
        assert abs(getattr(memory, field) - getattr(reference, field)) < 64 * MIB, field
    assert abs(swap.used - reference_swap.used) < 64 * MIB
    assert memory.used + memory.free <= memory.total


def test_disks_and_networks_match_psutil() -> None:
    disks = _procfs.diskstats()
    reference = psutil.disk_io_counters(perdisk=True)
    assert set(disks) == {n for n in reference if not n.startswith(("loop", "ram"))}
    for name, (read, written, reads, writes) in disks.items():
        later = reference[name]
        assert (read, reads) <= (later.read_bytes, later.read_count), name
        assert later.write_bytes - written < 64 * MIB
        assert later.write_count - writes < 10_000
    nics = _procfs.net_dev()
    reference_nics = psutil.net_io_counters(pernic=True)
    assert set(nics) == set(reference_nics)
    for name, counters in nics.items():
        nic = reference_nics[name]
        expected = (nic.bytes_recv, nic.bytes_sent, nic.packets_recv, nic.packets_sent,
                    nic.errin, nic.errout)  # fmt: skip
        assert all(c <= e for c, e in zip(counters, expected, strict=True)), name


def test_process_matches_psutil() -> None:
    process = psutil.Process()
    held = b"x" * (32 * MIB)  # noqa: F841  (resident while both read)
    found = _procfs.process(os.getpid())
    with process.oneshot():
        cpu, memory = process.cpu_times(), process.memory_info()
        threads, fds, switches = (
            process.num_threads(),
            process.num_fds(),
            process.num_ctx_switches(),
        )
        io = process.io_counters()
    tick = 1 / _procfs.CLOCK_TICKS
    assert _between(found.cpu_user, cpu.user, found.cpu_user + 0.05, slack=tick)
    assert _between(found.cpu_system, cpu.system, found.cpu_system + 0.05, slack=tick)
    assert (found.children_user, found.children_system) == (cpu.children_user,
                                                             cpu.children_system)  # fmt: skip
    assert abs(found.rss - memory.rss) < 4 * MIB
    assert found.vms == memory.vms
    assert (found.threads, found.fds) == (threads, fds)
    assert found.read_bytes <= io.read_bytes
    assert found.write_bytes <= io.write_bytes
    assert _between(found.ctx_voluntary, switches.voluntary, found.ctx_voluntary + 50)
    assert _between(found.ctx_involuntary, switches.involuntary, found.ctx_involuntary + 50)
    assert found.faults_minor > 32 * MIB // _procfs.PAGE_SIZE  # the pages of ``held``


def test_a_process_that_has_gone_is_a_lookup_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        _procfs.process(child.pid)


def test_mount_table_is_read_again_only_when_the_kernel_says_it_changed() -> None:
    """A mount in a private mount namespace flags /proc/self/mounts once, then not again."""
    unshare = shutil.which("unshare")
    script = textwrap.dedent(
        """
        import os, subprocess, tempfile
        from jobmeter.host._system import MountTable
        table = MountTable()
        first = table.partitions()
        quiet = table._changed()
        target = tempfile.mkdtemp()
        subprocess.run(["mount", "-t", "tmpfs", "none", target], check=True)
        after_mount = table._changed()
        again = table._changed()
        subprocess.run(["umount", target], check=True)
        after_umount = table._changed()
        print(bool(first), quiet, after_mount, again, after_umount)
        """
    )
    if unshare is None:
        pytest.skip("no unshare(1) to make a private mount namespace")
    done = subprocess.run([unshare, "--mount", "--map-root-user", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"this kernel refuses a private mount namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True", "False", "True"]
