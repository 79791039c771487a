"""The operations and query shapes of many runs at once: the index's second table.

For runs listed from the index, their rows come from the operations files of
the segments (one DuckDB query) and the runs' own entries; for the others
(running, recorded before the index, or whose entry's files were damaged),
from their records, summarized as ``report`` does. Either way one row per
operation or query shape, with the columns of ``OPERATION_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobmeter._rundata import records
from jobmeter.store._index.read import list_index, read_entry_file, read_segments
from jobmeter.store._index.schema import OPERATION_COLUMNS, operation_rows, segment_files
from jobmeter.store._stored import StoredRun
from jobmeter.store._summary import RecordSummary, _operations, _queries


def _indexed_rows(
    base: Path, runs: Sequence[StoredRun]
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The operations rows of the runs' entries in one store's index, by entry, and whether
    every file was read (else an entry without rows may have lost them)."""
    entries = {run.entry for run in runs if run.entry is not None}
    files = [segment_files(folder.path, segment)[1]
             for folder in list_index(base) for segment in folder.segments]  # fmt: skip
    columns = list(OPERATION_COLUMNS)
    found, read = read_segments(files, columns, "WHERE list_contains($entries, entry)",
                                {"entries": sorted(entries)})  # fmt: skip
    rows = [dict(zip(columns, row, strict=True)) for row in found]
    by_entry: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:  # two compactions at once may have left a row twice
        if row["entry"] in entries:
            by_entry.setdefault(row["entry"], {})[int(row["position"] or 0)] = row
    complete = len(read) == len(files)
    for run in runs:  # entries no segment holds yet: in the runs' own index.json
        if run.entry is not None and run.entry not in by_entry:
            own = read_entry_file(run.directory)
            if own is not None and own[0].get("entry") == run.entry:
                by_entry[run.entry] = {int(op.get("position") or 0): {
                    name: op.get(name) for name in columns} for op in own[1]}  # fmt: skip
    return {entry: [kept[i] for i in sorted(kept)] for entry, kept in by_entry.items()}, complete


def operations_of(runs: Sequence[StoredRun]) -> list[dict[str, Any]]:
    """One row per operation and per query shape of each run (``kind``: ``operation``, ``query``).

    The columns are the index's operations table (docs/run-store.md#the-index):
    the run (``run_id``, ``run_name``, ``start``), the key (``collector``,
    ``operation``, ``attributes`` as JSON text; ``namespace``, ``summary``,
    ``shape_hash``), and ``count``, ``errors``, ``duration_*_seconds``,
    ``cpu_*_seconds``, ``memory_*_bytes``, ``peak_memory_*_bytes``,
    ``energy_total_joules``, ``io_*_total_bytes``, ``rows``. Rows follow the runs'
    order, then ``report``'s (largest total time first).
    """
    indexed: dict[Path, list[StoredRun]] = {}
    for run in runs:
        if run.entry is not None:
            indexed.setdefault(run.directory.parent, []).append(run)
    found: dict[str, list[dict[str, Any]]] = {}
    incomplete: set[Path] = set()
    for base, listed in indexed.items():
        rows_of, complete = _indexed_rows(base, listed)
        found.update(rows_of)
        if not complete:
            incomplete.add(base)
    rows: list[dict[str, Any]] = []
    with records.Reader() as reader:
        for run in runs:
            if run.entry is not None and run.entry in found:
                rows += found[run.entry]
            elif run.entry is not None and run.directory.parent not in incomplete:
                continue  # every file was read: the entry had no operation and no query
            else:  # from its records (a damaged index file was skipped with a warning)
                summary = _summarized(reader, run.directory)
                rows += operation_rows(run, run.entry or "", summary)
    return rows


def _summarized(reader: records.Reader, directory: Path) -> RecordSummary:
    """A run's operations and query shapes as ``report`` summarizes them (not its failures
    and backfills: half the reads)."""
    return RecordSummary(_operations(reader.read(directory, "operations").rows),
                         _queries(reader.read(directory, "queries").rows))  # fmt: skip
