"""Listing the runs, naming one, and what one run cost."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobmeter._rundata.layout import USAGE, runs_root
from jobmeter._rundata.sketch import quantile_of
from jobmeter._rundata.usage import ProcessRows, read_usage
from jobmeter.store._cost import Cost, cost_of, held_of, prices
from jobmeter.store._figures import run_figures
from jobmeter.store._index.read import Entry, read_entries
from jobmeter.store._index.write import COMPACT_AFTER, compact_quietly
from jobmeter.store._liveness import Liveness
from jobmeter.store._stored import (
    EmptyStoreError,
    IndexedRun,
    StoredRun,
    StoreError,
    UnknownRunError,
    load_run,
    run_directories,
    start_order,
)
from jobmeter.store._summary import RecordSummary

__all__ = [
    "EmptyStoreError",
    "RunReport",
    "StoreError",
    "StoredRun",
    "UnknownRunError",
    "list_runs",
    "percentile",
    "report",
    "resolve",
    "start_order",
]

_log = logging.getLogger("jobmeter")


def _indexed(directory: Path, entry: Entry) -> StoredRun | None:
    """The run as its index entry has it; None for an entry that is not a finished run."""
    if entry.columns[2] == "running":
        return None  # not one the index keeps: its run.json and liveness decide
    return IndexedRun(directory, entry.entry, entry.columns, entry.record, entry.figures)


def list_runs(
    root: str | Path | None = None, *, index: bool = True, compact: bool = True
) -> list[StoredRun]:
    """Every readable run under ``root`` (JOBMETER_RUN_DIR, ./.jobmeter/runs), oldest first.

    Finished runs come from the store's index (docs/run-store.md#the-index: the
    Parquet segments of ``<root>/.index``, and the ``index.json`` of runs no
    segment holds yet), the others (running, or recorded before the index)
    from their run.json; a run directory that is gone is not listed, whatever
    the index says. Finding ``COMPACT_AFTER`` entries no segment holds, it
    compacts them into this host's folder (``compact=False``: never; a store
    it may not write is read as it is). ``index=False`` reads every run.json
    (the same runs, slower).
    """
    base = runs_root(root)
    if not base.is_dir():
        return []
    liveness = Liveness()
    names = run_directories(base)
    entries, loose = read_entries(base, names) if index else ({}, [])
    if compact and len(loose) >= COMPACT_AFTER:
        compact_quietly(base)
    runs = []
    for name in names:
        path = base / name
        entry = entries.get(name)
        run = _indexed(path, entry) if entry is not None else None
        if run is None:
            run = load_run(path, liveness)
        if run is not None:
            runs.append(run)
    return sorted(runs, key=start_order)


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
    #: The heaviest processes over the run's samples (usage.jsonl's ``top_processes``).
    processes: ProcessRows = field(default_factory=ProcessRows)

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
            "processes": self.processes.rows,
            "processes_seen": self.processes.seen,
        }


def report(run: StoredRun) -> RunReport:
    """The figures of one run: run.json's summary, complemented and checked by usage.jsonl.

    A run without a summary (incomplete, or still running) gets every figure from
    its samples. Unreadable lines of usage.jsonl are skipped with one warning.
    """
    samples, processes = read_usage(run.directory / USAGE)
    found = run_figures(run, samples=samples)
    for warning in found.warnings:
        _log.warning("jobmeter store: %s", warning)
    return RunReport(
        run, found.figures, found.source, found.samples, found.skipped_lines, found.warnings,
        found.records, cost_of(found.figures, held_of(run.record), prices()), processes,
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
