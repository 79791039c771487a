"""The run sampler's /proc reader against psutil, and in the corners of a process's life.

``run/_proc_files.py`` reads four /proc files per process, held open between
samples. Its figures must be psutil's for the same process (psutil is the
ground truth here), stay right across an exec (a held smaps_rollup goes stale),
and say "gone" once the process has ended or is a zombie; processes beyond
MAX_HELD are read without holding descriptors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from jobmeter.run._proc_files import MAX_HELD, HeldFile, ProcessFiles

MIB = 2**20
# Touches 64 MiB, writes 1 MiB to a file and fsyncs it, says ready, then sleeps.
HOLDER = """
import os, sys, time
held = bytearray(64 * 2**20)
for i in range(0, len(held), 4096):
    held[i] = 1
with open(sys.argv[1], "wb") as out:
    out.write(b"x" * 2**20)
    out.flush()
    os.fsync(out.fileno())
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: object) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path) + "/written"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    yield child
    child.kill()
    child.wait()


def test_the_figures_are_psutils(holder: subprocess.Popen[str]) -> None:
    files = ProcessFiles(holder.pid)
    figures = files.read()
    process = psutil.Process(holder.pid)
    with process.oneshot():
        cpu, memory, io = process.cpu_times(), process.memory_info(), process.io_counters()
        threads, fds = process.num_threads(), process.num_fds()
    pss = process.memory_full_info().pss
    with open(f"/proc/{holder.pid}/status") as status:
        hwm = int(status.read().split("VmHWM:")[1].split()[0]) * 1024
    files.close()
    assert figures is not None
    # A sleeping process: every figure is the same when read again.
    assert (figures.cpu_user, figures.cpu_system) == (cpu.user, cpu.system)
    assert figures.rss == memory.rss
    assert figures.rss >= 64 * MIB
    assert figures.pss == pss
    assert figures.hwm == hwm
    assert (figures.read_bytes, figures.write_bytes) == (io.read_bytes, io.write_bytes)
    assert figures.write_bytes >= MIB
    assert (figures.threads, figures.fds) == (threads, fds)


def test_held_files_follow_an_exec() -> None:
    """A shell that execs Python: the reader held from before reads the new program's figures."""
    program = (
        "import time; x = bytearray(32 * 2**20); x[::4096] = b'1' * (len(x) // 4096); "
        "print('ok', flush=True); time.sleep(60)"
    )
    script = f'read line; exec {sys.executable} -c "{program}"'
    child = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        files = ProcessFiles(child.pid)
        before = files.read()
        assert before is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "ok\n"
        after = files.read()
        assert after is not None
        assert after.pss >= 32 * MIB > before.pss
        assert after.rss == psutil.Process(child.pid).memory_info().rss
    finally:
        child.kill()
        child.wait()
        files.close()


def test_an_ended_process_reads_as_gone_zombie_or_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    files = ProcessFiles(child.pid)
    assert files.read() is not None
    os.kill(child.pid, signal.SIGKILL)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # a zombie until reaped
    assert files.read() is None
    child.wait()
    assert files.read() is None
    assert ProcessFiles(child.pid).read() is None  # opened after the end


def test_processes_past_the_limit_hold_no_descriptors(holder: subprocess.Popen[str]) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    held = ProcessFiles(holder.pid, hold=True)
    unheld = ProcessFiles(holder.pid, hold=False)
    assert held.read() == unheld.read() or held.read() is not None
    assert open_fds() == before + 4  # the held one's four files, the other's none
    held.close()
    assert open_fds() == before
    assert MAX_HELD * 4 < 1024  # within the usual soft limit of descriptors


def test_a_held_file_reads_what_is_there_now(tmp_path: object) -> None:
    path = f"{tmp_path}/peak"
    with open(path, "w") as out:
        out.write("100\n")
    held = HeldFile(path)
    assert held.read() == b"100\n"
    with open(path, "w") as out:
        out.write("250000\n")
    assert held.read() == b"250000\n"
    held.close()
    time.sleep(0)  # nothing held any more
    assert held.read() == b"250000\n"
    held.close()
