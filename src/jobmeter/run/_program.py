"""``jobmeter.Run``: record a block of a Python program as a run in the local store."""

from __future__ import annotations

import atexit
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from jobmeter._core import nvml, signals
from jobmeter._rundata import routing
from jobmeter._rundata.layout import RunDirectory, new_run_id, runs_root, store_error, warn_once
from jobmeter._rundata.metadata import command_record, new_record
from jobmeter._rundata.recorder import Recorder, flush_interval
from jobmeter.cometml import _hook
from jobmeter.run._command import (
    MIN_INTERVAL_S,
    RunResult,
    fold_peaks,
    mark_incomplete,
    write_sample,
)
from jobmeter.run._sampler import TreeSampler

_log = logging.getLogger("jobmeter")
_BLOCK = 512


class Run:
    """Record a block of a Python program into the local run store.

    Inside the block, every ``measure()`` operation, DuckDB statement, backfill
    and failure is recorded into the run's directory, with samples of the
    process and its children over time; ``jobmeter report`` reads it back.
    Inside a process that ``jobmeter run`` (or another ``Run``) started, the
    block joins that run instead of making its own.

    Args:
        name: the run's name (default: the program's file name).
        interval: seconds between resource samples (0.05 or more).
        directory: the runs directory (default ``JOBMETER_RUN_DIR``, else
            ``./.jobmeter/runs``).
        comet: log the run to Comet when it ends (``jobmeter.cometml.log_run``;
            offline when ``COMET_OFFLINE_DIRECTORY`` is set): True, or a mapping
            of ``offline``, ``project_name``, ``workspace``. Not for a joined run.

    Example:
        >>> with jobmeter.Run("nightly-etl") as run:
        ...     with ops.measure("load"):
        ...         load()
        >>> run.status
        'succeeded'
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        interval: float = 1.0,
        directory: str | os.PathLike[str] | None = None,
        comet: bool | Mapping[str, Any] = False,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"name must be a non-empty string or None, got {name!r}")
        if not isinstance(interval, int | float) or not interval >= MIN_INTERVAL_S:
            raise ValueError(f"interval must be a number of seconds, {MIN_INTERVAL_S} or more, "
                             f"got {interval!r}")  # fmt: skip
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        self.name = name or (program if program not in ("", "-c", "-m") else "python")
        self.interval = float(interval)
        self._comet = _hook.options(comet)
        self._root = directory
        self.id = ""
        self.directory: Path | None = None
        self.status = "created"
        self.joined = False
        self.result: RunResult | None = None
        self._recorder: Recorder | None = None
        self._files: RunDirectory | None = None
        self._record: dict[str, Any] = {}
        self._sampler: _SelfSampler | None = None
        self._previous_env: str | None = None

    def start(self) -> Run:
        """Start recording (``with Run(...)`` calls this)."""
        if self.status != "created":
            raise RuntimeError(f"run {self.id or self.name!r} was started already")
        active = routing.active
        shared = os.environ.get(routing.RUN_ENV)
        if active is not None or shared:
            self._join(active, shared)
            return self
        flush = flush_interval()  # a bad JOBMETER_RUN_FLUSH_INTERVAL fails here, not later
        self.id = new_run_id()
        self._files = RunDirectory((runs_root(_path(self._root)) / self.id).resolve())
        self.directory = self._files.path
        self._record = new_record(self.id, self.name, "python",
                                  command_record(sys.argv, False), self.interval)  # fmt: skip
        self._files.write_run(self._record)
        self.result = RunResult(self.id, self.directory, exit_code=-1, status="running")
        self.status = "running"
        self._previous_env = os.environ.get(routing.RUN_ENV)
        os.environ[routing.RUN_ENV] = str(self.directory)  # subprocesses join this run
        self._recorder = Recorder(self.directory, flush).start()
        self._sampler = _SelfSampler(self._files, self.result, self.interval)
        atexit.register(self._at_exit)
        signals.on_sigterm(self._on_sigterm, signals.RUN_RECORD - 1)
        return self

    def _join(self, active: Any, shared: str | None) -> None:
        if active is None and shared:
            from jobmeter._rundata.recorder import join_run

            active = join_run(shared)
        self.joined = True
        self.status = "running"
        self.directory = active.directory if active is not None else Path(shared or ".")
        self.id = self.directory.name
        self._recorder = active

    def stop(self, status: str = "succeeded", exit_code: int = 0) -> RunResult | None:
        """End the run: last samples and records, run.json's summary, records compacted.

        A joined run only writes what it measured; the run it joined ends it.
        """
        with signals.deferred():  # SIGTERM's handler ends the run too: not halfway
            was_running = self.status == "running"
            result = self._stop(status, exit_code)
        # Comet last, outside the deferral: a slow Comet must not hold SIGTERM back.
        if was_running and not self.joined and self._comet is not None and status != "killed":
            assert self.directory is not None
            _hook.log_at_end(self.directory, self._comet)
        return result

    def _stop(self, status: str, exit_code: int) -> RunResult | None:
        if self.status != "running":
            return self.result
        self.status = status
        if self.joined:
            if self._recorder is not None:
                self._recorder.flush()
            return None
        assert self._files is not None
        assert self.result is not None
        assert self.directory
        atexit.unregister(self._at_exit)
        if self._sampler is not None:
            self._sampler.stop()
        if self._recorder is not None:
            self._recorder.stop()
        if self._previous_env is None:
            os.environ.pop(routing.RUN_ENV, None)
        else:
            os.environ[routing.RUN_ENV] = self._previous_env
        self.result.status, self.result.exit_code = status, exit_code
        end = time.time()
        self.result.wall_seconds = end - self._record["start"]
        wall = self.result.wall_seconds
        busy = self.result.cpu_user_seconds + self.result.cpu_system_seconds
        self.result.cpu_utilization_mean = busy / wall if wall > 0 else 0.0
        lost = store_error(self.directory)  # before the compaction's own failure
        if status != "killed":  # on SIGTERM, no time for DuckDB: the JSONL files stay
            try:
                from jobmeter._rundata.records import compact

                self._record["records"] = compact(self.directory)
            except Exception as error:
                warn_once(self.directory, f"the run's records stay as JSONL ({error})")
        self._record.update(status=status, end=end, exit_code=exit_code,
                            summary=self.result.to_json())  # fmt: skip
        mark_incomplete(self._record, lost)
        self._files.write_run(self._record)  # a failure is the directory's one warning
        self._files.close()
        return self.result

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.stop("interrupted", 130)
        elif issubclass(exc_type, SystemExit):
            code = exc.code if isinstance(exc, SystemExit) else None
            code = code if isinstance(code, int) else (0 if code is None else 1)
            self.stop("succeeded" if code == 0 else "failed", code)
        else:
            self.stop("failed", 1)

    def _at_exit(self) -> None:
        failed = getattr(sys, "last_exc", None) is not None or hasattr(sys, "last_value")
        self.stop("failed" if failed else "succeeded", 1 if failed else 0)

    def _on_sigterm(self) -> None:
        self.stop("killed", 128 + 15)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, id={self.id!r}, status={self.status!r})"


class _SelfSampler:
    """Samples this process and its children into usage.jsonl, as ``jobmeter run`` does."""

    def __init__(self, files: RunDirectory, result: RunResult, interval: float) -> None:
        self._files, self._result, self._interval = files, result, interval
        self._tree = TreeSampler(include_root=True)
        me = psutil.Process()
        cpu, io = me.cpu_times(), _io(me)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._base = (cpu.user, cpu.system, io[0], io[1], children)
        self._started = time.time()
        self._previous = (0.0, self._started)
        gpu = nvml.nvml()
        self._gpu = gpu if gpu.available() else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sample()  # the figures at the start
        self._thread = threading.Thread(target=self._loop, name="jobmeter-run-sampler",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            try:
                self._sample()
            except Exception:
                _log.debug("jobmeter: a run sample failed", exc_info=True)

    def _sample(self) -> None:
        result, sample = self._result, self._tree.sample()
        user0, system0, read0, written0, children0 = self._base
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        user = sample.cpu_user - user0 + children.ru_utime - children0.ru_utime
        system = sample.cpu_system - system0 + children.ru_stime - children0.ru_stime
        result.cpu_user_seconds = max(result.cpu_user_seconds, user)
        result.cpu_system_seconds = max(result.cpu_system_seconds, system)
        reaped_read = (children.ru_inblock - children0.ru_inblock) * _BLOCK
        reaped_written = (children.ru_oublock - children0.ru_oublock) * _BLOCK
        read = sample.read_bytes - read0 + reaped_read
        written = sample.write_bytes - written0 + reaped_written
        result.read_bytes = max(result.read_bytes, read)
        result.written_bytes = max(result.written_bytes, written)
        total = result.cpu_user_seconds + result.cpu_system_seconds
        previous_cpu, previous_t = self._previous
        if sample.t > previous_t:
            busy = max(total - previous_cpu, 0.0) / max(sample.t - previous_t, self._interval / 2)
            sample.cpu_utilization = min(busy, float(os.cpu_count() or 1))
        self._previous = (total, sample.t)
        if self._gpu is not None:
            sample.gpu_memory = self._gpu.process_memory(sample.pids)
            if sample.gpu_memory is not None:
                result.peak_gpu_memory_bytes = max(result.peak_gpu_memory_bytes or 0,
                                                   sample.gpu_memory)  # fmt: skip
        fold_peaks(result, sample)
        write_sample(result, sample, self._files)

    def stop(self) -> None:
        """A last sample, so that even a short block has one."""
        self._stop.set()
        self._thread.join(timeout=self._interval + 1.0)
        self.sample()


def _path(directory: str | os.PathLike[str] | None) -> Path | None:
    return None if directory is None else Path(directory)


def _io(process: psutil.Process) -> tuple[int, int]:
    try:
        io = process.io_counters()
    except (psutil.AccessDenied, AttributeError):
        return 0, 0
    return io.read_bytes, io.write_bytes
