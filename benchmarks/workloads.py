"""The jobs that ``bench_run`` wraps: small Python programs run with ``sys.executable -c``.

Each program takes the path of a JSON file as its first argument and writes
there what it knows of itself (its ground truth) just before it ends: peak RSS
(``VmHWM``) and RSS before allocating from ``/proc/self/status``, its own
``getrusage``, the PSS of its process tree from ``/proc/PID/smaps_rollup``.
The file is written to a temporary name and renamed, so that a reader never
sees half of it. Every figure is in bytes or seconds.
"""

from __future__ import annotations

import textwrap

MIB = 2**20

_HELPERS = textwrap.dedent(
    """
    import json, os, resource, sys, time

    def proc_bytes(path, key):  # a "Key:  123 kB" line of a /proc file, in bytes
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def status(key):
        return proc_bytes("/proc/self/status", key)

    def pss(pid):
        return proc_bytes(f"/proc/{pid}/smaps_rollup", "Pss")

    def rss(pid):
        return proc_bytes(f"/proc/{pid}/status", "VmRSS")

    def allocate(size):
        block = bytearray(size)
        for i in range(0, size, 4096):  # touch every page: resident, private, dirty
            block[i] = 1
        return block

    def report(**truth):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        truth.update(pid=os.getpid(), cpu_self=usage.ru_utime + usage.ru_stime)
        with open(sys.argv[1] + ".tmp", "w") as f:
            json.dump(truth, f)
        os.replace(sys.argv[1] + ".tmp", sys.argv[1])

    started = time.monotonic()
    """
)

# 1. A 500 MiB spike, held 0.3 s, inside a ~3 s job. Truth: the process's VmHWM.
MEMORY_SPIKE = _HELPERS + textwrap.dedent(
    f"""
    baseline = status("VmRSS")
    time.sleep(0.4)
    spike_started = time.monotonic()
    block = allocate(500 * {MIB})
    time.sleep(0.3)
    del block
    spike = time.monotonic() - spike_started  # touching the pages takes time too
    time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
    report(peak=status("VmHWM"), baseline_rss=baseline, allocated={500 * MIB}, spike_s=spike)
    """
)

# 2. 3 s of CPU on one core, in user space (the clock is read every 100,000 turns).
# Truth: the program's own getrusage at exit; its VmHWM for the small job's peak memory.
BUSY_LOOP = _HELPERS + textwrap.dedent(
    """
    while time.process_time() < 3.0:
        for _ in range(100_000):
            pass
    report(peak=status("VmHWM"))
    """
)

# 3. 200 MiB written and fsynced to a file in argv[2], then removed. Truth: 200 MiB.
WRITE = _HELPERS + textwrap.dedent(
    f"""
    chunk = os.urandom({MIB})
    path = os.path.join(sys.argv[2], "written.bin")
    with open(path, "wb") as f:
        for _ in range(200):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    with open("/proc/self/io") as f:
        io = dict(line.split(": ") for line in f.read().splitlines())
    os.unlink(path)
    report(written={200 * MIB}, proc_io_write_bytes=int(io["write_bytes"]))
    """
)

# 4. A parent with 200 MiB forks 4 children that only read it and sleep 2 s.
# Truth: the sum of the five processes' PSS, read while all of them are alive.
FORKED_COW = _HELPERS + textwrap.dedent(
    f"""
    block = allocate(200 * {MIB})
    ready_r, ready_w = os.pipe()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            checksum = sum(block[::4096])  # read every page, write none
            os.write(ready_w, b"x")
            time.sleep(2.0)
            os._exit(0 if checksum else 1)
        children.append(pid)
    os.close(ready_w)
    ready = 0
    while ready < 4:
        ready += len(os.read(ready_r, 4))
    time.sleep(0.3)
    tree = [os.getpid(), *children]
    total_pss, total_rss = sum(pss(p) for p in tree), sum(rss(p) for p in tree)
    codes = [os.waitpid(pid, 0)[1] for pid in children]
    report(peak=total_pss, rss_sum=total_rss, processes=len(tree), child_status=codes)
    """
)

# 5. The main process forks a child that calls setsid and forks again; the
# grandchild holds 300 MiB for 1.5 s while the main process has already exited.
# Truth: the grandchild's VmHWM (it writes the truth file, with its pid).
SETSID_CHILD = _HELPERS + textwrap.dedent(
    f"""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        block = allocate(300 * {MIB})
        time.sleep(1.5)
        peak = status("VmHWM")
        del block
        report(peak=peak, allocated={300 * MIB})
        os._exit(0)
    os.waitpid(pid, 0)
    """
)

# The overhead and start-up jobs.
SLEEP = "import time; time.sleep({seconds})"
