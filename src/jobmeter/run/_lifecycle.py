"""One run from its first run.json to its summary: what ``jobmeter run`` and ``jobmeter.Run`` share.

A ``RunRecording`` makes the run directory and writes the first run.json;
each sample of the process tree goes through ``add_sample()``, which folds it
into the run's totals and peaks and appends it to usage.jsonl; ``finish()``
compacts the records, writes the summary and closes the directory. How the
tree is sampled and how a run starts and ends are the callers' own: a command
spawned and reaped by the wrapper, or a block of the program itself.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

from jobmeter._core.probes import BLOCK_SIZE
from jobmeter._rundata.directory import RunDirectory
from jobmeter._rundata.layout import (
    new_run_id,
    published_peaks,
    runs_root,
    store_error,
    warn_once,
)
from jobmeter._rundata.metadata import describe, new_record
from jobmeter._rundata.records import compact
from jobmeter._rundata.summary import (
    ENERGY_DOMAINS,
    PEAK_FROM_KERNEL,
    RunResult,
    headline_peak,
    mark_incomplete,
)
from jobmeter.run._sampler import TreeSample

#: The shortest interval between two samples.
MIN_INTERVAL_S = 0.05

# (CPU user s, CPU system s, bytes read, bytes written) of a tree.
Totals = tuple[float, float, int, int]


class ReapedUsage:
    """The kernel's account of the descendants reaped since the run started: exact to the end.

    ``getrusage(RUSAGE_CHILDREN)`` counts every descendant that has been waited
    for since this object was made (the launcher of ``jobmeter run`` is reaped
    before, so it is left out); the live ones come from their samples.
    ``live_base`` is what the live processes had used before the run started
    (a ``Run`` counts its own process).
    """

    def __init__(self, live_base: Totals = (0.0, 0.0, 0, 0)) -> None:
        self.before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._base = live_base
        #: The largest peak RSS of one reaped process (``ru_maxrss`` of its ``wait4``).
        self.largest_peak = 0

    def reaped(self, usage: resource.struct_rusage, floor: int = 0) -> None:
        """A process's own ``wait4`` rusage: its peak RSS counts if above ``floor``.

        Its ru_maxrss covers the children it waited for too. ``floor`` is the
        size of the process it was forked from, which exec keeps in ru_maxrss.
        """
        peak = usage.ru_maxrss * 1024
        if peak > floor:
            self.largest_peak = max(self.largest_peak, peak)

    def totals(self, sample: TreeSample) -> Totals:
        """The tree's totals since the start: reaped descendants plus the live ones now."""
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        before, base = self.before, self._base
        return (
            now.ru_utime - before.ru_utime + sample.cpu_user - base[0],
            now.ru_stime - before.ru_stime + sample.cpu_system - base[1],
            (now.ru_inblock - before.ru_inblock) * BLOCK_SIZE + sample.read_bytes - base[2],
            (now.ru_oublock - before.ru_oublock) * BLOCK_SIZE + sample.write_bytes - base[3],
        )


class _MeanRSS:
    """The time-weighted mean of the tree's RSS, linear between samples (as ``_rundata.usage``)."""

    def __init__(self) -> None:
        self._first: float | None = None
        self._before = (0.0, 0)  # the last sample's (t, rss)
        self._area = 0.0  # byte-seconds, trapezoids between samples
        self._sum = 0  # for samples all at one time, the plain mean
        self._count = 0

    def add(self, t: float, rss: int) -> int:
        """Add one sample; the mean so far, in bytes."""
        if self._first is None:
            self._first = t
        else:
            before_t, before_rss = self._before
            self._area += (rss + before_rss) / 2 * (t - before_t)
        self._before = (t, rss)
        self._sum += rss
        self._count += 1
        span = t - self._first
        return round(self._area / span) if span > 0 else round(self._sum / self._count)


class RunRecording:
    """The directory, run.json and running totals of one run."""

    def __init__(
        self,
        kind: str,
        name: str | None,
        command: dict[str, Any],
        interval: float,
        root: str | os.PathLike[str] | None = None,
        *,
        described: bool = True,
    ) -> None:
        self.interval = interval
        self.id = new_run_id()
        self.directory = RunDirectory((runs_root(root) / self.id).resolve())
        self.record = new_record(self.id, name, kind, command, interval, described=described)
        self.started: float = self.record["start"]
        self.result = RunResult(self.id, self.directory.path, exit_code=-1, status="running")
        # From the start of the run: a command that ends before the first sample has
        # its CPU time spread over its whole life, not over the last microseconds.
        self._previous = (0.0, self.started)
        self._cpus = float(os.cpu_count() or 1)
        # The first energy reading (an ``_energy.Reading``): the run's energy counts from it.
        self._energy_base: tuple[float | None, float | None, float | None] | None = None
        self._rss = _MeanRSS()
        self.directory.write_run(self.record)

    def describe(self) -> None:
        """Add the machine and the git commit to run.json (``described=False`` left them out)."""
        describe(self.record)
        self.directory.write_run(self.record)

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.directory.path

    def add_sample(
        self,
        sample: TreeSample,
        totals: Totals,
        single_process_peak: int = 0,
        energy: tuple[float | None, float | None, float | None] | None = None,
    ) -> None:
        """Fold one sample and the tree's totals into the run, and append it to usage.jsonl.

        Totals never go back: a process that ended between two samples is counted
        by the kernel only once it is reaped. ``single_process_peak`` is a peak
        RSS the kernel kept for a reaped process (``ru_maxrss``), if known.
        ``energy`` is the machine's energy meter read with the sample
        (``_energy.Reading``): the run's energy counts from its first one.
        """
        result = self.result
        if energy is not None:
            self._add_energy(sample, energy)
        cpu_user, cpu_system, read, written = totals
        result.cpu_user_seconds = max(result.cpu_user_seconds, cpu_user)
        result.cpu_system_seconds = max(result.cpu_system_seconds, cpu_system)
        result.read_bytes = max(result.read_bytes, read)
        result.written_bytes = max(result.written_bytes, written)
        busy = result.cpu_user_seconds + result.cpu_system_seconds
        previous_cpu, previous_t = self._previous
        if sample.t > previous_t:
            # Live processes' CPU time comes in clock ticks (10 ms) and reaped ones'
            # exactly, so over a few milliseconds the difference is rounding, not
            # work: average over half an interval at least.
            elapsed = max(sample.t - previous_t, self.interval / 2)
            sample.cpu_utilization = min(max(busy - previous_cpu, 0.0) / elapsed, self._cpus)
        self._previous = (busy, sample.t)
        if sample.gpu_memory is not None:
            result.peak_gpu_memory_bytes = max(result.peak_gpu_memory_bytes or 0, sample.gpu_memory)
        result.cpu_utilization_peak = max(result.cpu_utilization_peak, sample.cpu_utilization)
        result.peak_rss_sampled_bytes = max(result.peak_rss_sampled_bytes, sample.rss)
        result.peak_pss_sampled_bytes = max(result.peak_pss_sampled_bytes, sample.pss)
        result.average_rss_bytes = self._rss.add(sample.t, sample.rss)
        result.peak_rss_single_process_bytes = max(
            result.peak_rss_single_process_bytes, sample.hwm, single_process_peak
        )
        result.peak_processes = max(result.peak_processes, sample.processes)
        result.peak_threads = max(result.peak_threads, sample.threads)
        result.peak_memory_bytes, result.peak_memory_source = headline_peak(
            result.peak_pss_sampled_bytes, result.peak_rss_single_process_bytes, PEAK_FROM_KERNEL
        )
        result.samples += 1
        self.directory.append_usage(
            {**sample.to_json(), "cpu_user_total": result.cpu_user_seconds,
             "cpu_system_total": result.cpu_system_seconds}
        )  # fmt: skip

    def _add_energy(
        self, sample: TreeSample, energy: tuple[float | None, float | None, float | None]
    ) -> None:
        from jobmeter import _energy  # on the first sample: not before the command starts

        base = self._energy_base
        if base is None:
            base = self._energy_base = energy
        between = _energy.difference(base, energy)
        spent = {d: j for d, j in zip(ENERGY_DOMAINS, between, strict=True) if j is not None}
        if spent:
            self.result.energy_joules = spent
            sample.energy_cpu = spent.get("cpu")
            sample.energy_dram = spent.get("dram")
            sample.energy_gpu = spent.get("gpu")

    def _published_peaks(self) -> None:
        """Peaks that processes left because their measured blocks reset the kernel's mark."""
        peaks = published_peaks(self.path)
        if not peaks:
            return
        result = self.result
        result.peak_rss_single_process_bytes = max(
            result.peak_rss_single_process_bytes, *peaks.values()
        )
        result.peak_memory_bytes, result.peak_memory_source = headline_peak(
            result.peak_pss_sampled_bytes, result.peak_rss_single_process_bytes, PEAK_FROM_KERNEL
        )

    def finish(self, status: str, exit_code: int, *, compact_records: bool = True) -> RunResult:
        """The run's end: records compacted, the summary in run.json, the directory closed.

        ``compact_records=False`` leaves the records as JSONL (on SIGTERM there is
        no time for DuckDB; the store reads JSONL as well).
        """
        result = self.result
        result.status, result.exit_code = status, exit_code
        end = time.time()  # before the compaction: it is not the run's time
        result.wall_seconds = end - self.started
        busy = result.cpu_user_seconds + result.cpu_system_seconds
        mean = busy / result.wall_seconds if result.wall_seconds > 0 else 0.0
        result.cpu_utilization_mean = min(mean, self._cpus)
        # The whole run is one interval too, and the largest of the intervals' rates is
        # at least their mean: a run shorter than half an interval, or a short last
        # interval (averaged over half an interval), must not show a peak below it.
        result.cpu_utilization_peak = max(result.cpu_utilization_peak, result.cpu_utilization_mean)
        self._published_peaks()
        lost = store_error(self.path)  # before the compaction's own failure
        if compact_records:
            try:
                self.record["records"] = compact(self.path)
            except Exception as error:  # the JSONL files stay readable
                warn_once(self.path, f"the run's records stay as JSONL ({error})")
        self.record.update(status=status, end=end, exit_code=exit_code, summary=result.to_json())
        mark_incomplete(self.record, lost)
        self.directory.write_run(self.record)  # a failure is the directory's one warning
        self.directory.close()
        if compact_records and not self.directory.failed:  # on SIGTERM, no time for DuckDB
            from jobmeter import store  # the store's index entry (docs/run-store.md#the-index)

            store.index_run(self.path)
        return result
