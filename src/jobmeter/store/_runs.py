"""Listing the runs, naming one, and what one run cost."""

from __future__ import annotations

import calendar
import difflib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jobmeter._rundata.layout import USAGE, runs_root
from jobmeter._rundata.metadata import read_record
from jobmeter._rundata.sketch import quantile_of
from jobmeter._rundata.summary import (
    FIGURES,
    NOT_STARTED,
    PEAK_FROM_SAMPLED_HWM,
    energy_figures,
    headline_peak,
)
from jobmeter._rundata.usage import SampleFigures, read_figures
from jobmeter.store._cost import Cost, cost_of, held_of, prices
from jobmeter.store._liveness import Liveness
from jobmeter.store._summary import RecordSummary, summarize

_log = logging.getLogger("jobmeter")

#: What run.json said of a command that could not start, before ``not_started``.
_OLD_NOT_STARTED = ("not_found", "not_executable")


class StoreError(Exception):
    """A run cannot be found or read; the CLI exits 2 with this message."""


class EmptyStoreError(StoreError):
    """The store holds no run."""

    def __init__(self, root: Path) -> None:
        super().__init__(f"no runs in {root}; make one with: jobmeter run -- CMD")
        self.root = root


class UnknownRunError(StoreError):
    """No run has this id, or the prefix is not unique."""

    def __init__(self, ref: str, matches: list[str], ambiguous: bool = False) -> None:
        what = "is not unique" if ambiguous else "matches no run"
        message = f"run {ref!r} {what}"
        if matches:
            message += "; did you mean: " + ", ".join(matches)
        super().__init__(message)
        self.ref = ref
        self.matches = matches


@dataclass
class StoredRun:
    """One run directory: its run.json, and its state as read now."""

    id: str
    directory: Path
    record: dict[str, Any]
    state: str  # the recorded status, or "incomplete" for an abandoned "running" run

    @property
    def started(self) -> bool:
        """False for a command that could not start: its figures are zeros, not usage."""
        return self.state != NOT_STARTED

    @property
    def name(self) -> str:
        """The run's name, else the program's name."""
        name = self.record.get("name")
        if name:
            return str(name)
        command = self.record.get("command")
        return str(command.get("executable", "")) if isinstance(command, dict) else ""

    @property
    def start(self) -> float | None:
        """Unix seconds."""
        start = self.record.get("start")
        return float(start) if isinstance(start, int | float) else None

    @property
    def end(self) -> float | None:
        """Unix seconds; None while running or when incomplete."""
        end = self.record.get("end")
        return float(end) if isinstance(end, int | float) else None

    @property
    def summary(self) -> dict[str, Any] | None:
        """run.json's summary, present once the run ended."""
        summary = self.record.get("summary")
        return summary if isinstance(summary, dict) and self.end is not None else None

    def start_iso(self) -> str:
        """The start in local time, ISO 8601 with the offset."""
        if self.start is None:
            return ""
        return datetime.fromtimestamp(self.start).astimezone().isoformat(timespec="seconds")


def _load(directory: Path, liveness: Liveness) -> StoredRun | None:
    record = read_record(directory)
    if record is None:
        if not (directory / USAGE).is_file():
            return None
        record = {"id": directory.name}  # run.json lost or damaged: the samples remain
    state = str(record.get("status") or "incomplete")
    if state in _OLD_NOT_STARTED:
        state = NOT_STARTED
    if state == "running" or record.get("end") is None:
        state = "running" if liveness.alive(record, directory) else "incomplete"
    elif record.get("incomplete"):  # it ended, but the store could not keep all of it
        state = "incomplete"
    return StoredRun(str(record.get("id") or directory.name), directory, record, state)


def list_runs(root: str | Path | None = None) -> list[StoredRun]:
    """Every readable run under ``root`` (JOBMETER_RUN_DIR, ./.jobmeter/runs), oldest first."""
    base = runs_root(root)
    if not base.is_dir():
        return []
    liveness = Liveness()
    runs = [
        run
        for path in sorted(base.iterdir())
        if path.is_dir() and (run := _load(path, liveness)) is not None
    ]
    return sorted(runs, key=start_order)


def start_order(run: StoredRun) -> tuple[float, str]:
    # Ids only resolve to the second: two runs started in one second sort by their start.
    if run.start is not None:
        return (run.start, run.id)
    try:
        return (calendar.timegm(time.strptime(run.id[:16], "%Y%m%dT%H%M%SZ")), run.id)
    except ValueError:
        return (0.0, run.id)


def resolve(
    ref: str, root: str | Path | None = None, runs: Sequence[StoredRun] | None = None
) -> StoredRun:
    """The run named by an id, a unique id prefix, ``"latest"``, or a name (its newest run).

    Raises:
        EmptyStoreError: there is no run at all.
        UnknownRunError: nothing matches (with close ids and names), or the prefix is ambiguous.
    """
    runs = list(list_runs(root) if runs is None else runs)
    if not runs:
        raise EmptyStoreError(runs_root(root))
    if ref == "latest":
        return runs[-1]
    exact = [run for run in runs if run.id == ref]
    if exact:
        return exact[0]
    prefixed = [run for run in runs if run.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise UnknownRunError(ref, [run.id for run in prefixed[:5]], ambiguous=True)
    by_name = [run for run in runs if run.name == ref]
    if by_name:  # the newest that ran: a mistyped command of that name cost nothing
        return ([run for run in by_name if run.started] or by_name)[-1]
    candidates = {run.id: run.id for run in runs}
    candidates.update({run.name: f"{run.id} ({run.name})" for run in runs if run.name})
    close = difflib.get_close_matches(ref, list(candidates), n=5, cutoff=0.5)
    raise UnknownRunError(ref, [candidates[c] for c in close])


@dataclass
class RunReport:
    """What one run cost: ``figures`` (keys: FIGURES) and where they came from."""

    run: StoredRun
    figures: dict[str, Any]
    source: str  # "summary" (run.json) or "samples" (usage.jsonl, for an incomplete run)
    samples_read: int
    skipped_lines: int
    warnings: list[str] = field(default_factory=list)
    records: RecordSummary = field(default_factory=RecordSummary)
    #: What the run cost at the prices set now (JOBMETER_PRICE_*); None without prices.
    cost: Cost | None = None

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (docs/run-store.md)."""
        return {
            "id": self.run.id,
            "name": self.run.name,
            "status": self.run.state,
            "recorded_status": self.run.record.get("status"),
            "exit_code": self.run.record.get("exit_code"),
            "start": self.run.start_iso(),
            "start_unix": self.run.start,
            "end_unix": self.run.end,
            "directory": str(self.run.directory),
            "source": self.source,
            "figures": dict(self.figures),
            "samples_read": self.samples_read,
            "skipped_lines": self.skipped_lines,
            "warnings": list(self.warnings),
            "git": self.run.record.get("git"),
            "operations": self.records.operations,
            "queries": self.records.queries,
            "failures": self.records.failures,
            "backfills": self.records.backfills,
            "held": held_of(self.run.record),
            "cost": None if self.cost is None else self.cost.to_json(),
        }


def _from_samples(run: StoredRun, samples: SampleFigures) -> dict[str, Any]:
    """The figures of a run without a summary, computed from its samples."""
    start = run.start if run.start is not None else samples.first_t
    last = run.end or samples.last_t
    wall = max((last or 0.0) - (start or 0.0), 0.0) if last and start else 0.0
    user, system = samples.cpu_user_total or 0.0, samples.cpu_system_total or 0.0
    pss, hwm = samples.peak_pss or 0, samples.peak_hwm or 0
    peak, source = headline_peak(pss, hwm, PEAK_FROM_SAMPLED_HWM)
    return {
        "wall_seconds": wall,
        "cpu_user_seconds": user,
        "cpu_system_seconds": system,
        "cpu_utilization_mean": (user + system) / wall if wall > 0 else 0.0,
        "cpu_utilization_peak": samples.cpu_utilization_peak or 0.0,
        "peak_memory_bytes": peak,
        "peak_memory_source": source,
        "peak_rss_sampled_bytes": samples.peak_rss or 0,
        "peak_pss_sampled_bytes": pss,
        "peak_rss_single_process_bytes": hwm,
        "peak_cgroup_bytes": None,
        "read_bytes": samples.peak_read_bytes or 0,
        "written_bytes": samples.peak_write_bytes or 0,
        "peak_gpu_memory_bytes": samples.peak_gpu_memory,
        "peak_processes": samples.peak_processes or 0,
        "peak_threads": samples.peak_threads or 0,
        **energy_figures(
            {"cpu": samples.energy_cpu, "dram": samples.energy_dram, "gpu": samples.energy_gpu}
        ),
    }


def report(run: StoredRun) -> RunReport:
    """The figures of one run: run.json's summary, complemented and checked by usage.jsonl.

    A run without a summary (incomplete, or still running) gets every figure from
    its samples. Unreadable lines of usage.jsonl are skipped with one warning.
    """
    usage = run.directory / USAGE
    samples = read_figures(usage)
    warnings: list[str] = []
    if samples.skipped:
        warnings.append(f"skipped {samples.skipped} unreadable line(s) of {usage}")
    summary = run.summary
    if summary is not None:
        figures = {name: summary.get(name) for name in FIGURES}
        figures.update(energy_figures(summary.get("energy_joules")))
        source = "summary"
        recorded = summary.get("samples")
        if isinstance(recorded, int) and recorded != samples.samples:
            warnings.append(f"run.json counts {recorded} samples, {usage} has {samples.samples}")
    else:
        figures = _from_samples(run, samples)
        source = "samples"
    figures["cpu_utilization_p95"] = samples.cpu_utilization_p95
    figures["samples"] = samples.samples
    records = summarize(run.directory)
    for kind, skipped in records.skipped.items():
        warnings.append(f"skipped {skipped} unreadable {kind} record(s) in {run.directory}")
    for warning in warnings:
        _log.warning("jobmeter store: %s", warning)
    shown = {name: figures.get(name) for name in FIGURES}
    return RunReport(
        run, shown, source, samples.samples, samples.skipped, warnings, records,
        cost_of(shown, held_of(run.record), prices()),
    )  # fmt: skip


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between the closest ranks.

    jobmeter's one definition of percentile (``rank = q/100 * (n - 1)``, numpy's
    default); report, compare, Comet and plots use it too.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0 and 100, not {q}")
    if not values:
        raise ValueError("percentile of no values")
    return quantile_of(sorted(values), q / 100)
