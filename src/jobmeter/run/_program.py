"""``jobmeter.Run``: record a block of a Python program as a run in the local store."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from jobmeter import _energy
from jobmeter._core import gpus, signals, threads
from jobmeter._rundata import routing
from jobmeter._rundata.metadata import command_record
from jobmeter._rundata.recorder import Recorder
from jobmeter._rundata.sources import flush_interval, join_run
from jobmeter._rundata.summary import RunResult
from jobmeter.run import _comet
from jobmeter.run._lifecycle import MIN_INTERVAL_S, ReapedUsage, RunRecording
from jobmeter.run._sampler import TreeSampler

_log = logging.getLogger("jobmeter")


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
        self._comet = _comet.options(comet)
        self._root = directory
        self.id = ""
        self.directory: Path | None = None
        self.status = "created"
        self.joined = False
        self.result: RunResult | None = None
        self._recorder: Recorder | None = None
        self._recording: RunRecording | None = None
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
        recording = self._recording = RunRecording(
            "python", self.name, command_record(sys.argv, False), self.interval, self._root
        )
        self.id, self.directory, self.result = recording.id, recording.path, recording.result
        self.status = "running"
        self._previous_env = os.environ.get(routing.RUN_ENV)
        os.environ[routing.RUN_ENV] = str(self.directory)  # subprocesses join this run
        self._recorder = Recorder(self.directory, flush).start()
        self._sampler = _SelfSampler(recording)
        atexit.register(self._at_exit)
        signals.on_sigterm(self._on_sigterm, signals.RUN_RECORD - 1)
        return self

    def _join(self, active: Any, shared: str | None) -> None:
        if active is None and shared:
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
            _comet.log_at_end(self.directory, self._comet)
        return result

    def _stop(self, status: str, exit_code: int) -> RunResult | None:
        if self.status != "running":
            return self.result
        self.status = status
        if self.joined:
            if self._recorder is not None:
                self._recorder.flush()
            return None
        assert self._recording is not None
        atexit.unregister(self._at_exit)
        if self._sampler is not None:
            self._sampler.stop()
        if self._recorder is not None:
            self._recorder.stop()
        if self._previous_env is None:
            os.environ.pop(routing.RUN_ENV, None)
        else:
            os.environ[routing.RUN_ENV] = self._previous_env
        # On SIGTERM there is no time for DuckDB: the JSONL records stay.
        return self._recording.finish(status, exit_code, compact_records=status != "killed")

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

    def __init__(self, recording: RunRecording) -> None:
        self._recording = recording
        self._interval = recording.interval
        self._tree = TreeSampler(include_root=True)
        me = psutil.Process()
        cpu, io = me.cpu_times(), _io(me)
        # What this process had used before the run: not the run's.
        self._reaped = ReapedUsage(live_base=(cpu.user, cpu.system, io[0], io[1]))
        self._gpu = gpus.available()
        self._energy = _energy.meter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sample()  # the figures at the start
        self._thread = threading.Thread(target=self._loop, name="jobmeter-run-sampler",
                                        daemon=True)  # fmt: skip
        threads.start(self._thread)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            try:
                sample = self._tree.sample()
                if self._gpu:
                    sample.gpu_memory = gpus.process_memory(sample.pids)
                self._recording.add_sample(sample, self._reaped.totals(sample),
                                           energy=self._energy.read(gpu=self._gpu))  # fmt: skip
            except Exception:
                _log.debug("jobmeter: a run sample failed", exc_info=True)

    def stop(self) -> None:
        """A last sample, so that even a short block has one."""
        self._stop.set()
        self._thread.join(timeout=self._interval + 1.0)
        self.sample()
        with self._lock:
            self._tree.close()


def _io(process: psutil.Process) -> tuple[int, int]:
    try:
        io = process.io_counters()
    except (psutil.AccessDenied, AttributeError):
        return 0, 0
    return io.read_bytes, io.write_bytes
