"""Run a command and measure its whole process tree until it ends.

The wrapper becomes a subreaper, puts the command in a memory cgroup of its
own where the machine allows, starts it from a small launcher (``_launcher``:
its kernel peak is then its own, not the wrapper's size), forwards SIGINT,
SIGTERM and SIGHUP (a tree still there ``kill_grace`` seconds after SIGTERM
gets SIGKILL), reaps every descendant with its own rusage, and samples the
tree at each interval into usage.jsonl. Exact totals (CPU seconds, bytes read
and written, the largest single-process peak) come from the kernel's rusage
of reaped children; the tree's memory peak from the cgroup; the samples add
PSS and what is still running.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jobmeter._core import threads
from jobmeter._core.variables import RUN as RUN_ENV
from jobmeter._rundata.layout import STDERR_LOG, STDOUT_LOG
from jobmeter._rundata.metadata import command_record
from jobmeter._rundata.summary import NOT_STARTED, RunResult
from jobmeter.run import _launcher
from jobmeter.run._kernel import MemoryCgroup, become_subreaper, join_cgroup
from jobmeter.run._launcher import Spawned
from jobmeter.run._lifecycle import MIN_INTERVAL_S, ReapedUsage, RunRecording
from jobmeter.run._process import Reaper, kill_tree, pump, wait
from jobmeter.run._process import exit_code as exit_code_of
from jobmeter.run._processes import DEFAULT_PROCESSES
from jobmeter.run._sampler import TreeSample, TreeSampler

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Why a command did not start (run.json's "error"), as the wrapper says it on stderr.
NOT_FOUND, DENIED, CANNOT = "command not found", "permission denied", "cannot execute"


@dataclass
class RunOptions:
    """How ``run_command`` runs and records a command."""

    interval: float = 1.0
    output: str | Path | None = None
    capture: bool = True
    record_args: bool = False
    name: str | None = None
    #: Processes listed one by one in each sample, the heaviest by RSS (0: none).
    processes: int = DEFAULT_PROCESSES
    #: Seconds between a forwarded SIGTERM and SIGKILL to what is left of the tree.
    kill_grace: float = 10.0
    #: Variables set for the command on top of this process's environment.
    environment: Mapping[str, str] = field(default_factory=dict)


class _Run:
    """The command of one ``jobmeter run``: its recording, and when its SIGKILL is due."""

    def __init__(self, argv: Sequence[str], options: RunOptions) -> None:
        processes = options.processes
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 0:
            raise ValueError(f"processes must be a whole number, 0 or more, got {processes!r}")
        self.argv = list(argv)
        self.options = options
        # As on its metrics and its Pushgateway group: the program's name by default.
        name = options.name or (os.path.basename(self.argv[0]) if self.argv else None)
        command = command_record(self.argv, options.record_args)
        interval = max(options.interval, MIN_INTERVAL_S)
        # The machine and the git commit are found once the command runs (run_command).
        self.recording = RunRecording(
            "command", name, command, interval, options.output, described=False
        )
        self.kill_at: float | None = None  # time.monotonic() of the SIGKILL, once SIGTERM came

    def not_started(self, code: int, what: str) -> RunResult:
        """The command could not be started: one line on stderr, and the run says so."""
        print(f"jobmeter: {what}: {self.argv[0] if self.argv else '(none)'}", file=sys.stderr)
        self.recording.record["error"] = what
        return self.recording.finish(NOT_STARTED, code)


def _spawn(run: _Run, env: dict[str, str], cgroup: MemoryCgroup | None,
           launch: _launcher.Launcher | None) -> Spawned | tuple[int, str]:  # fmt: skip
    """The command started, or the shell's exit status (126, 127) and why it cannot be."""
    unstartable = _launcher.unstartable(run.argv, env)
    if unstartable is not None:
        return unstartable, NOT_FOUND if unstartable == 127 else DENIED
    capture = run.options.capture
    join = functools.partial(join_cgroup, cgroup.procs_file) if cgroup else None
    if launch is not None and launch.accepts(run.argv, env):
        spawned = launch.spawn(run.argv, env, capture, join)
        if spawned is not None:
            return spawned
    try:
        return _launcher.direct(run.argv, env, capture, join)
    except FileNotFoundError:
        return 127, NOT_FOUND
    except PermissionError:
        return 126, DENIED
    except OSError:  # not an executable at all, or busy being written
        return 126, CANNOT


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
        killed by signal N, 127 when the command is not found, 126 when it
        cannot be executed; the status is then ``not_started``).
    """
    run = _Run(argv, options or RunOptions())
    recording = run.recording
    # The launcher needs the subreaper: the command is re-parented to us, not to init.
    launch = _launcher.launcher() if become_subreaper() else None
    cgroup = MemoryCgroup.create(f"jobmeter-{recording.id}")
    # jobmeter in the command records its operations into this run.
    env = {**os.environ, **run.options.environment, RUN_ENV: str(recording.path)}
    spawned = _spawn(run, env, cgroup, launch)
    if isinstance(spawned, tuple):
        if cgroup:
            cgroup.remove()
        recording.describe()
        return run.not_started(*spawned)

    pumps = []
    if run.options.capture:
        for source, sink, name in ((spawned.stdout, sys.stdout, STDOUT_LOG),
                                   (spawned.stderr, sys.stderr, STDERR_LOG)):  # fmt: skip
            assert source is not None
            log = recording.directory.log_file(name)
            on_error = functools.partial(recording.directory.log_failed, name)
            thread = threading.Thread(target=pump, args=(source, sink.buffer, log, on_error),
                                      daemon=True)  # fmt: skip
            threads.start(thread)
            pumps.append((thread, log))

    forwarded: list[str] = recording.result.signals_forwarded

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signal.Signals(signum).name)
        if signum == signal.SIGTERM and run.kill_at is None:
            run.kill_at = time.monotonic() + max(run.options.kill_grace, 0.0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(spawned.pid, signum)

    previous_handlers = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        # Once signals are forwarded; its git processes are reaped before the totals start.
        recording.describe()
        # After the launch: the launcher, reaped already, is not in the totals.
        reaped = ReapedUsage()
        reaper = Reaper(spawned, reaped, run.argv[0], ended=run.options.processes > 0)
        status = _measure(run, reaper, reaped, cgroup, on_sample)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        for thread, log in pumps:
            thread.join(timeout=5)
            log.close()
        if cgroup:
            cgroup.remove()
    if reaper.not_started is not None:  # its exec failed after all (a busy file, a race)
        code = reaper.not_started
        return run.not_started(code, NOT_FOUND if code == 127 else CANNOT)
    exit_code = exit_code_of(status)
    if exit_code == 0:
        state = "succeeded"
    elif exit_code == 128 + signal.SIGINT:  # Ctrl-C: the user's stop, not a kill
        state = "interrupted"
    elif exit_code > 128:
        state = "killed"
    else:
        state = "failed"
    return recording.finish(state, exit_code)


def _measure(
    run: _Run,
    reaper: Reaper,
    reaped: ReapedUsage,
    cgroup: MemoryCgroup | None,
    on_sample: Callable[[TreeSample, RunResult], None] | None,
) -> int:
    recording = run.recording
    result = recording.result
    child_pid = reaper.main_pid
    status: int | None = None
    from jobmeter import _energy  # after the spawn: the command starts first
    from jobmeter._core import gpus

    sampler = TreeSampler(procs_file=cgroup.procs_file if cgroup else None,
                          processes=run.options.processes,
                          record_args=run.options.record_args,
                          ended=reaper.take_ended)  # fmt: skip
    has_gpu = gpus.available()
    energy = _energy.meter()
    # The command's CUDA_VISIBLE_DEVICES says which GPUs are its own, not the wrapper's.
    command_environ = {**os.environ, **run.options.environment}
    try:
        pidfd: int | None = os.pidfd_open(child_pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        reaper.reap()
        status = reaper.status
        sample = sampler.sample()
        if run.kill_at is not None and time.monotonic() >= run.kill_at:
            run.kill_at = None
            result.signals_forwarded.append("SIGKILL")
            kill_tree(child_pid if status is None else None, sample.pids, run.options.kill_grace)
        if has_gpu:
            sample.gpu_memory = gpus.process_memory(sample.pids, environ=command_environ)
        recording.add_sample(sample, reaped.totals(sample), reaped.largest_peak,
                             energy.read(gpu=has_gpu, environ=command_environ))  # fmt: skip
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
    sampler.close()
    assert status is not None
    return status
