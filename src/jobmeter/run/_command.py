"""Run a command and measure its whole process tree until it ends.

The wrapper becomes a subreaper, puts the command in a memory cgroup of its
own where the machine allows, forwards SIGINT, SIGTERM and SIGHUP (a tree
still there ``kill_grace`` seconds after SIGTERM gets SIGKILL), reaps every
descendant, and samples the tree at each interval into usage.jsonl. Exact
totals (CPU seconds, bytes read and written, the largest single-process peak)
come from the kernel's rusage of reaped children; the tree's memory peak from
the cgroup; the samples add PSS and what is still running.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jobmeter._core import nvml, probes
from jobmeter._core.variables import RUN as RUN_ENV
from jobmeter._rundata.layout import STDERR_LOG, STDOUT_LOG
from jobmeter._rundata.metadata import command_record
from jobmeter._rundata.summary import RunResult
from jobmeter.run._kernel import MemoryCgroup, become_subreaper, join_cgroup
from jobmeter.run._lifecycle import MIN_INTERVAL_S, ReapedUsage, RunRecording
from jobmeter.run._process import exit_code as exit_code_of
from jobmeter.run._process import kill_tree, pump, wait
from jobmeter.run._sampler import TreeSample, TreeSampler

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class RunOptions:
    """How ``run_command`` runs and records a command."""

    interval: float = 1.0
    output: str | Path | None = None
    capture: bool = True
    record_args: bool = False
    name: str | None = None
    #: Seconds between a forwarded SIGTERM and SIGKILL to what is left of the tree.
    kill_grace: float = 10.0
    #: Variables set for the command on top of this process's environment.
    environment: Mapping[str, str] = field(default_factory=dict)


class _Run:
    """The command of one ``jobmeter run``: its recording, and when its SIGKILL is due."""

    def __init__(self, argv: Sequence[str], options: RunOptions) -> None:
        self.argv = list(argv)
        self.options = options
        # As on its metrics and its Pushgateway group: the program's name by default.
        name = options.name or (os.path.basename(self.argv[0]) if self.argv else None)
        command = command_record(self.argv, options.record_args)
        interval = max(options.interval, MIN_INTERVAL_S)
        self.recording = RunRecording("command", name, command, interval, options.output)
        self.inherited_rss = 0
        self.kill_at: float | None = None  # time.monotonic() of the SIGKILL, once SIGTERM came


def run_command(
    argv: Sequence[str],
    options: RunOptions | None = None,
    on_sample: Callable[[TreeSample, RunResult], None] | None = None,
) -> RunResult:
    """Run ``argv``, measure its process tree until it ends, and record the run.

    Args:
        argv: the command and its arguments.
        options: interval, output directory, capture, argument recording, name.
        on_sample: called after each sample (for live metrics).

    Returns:
        The run's figures; ``exit_code`` follows the shell's rules (128+N when
        killed by signal N, 127 when the command is not found).
    """
    run = _Run(argv, options or RunOptions())
    recording = run.recording
    become_subreaper()
    cgroup = MemoryCgroup.create(f"jobmeter-{recording.id}")
    reaped = ReapedUsage()
    # A forked child starts with the wrapper's RSS as its peak, and exec keeps it in
    # ru_maxrss: below this line, ru_maxrss is the wrapper's size, not the command's.
    run.inherited_rss = probes.rss_bytes() + 2**20
    capture = run.options.capture
    try:
        child = subprocess.Popen(
            run.argv,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            preexec_fn=functools.partial(join_cgroup, cgroup.procs_file) if cgroup else None,
            # jobmeter in the command records its operations into this run.
            env={**os.environ, **run.options.environment, RUN_ENV: str(recording.path)},
        )
    except (FileNotFoundError, PermissionError, IndexError) as error:
        if cgroup:
            cgroup.remove()
        code = 126 if isinstance(error, PermissionError) else 127
        what = "permission denied" if code == 126 else "command not found"
        print(f"jobmeter: {what}: {run.argv[0] if run.argv else '(none)'}", file=sys.stderr)
        recording.record["error"] = what
        return recording.finish("not_found" if code == 127 else "not_executable", code)

    pumps = []
    if capture:
        for source, sink, name in ((child.stdout, sys.stdout, STDOUT_LOG),
                                   (child.stderr, sys.stderr, STDERR_LOG)):  # fmt: skip
            assert source is not None
            log = recording.directory.log_file(name)
            on_error = functools.partial(recording.directory.log_failed, name)
            thread = threading.Thread(target=pump, args=(source, sink.buffer, log, on_error),
                                      daemon=True)  # fmt: skip
            thread.start()
            pumps.append((thread, log))

    forwarded: list[str] = recording.result.signals_forwarded

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signal.Signals(signum).name)
        if signum == signal.SIGTERM and run.kill_at is None:
            run.kill_at = time.monotonic() + max(run.options.kill_grace, 0.0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    previous_handlers = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        status = _measure(run, child.pid, reaped, cgroup, on_sample)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        for thread, log in pumps:
            thread.join(timeout=5)
            log.close()
        if cgroup:
            cgroup.remove()
    exit_code = exit_code_of(status)
    if exit_code == 0:
        state = "succeeded"
    elif exit_code > 128:
        state = "killed"
    else:
        state = "failed"
    return recording.finish(state, exit_code)


def _reap(child_pid: int) -> int | None:
    """Reap every finished descendant (we are their subreaper); the main child's status."""
    status = None
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child_pid:
            status = raw


def _measure(
    run: _Run,
    child_pid: int,
    reaped: ReapedUsage,
    cgroup: MemoryCgroup | None,
    on_sample: Callable[[TreeSample, RunResult], None] | None,
) -> int:
    recording = run.recording
    result = recording.result
    sampler = TreeSampler(procs_file=cgroup.procs_file if cgroup else None)
    driver = nvml.nvml()
    gpu = driver if driver.available() else None
    try:
        pidfd: int | None = os.pidfd_open(child_pid)
    except (AttributeError, OSError):
        pidfd = None
    status: int | None = None
    while True:
        main_status = _reap(child_pid)
        if main_status is not None:
            status = main_status
        sample = sampler.sample()
        if run.kill_at is not None and time.monotonic() >= run.kill_at:
            run.kill_at = None
            result.signals_forwarded.append("SIGKILL")
            kill_tree(child_pid if status is None else None, sample.pids, run.options.kill_grace)
        if gpu is not None:
            sample.gpu_memory = gpu.process_memory(sample.pids)
        totals = reaped.totals(sample)
        # The largest reaped process's peak; ru_maxrss is kept across exec, so a
        # figure at or below the wrapper's own size is the wrapper's.
        now, before = reaped.now, reaped.before
        single_peak = now.ru_maxrss * 1024
        if now.ru_maxrss <= before.ru_maxrss or single_peak <= run.inherited_rss:
            single_peak = 0
        recording.add_sample(sample, totals, single_peak)
        if cgroup:
            result.peak_cgroup_bytes = cgroup.peak_bytes()
        if on_sample is not None:
            on_sample(sample, result)
        if status is not None and sample.processes == 0:
            break
        timeout = recording.interval
        if run.kill_at is not None:
            timeout = min(timeout, max(run.kill_at - time.monotonic(), 0.0))
        elif "SIGKILL" in result.signals_forwarded:
            timeout = min(timeout, 0.05)  # the killed are reaped in a moment: no full interval
        wait(pidfd if status is None else None, timeout)
    if pidfd is not None:
        os.close(pidfd)
    return status
