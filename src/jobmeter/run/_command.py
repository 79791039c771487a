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
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobmeter._core import nvml, probes
from jobmeter._rundata.layout import RunDirectory, new_run_id, runs_root, store_error, warn_once
from jobmeter._rundata.metadata import command_record, new_record
from jobmeter._rundata.routing import RUN_ENV
from jobmeter.run._kernel import MemoryCgroup, become_subreaper, join_cgroup
from jobmeter.run._process import exit_code as exit_code_of
from jobmeter.run._process import kill_tree, pump, wait
from jobmeter.run._sampler import TreeSample, TreeSampler

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_BLOCK = 512
MIN_INTERVAL_S = 0.05


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


@dataclass
class RunResult:
    """What a run cost; also written to run.json as ``summary``."""

    run_id: str
    directory: Path
    exit_code: int
    status: str
    wall_seconds: float = 0.0
    cpu_user_seconds: float = 0.0
    cpu_system_seconds: float = 0.0
    cpu_utilization_mean: float = 0.0
    cpu_utilization_peak: float = 0.0
    peak_memory_bytes: int = 0
    peak_memory_source: str = "samples"
    peak_rss_sampled_bytes: int = 0
    peak_pss_sampled_bytes: int = 0
    peak_rss_single_process_bytes: int = 0
    peak_cgroup_bytes: int | None = None
    peak_gpu_memory_bytes: int | None = None
    read_bytes: int = 0
    written_bytes: int = 0
    peak_processes: int = 0
    peak_threads: int = 0
    samples: int = 0
    signals_forwarded: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The summary record."""
        record = dict(self.__dict__)
        record["directory"] = str(self.directory)
        return record


class _Run:
    def __init__(self, argv: Sequence[str], options: RunOptions) -> None:
        self.argv = list(argv)
        self.options = options
        self.interval = max(options.interval, MIN_INTERVAL_S)
        self.run_id = new_run_id()
        self.directory = RunDirectory((runs_root(options.output) / self.run_id).resolve())
        # As on its metrics and its Pushgateway group: the program's name by default.
        name = options.name or (os.path.basename(self.argv[0]) if self.argv else None)
        command = command_record(self.argv, options.record_args)
        self.record = new_record(self.run_id, name, "command", command, self.interval)
        self.started: float = self.record["start"]
        self.result = RunResult(self.run_id, self.directory.path, exit_code=-1, status="running")
        self.latest: TreeSample | None = None
        self.inherited_rss = 0
        self.kill_at: float | None = None  # time.monotonic() of the SIGKILL, once SIGTERM came

    def finish(self, status: str, exit_code: int) -> RunResult:
        self.result.status = status
        self.result.exit_code = exit_code
        end = time.time()  # before the compaction: it is not the command's time
        self.result.wall_seconds = end - self.started
        lost = store_error(self.directory.path)  # before the compaction's own failure
        try:
            from jobmeter._rundata.records import compact

            self.record["records"] = compact(self.directory.path)
        except Exception as error:  # the JSONL files stay readable
            warn_once(self.directory.path, f"the run's records stay as JSONL ({error})")
        self.record.update(
            status=status, end=end, exit_code=exit_code, summary=self.result.to_json()
        )
        mark_incomplete(self.record, lost)
        self.directory.write_run(self.record)
        self.directory.close()
        return self.result


def mark_incomplete(record: dict[str, Any], error: str | None) -> None:
    """A run whose store failed says so in run.json, if run.json can still be written."""
    if error is not None:
        record["incomplete"] = True
        record["store_error"] = error


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
    run.directory.write_run(run.record)
    become_subreaper()
    cgroup = MemoryCgroup.create(f"jobmeter-{run.run_id}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
            env={**os.environ, RUN_ENV: str(run.directory.path)},
        )
    except (FileNotFoundError, PermissionError, IndexError) as error:
        if cgroup:
            cgroup.remove()
        code = 126 if isinstance(error, PermissionError) else 127
        what = "permission denied" if code == 126 else "command not found"
        print(f"jobmeter: {what}: {run.argv[0] if run.argv else '(none)'}", file=sys.stderr)
        run.record["error"] = what
        return run.finish("not_found" if code == 127 else "not_executable", code)

    pumps = []
    if capture:
        for source, sink, name in ((child.stdout, sys.stdout, "stdout.log"),
                                   (child.stderr, sys.stderr, "stderr.log")):  # fmt: skip
            assert source is not None
            log = run.directory.log_file(name)
            on_error = functools.partial(run.directory.log_failed, name)
            thread = threading.Thread(target=pump, args=(source, sink.buffer, log, on_error),
                                      daemon=True)  # fmt: skip
            thread.start()
            pumps.append((thread, log))

    forwarded: list[str] = run.result.signals_forwarded

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signal.Signals(signum).name)
        if signum == signal.SIGTERM and run.kill_at is None:
            run.kill_at = time.monotonic() + max(run.options.kill_grace, 0.0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    previous_handlers = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        status = _measure(run, child.pid, before, cgroup, on_sample)
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
    return run.finish(state, exit_code)


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
    before: Any,
    cgroup: MemoryCgroup | None,
    on_sample: Callable[[TreeSample, RunResult], None] | None,
) -> int:
    sampler = TreeSampler(procs_file=cgroup.procs_file if cgroup else None)
    result = run.result
    driver = nvml.nvml()
    gpu = driver if driver.available() else None
    try:
        pidfd: int | None = os.pidfd_open(child_pid)
    except (AttributeError, OSError):
        pidfd = None
    status: int | None = None
    # From the start of the run: a command that ends before the first sample has
    # its CPU time spread over its whole life, not over the last microseconds.
    previous_cpu, previous_t = 0.0, run.started
    cpus = float(os.cpu_count() or 1)
    # Live processes' CPU time comes in clock ticks (10 ms) and reaped ones' exactly,
    # so over a few milliseconds (the sample right after the command ends) the
    # difference is rounding, not work: average over half an interval at least.
    window = run.interval / 2
    while True:
        reaped = _reap(child_pid)
        if reaped is not None:
            status = reaped
        sample = sampler.sample()
        if run.kill_at is not None and time.monotonic() >= run.kill_at:
            run.kill_at = None
            result.signals_forwarded.append("SIGKILL")
            kill_tree(child_pid if status is None else None, sample.pids, run.options.kill_grace)
        if gpu is not None:
            sample.gpu_memory = gpu.process_memory(sample.pids)
            if sample.gpu_memory is not None:
                result.peak_gpu_memory_bytes = max(
                    result.peak_gpu_memory_bytes or 0, sample.gpu_memory
                )
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Exact figures of reaped descendants plus the live ones, never going back.
        cpu_user = now.ru_utime - before.ru_utime + sample.cpu_user
        cpu_system = now.ru_stime - before.ru_stime + sample.cpu_system
        result.cpu_user_seconds = max(result.cpu_user_seconds, cpu_user)
        result.cpu_system_seconds = max(result.cpu_system_seconds, cpu_system)
        reaped_read = (now.ru_inblock - before.ru_inblock) * _BLOCK
        reaped_written = (now.ru_oublock - before.ru_oublock) * _BLOCK
        result.read_bytes = max(result.read_bytes, reaped_read + sample.read_bytes)
        result.written_bytes = max(result.written_bytes, reaped_written + sample.write_bytes)
        total_cpu = result.cpu_user_seconds + result.cpu_system_seconds
        if sample.t > previous_t:
            busy = max(total_cpu - previous_cpu, 0.0) / max(sample.t - previous_t, window)
            sample.cpu_utilization = min(busy, cpus)  # clock granularity, never more CPUs
        previous_cpu, previous_t = total_cpu, sample.t
        reaped_peak = now.ru_maxrss * 1024
        if now.ru_maxrss <= before.ru_maxrss or reaped_peak <= run.inherited_rss:
            reaped_peak = 0  # an earlier child's, or the wrapper's own size
        fold_peaks(result, sample, reaped_peak)
        if cgroup:
            result.peak_cgroup_bytes = cgroup.peak_bytes()
        write_sample(result, sample, run.directory)
        run.latest = sample
        if on_sample is not None:
            on_sample(sample, result)
        if status is not None and sample.processes == 0:
            break
        timeout = run.interval
        if run.kill_at is not None:
            timeout = min(timeout, max(run.kill_at - time.monotonic(), 0.0))
        elif "SIGKILL" in result.signals_forwarded:
            timeout = min(timeout, 0.05)  # the killed are reaped in a moment: no full interval
        wait(pidfd if status is None else None, timeout)
    if pidfd is not None:
        os.close(pidfd)
    wall = time.time() - run.started
    result.cpu_utilization_mean = (
        (result.cpu_user_seconds + result.cpu_system_seconds) / wall if wall > 0 else 0.0
    )
    return status


def fold_peaks(result: RunResult, sample: TreeSample, single_process_peak: int = 0) -> None:
    """Raise the run's peaks to what this sample saw."""
    result.cpu_utilization_peak = max(result.cpu_utilization_peak, sample.cpu_utilization)
    result.peak_rss_sampled_bytes = max(result.peak_rss_sampled_bytes, sample.rss)
    result.peak_pss_sampled_bytes = max(result.peak_pss_sampled_bytes, sample.pss)
    result.peak_rss_single_process_bytes = max(
        result.peak_rss_single_process_bytes, sample.hwm, single_process_peak
    )
    result.peak_processes = max(result.peak_processes, sample.processes)
    result.peak_threads = max(result.peak_threads, sample.threads)


def write_sample(result: RunResult, sample: TreeSample, directory: RunDirectory) -> None:
    """Count the sample, set the headline peak, append the sample to usage.jsonl."""
    headline_peak(result)
    result.samples += 1
    record = sample.to_json()
    record.update(cpu_user_total=result.cpu_user_seconds,
                  cpu_system_total=result.cpu_system_seconds)  # fmt: skip
    directory.append_usage(record)


def headline_peak(result: RunResult) -> None:
    """The peak to report first, and where it came from."""
    # The cgroup peak stays a figure of its own: it includes page cache, so a
    # job that writes 200 MB would look 200 MB bigger than its processes.
    result.peak_memory_bytes, result.peak_memory_source = max(
        (result.peak_pss_sampled_bytes, "samples (PSS of the tree)"),
        (result.peak_rss_single_process_bytes, "kernel (largest process's peak RSS)"),
    )
