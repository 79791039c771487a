"""jobmeter's threads leave SIGTERM and SIGINT to the main thread, in forked children too.

Linux gives a signal sent to a process to any thread that does not block it.
Python runs the handler only in the main thread, so a SIGTERM that reaches a
jobmeter thread while the main thread waits on a lock is never acted on. A
forked Pool worker in ``SimpleQueue.get`` outlived ``Pool.terminate()``'s
SIGTERM that way, about once in 80 runs on a loaded 2-core machine. Each
thread's blocked signals are read from the kernel here
(``/proc/self/task/<tid>/status``), with the program's main thread beside them:
the main thread must keep blocking nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, re, signal, sys, threading
    import jobmeter

    def masks():
        found = {}
        for thread in threading.enumerate():
            with open(f"/proc/self/task/{thread.native_id}/status") as status:
                blocked = int(re.search(r"SigBlk:\\s*([0-9a-f]+)", status.read()).group(1), 16)
            name = "main" if thread is threading.main_thread() else thread.name
            found[name] = [bool(blocked >> (s - 1) & 1) for s in (signal.SIGTERM, signal.SIGINT)]
        return found

    def wakeup_fd():
        # The pipe the wakeup fd writes to, by inode: an fd number may be reused.
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd)
        return os.fstat(fd).st_ino if fd != -1 else -1

    def child(queue):
        with ops.measure("in-child"):
            pass
        queue.put({"masks": masks(), "wakeup_fd": wakeup_fd()})

    telemetry = jobmeter.configure()
    ops = jobmeter.MetricsCollector("etl")
    with jobmeter.Run("threads"):
        with ops.measure("load"):
            pass
        backfill = jobmeter.Backfill("days", total=3, progress=False)
        backfill.done()
        parent, parent_fd = masks(), wakeup_fd()
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        worker = context.Process(target=child, args=(queue,))
        worker.start()
        forked = queue.get(timeout=30)
        worker.join(30)
        backfill.close()
    telemetry.shutdown()
    print(json.dumps({"parent": parent, "child": forked["masks"],
                      "fds": [parent_fd, forked["wakeup_fd"]]}))
    """
)


def test_every_jobmeter_thread_blocks_sigterm_and_sigint_and_the_main_thread_none(
    tmp_path: Path,
) -> None:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("OTEL_", "JOBMETER_"))}  # fmt: skip
    env.update(OTEL_METRICS_EXPORTER="prometheus,console", OTEL_EXPORTER_PROMETHEUS_PORT="0",
               OTEL_METRIC_EXPORT_INTERVAL="600000",
               JOBMETER_RUN_DIR=str(tmp_path / "runs"))  # fmt: skip
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for where in ("parent", "child"):
        masks = found[where]
        assert masks.pop("main") == [False, False], (where, found)
        # The threads of a run, a backfill, the endpoint and the SDK's export thread.
        assert any(name.startswith("jobmeter-") for name in masks), (where, masks)
        assert any("PeriodicExporting" in name for name in masks), (where, masks)
        assert {name: mask for name, mask in masks.items() if mask != [True, True]} == {}, where
    assert "jobmeter-run-recorder" in found["child"]
    # Each process has its own wakeup pipe: the child's signals are not the parent's.
    parent_pipe, child_pipe = found["fds"]
    assert -1 not in (parent_pipe, child_pipe)
    assert child_pipe != parent_pipe
    assert "jobmeter-sigterm" in found["parent"]
    assert "jobmeter-sigterm" in found["child"]


WAITS = textwrap.dedent(
    """
    import os, signal, threading, time
    import jobmeter

    ops = jobmeter.MetricsCollector("etl")
    with jobmeter.Run("waits"):
        with ops.measure("before-the-wait"):
            pass
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd)
        assert fd != -1, "no wakeup fd: nothing would see a SIGTERM that came just before a wait"

        def signal_that_missed_the_wait():
            time.sleep(0.3)
            # What the C handler leaves of a SIGTERM that came just before the wait: its
            # number on the wakeup fd, and a wait that goes on. Here only that record comes.
            os.write(fd, bytes([signal.SIGTERM]))

        threading.Thread(target=signal_that_missed_the_wait).start()
        lock = threading.Lock()
        lock.acquire()
        print("waiting", flush=True)
        lock.acquire(timeout=30)
        print("still here", flush=True)
    """
)


def test_a_sigterm_that_missed_the_main_threads_wait_ends_the_process(tmp_path: Path) -> None:
    """The SIGTERM is sent again to the main thread, whose wait it interrupts: the run is
    recorded as killed by it (exit code 143), with its operation, and the process dies by
    SIGTERM."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("OTEL_", "JOBMETER_"))}  # fmt: skip
    env.update(OTEL_METRICS_EXPORTER="none", JOBMETER_RUN_DIR=str(tmp_path / "runs"))
    done = subprocess.run([sys.executable, "-c", WAITS], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == -signal.SIGTERM, (done.returncode, done.stdout, done.stderr)
    assert done.stdout.split() == ["waiting"]
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/run.json")]
    assert (record["status"], record["exit_code"]) == ("killed", 143)
    report = subprocess.run([sys.executable, "-m", "jobmeter", "report", "--json", "--dir",
                             str(tmp_path / "runs")], env=env, capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    labels = {op["label"]: op["count"] for op in json.loads(report.stdout)["operations"]}
    assert labels == {"before-the-wait": 1}


def test_an_applications_wakeup_fd_stays_its_own() -> None:
    """asyncio's loop (or any program) that set the wakeup fd first keeps it."""
    script = textwrap.dedent(
        """
        import os, signal
        import jobmeter

        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        with jobmeter.Run("theirs"):
            print(signal.set_wakeup_fd(write_fd) == write_fd)
        """
    )
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("OTEL_", "JOBMETER_"))}  # fmt: skip
    env["OTEL_METRICS_EXPORTER"] = "none"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False, cwd="/tmp")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
