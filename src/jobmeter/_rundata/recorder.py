"""The recorder: what ``measure()``, DuckDB and backfills measured, aggregated into a run.

Sources keep what they measured in pending lists (``jobmeter._rundata.routing``);
every ``interval`` seconds the recorder drains them, aggregates per operation
and per query shape (count, sum, min, max and a quantile sketch), and appends
one line per key that changed to ``<kind>.<pid>.jsonl`` in the run directory,
flushed at once. A crash loses at most one interval; each process (forked
workers too) writes its own files, so lines never interleave. The schema is
in docs/run-store.md.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from jobmeter._core import fork, signals, threads
from jobmeter._rundata import routing
from jobmeter._rundata.aggregates import OperationAggregate, QueryAggregate, attributes_text
from jobmeter._rundata.layout import open_private, records_file, warn_once
from jobmeter._rundata.schema import KINDS

_log = logging.getLogger("jobmeter")

# A query shape: namespace, operation, summary, shape hash, shape, error type.
QueryKey = tuple[str, str, str, str, str, str | None]
# A statement: point attributes, shape, shape hash, seconds, returned rows or -1.
QueryEntry = tuple[Mapping[str, Any], str, str, float, int]

#: Seconds between two drains of the sources (``JOBMETER_RUN_FLUSH_INTERVAL``).
DEFAULT_FLUSH_INTERVAL_S: Final = 5.0


class Recorder:
    """Drains the sources into one run directory, at an interval and at the end."""

    def __init__(self, directory: Path, interval: float = DEFAULT_FLUSH_INTERVAL_S) -> None:
        self.directory = directory
        self.interval = interval
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._operations: dict[tuple[str, str, str, str | None], OperationAggregate] = {}
        self._queries: dict[QueryKey, QueryAggregate] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._progress_written: dict[str, tuple[Any, ...]] = {}
        self._files: dict[str, IO[str]] = {}
        self._stop = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._warned = False
        self.write_errors = 0
        self.pid = os.getpid()

    # -- what the sources hand over ----------------------------------------------------------

    def add_operations(
        self,
        collector: str,
        attributes: Mapping[str, Any],
        durations: list[float],
        cpus: list[float],
        memory: list[int],
        peaks: list[int],
        energy: float | None = None,
        io: tuple[int, int] | None = None,
    ) -> None:
        """Blocks of one attribute set: every block's duration (s); of the blocks with
        resources, the CPU time (s) and RSS at the end (B); of those measured with their
        peak, the peak RSS (B; negative values, blocks without one, are left out); the
        machine's energy (J) during the blocks that metered it, summed; the bytes the blocks
        with resources read and wrote (``io``, None without such blocks)."""
        error = attributes.get("error.type")
        key = (collector, str(attributes.get("operation.name", "")),
               attributes_text(attributes), None if error is None else str(error))  # fmt: skip
        # Sorts in place, no copies: the drain costs the job too.
        durations.sort()
        cpus.sort()
        memory.sort()
        peaks.sort()
        peaks = peaks[bisect_left(peaks, 0) :] if peaks and peaks[0] < 0 else peaks
        with self._lock:
            found = self._operations.get(key)
            if found is None:
                found = self._operations[key] = OperationAggregate()
            found.count += len(durations)
            found.duration.add_sorted(durations)
            found.cpu.add_sorted(cpus)
            found.memory.add_sorted(memory)
            found.peak.add_sorted(peaks)
            if energy is not None:
                found.energy = energy if found.energy is None else found.energy + energy
            if io is not None:
                found.io_read += io[0]
                found.io_write += io[1]

    def add_queries(self, entries: Sequence[QueryEntry]) -> None:
        """Statements: (point attributes, masked shape, its hash, seconds, returned rows or -1)."""
        grouped: dict[QueryKey, tuple[list[float], list[int]]] = {}
        for attributes, shape, shape_hash, seconds, rows in entries:
            error = attributes.get("error.type")
            key = (str(attributes.get("db.namespace", "")),
                   str(attributes.get("db.operation.name", "")),
                   str(attributes.get("db.query.summary", "")), shape_hash, shape,
                   None if error is None else str(error))  # fmt: skip
            group = grouped.get(key)
            if group is None:
                group = grouped[key] = ([], [])
            group[0].append(seconds)
            if rows >= 0:
                group[1].append(rows)
        with self._lock:
            for key, (seconds_list, rows_list) in grouped.items():
                found = self._queries.get(key)
                if found is None:
                    found = self._queries[key] = QueryAggregate()
                found.duration.add_sorted(sorted(seconds_list))
                found.rows += sum(rows_list)
                if rows_list:
                    found.rows_max = max(found.rows_max or 0, max(rows_list))

    def add_progress(self, name: str, snapshot: Any, status: str) -> None:
        """A backfill's counts now (a ``_backfill_snapshot.Snapshot``)."""
        line = {
            "backfill": name,
            "status": status,
            "done": snapshot.done,
            "skipped": snapshot.skipped,
            "failed": snapshot.failed_total,
            "total": snapshot.total,
            "rate": snapshot.rate,
            "eta_seconds": snapshot.eta,
        }
        with self._lock:
            self._progress[name] = line

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Drain every source and append what changed; never raises.

        One flush at a time: a SIGTERM handler's last flush waits for the
        background one to write what it took. In the main thread, SIGTERM and
        SIGINT wait until the flush is written (their handlers would otherwise
        end the process between taking the records and writing them).
        """
        try:
            with signals.deferred(), self._flush_lock:
                for source in routing.sources():
                    source.drain_into(self)
                failures = routing.failures.take() if routing.failures is not None else []
                spans = routing.spans.take() if routing.spans is not None else []
                self._write(self._lines(failures, spans))
        except Exception:
            self._warn(f"could not record into the run at {self.directory}", exc_info=True)

    def _lines(
        self, failures: list[tuple[Any, ...]], spans: list[tuple[Any, ...]]
    ) -> dict[str, list[str]]:
        now = time.time()
        base = {"t": now, "pid": self.pid}
        with self._lock:
            operations, self._operations = self._operations, {}
            queries, self._queries = self._queries, {}
            progress, self._progress = self._progress, {}
        lines: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for (collector, name, attributes, error), op in operations.items():
            record = {**base, "collector": collector, "operation": name,
                      "attributes": attributes, "error_type": error, "count": op.count,
                      "resources_count": op.cpu.count}  # fmt: skip
            record.update(op.duration.fields("duration"))
            record.update(op.cpu.fields("cpu"))
            record.update(op.memory.fields("memory"))
            record.update(op.peak.fields("peak"))
            record["energy_joules"] = op.energy
            if op.cpu.count:  # blocks without resources measured no I/O: null, not 0
                record["io_read_bytes"], record["io_write_bytes"] = op.io_read, op.io_write
            lines["operations"].append(json.dumps(record))
        for (namespace, operation, summary, shape_hash, shape, error), query in queries.items():
            record = {**base, "namespace": namespace, "operation": operation,
                      "summary": summary, "shape": shape, "shape_hash": shape_hash,
                      "error_type": error, "count": query.duration.count,
                      "rows": query.rows, "rows_max": query.rows_max}  # fmt: skip
            record.update(query.duration.fields("duration"))
            lines["queries"].append(json.dumps(record))
        for t, source, name, error in failures:
            record = {"t": t, "pid": self.pid, "source": source, "name": name,
                      "error_type": error}  # fmt: skip
            lines["failures"].append(json.dumps(record))
        for collector, name, start, end, error in spans:
            record = {"t": end, "pid": self.pid, "collector": collector, "name": name,
                      "start": start, "end": end, "error_type": error}  # fmt: skip
            lines["spans"].append(json.dumps(record))
        for name, line in progress.items():
            state = tuple(line[k] for k in ("status", "done", "skipped", "failed", "total"))
            if self._progress_written.get(name) != state:
                self._progress_written[name] = state
                lines["progress"].append(json.dumps({**base, **line}))
        return lines

    def _write(self, lines: dict[str, list[str]]) -> None:
        for kind, kind_lines in lines.items():
            if not kind_lines:
                continue
            try:
                handle = self._files.get(kind)
                if handle is None:
                    path = records_file(self.directory, kind, self.pid)
                    handle = self._files[kind] = open_private(path, "a")
                handle.write("\n".join(kind_lines) + "\n")
                handle.flush()
            except (OSError, ValueError) as error:
                self.write_errors += 1
                self._warn(f"could not write {kind} records into {self.directory}: {error}")

    def _warn(self, message: str, exc_info: bool = False) -> None:
        if not self._warned:
            self._warned = True
            if not self.directory.is_dir():
                message = f"the run directory {self.directory} was removed; the run is not recorded"
            # One warning per run directory in this process: the sampler's failures too.
            if warn_once(self.directory, message) and exc_info:
                _log.debug("jobmeter: the failure", exc_info=True)

    # -- life --------------------------------------------------------------------------------

    def start(self) -> Recorder:
        """Route every source's records here and drain them at the interval."""
        routing.start(self)
        self._start_thread()
        atexit.register(self.stop)
        signals.on_sigterm(self.stop, signals.RUN_RECORD)
        fork.on_fork_in_child_weak(self, "_after_fork_in_child")
        return self

    def _start_thread(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobmeter-run-recorder",
                                        daemon=True)  # fmt: skip
        threads.start(self._thread)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def stop(self) -> None:
        """The last drain; then nothing more is kept. Idempotent, and safe from a handler.

        SIGTERM and SIGINT wait while it runs: their handler calls it too, and
        re-entering it halfway (the thread's event holds a lock) would hang.
        """
        with signals.deferred():
            if self._stopped:
                return
            self._stopped = True
            self._stop.set()
            self.flush()
            routing.stop(self)
            for handle in self._files.values():
                with contextlib.suppress(OSError):
                    handle.close()
            self._files = {}
            atexit.unregister(self.stop)

    def _after_fork_in_child(self) -> None:
        # The parent's files and thread are the parent's: this pid writes its own.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._files = {}
        self._operations, self._queries, self._progress = {}, {}, {}
        self.pid = os.getpid()
        self._stopped = False
        if routing.active is not self:
            return
        routing.after_fork_in_child()
        self._start_thread()
        # multiprocessing's workers leave with os._exit, after its finalizers but
        # without atexit: drain there too. Its bootstrap clears the finalizers
        # registered before it, then runs its after-fork hooks: register from one.
        util = sys.modules.get("multiprocessing.util")
        if util is not None:
            util.register_after_fork(self, _finalize_in_worker)


def _finalize_in_worker(recorder: Recorder) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(recorder, recorder.stop, exitpriority=100)
