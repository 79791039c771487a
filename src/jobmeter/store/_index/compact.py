"""Compaction: the entries no segment holds yet and a host's segments, into one new segment.

The merge reads what it finds, writes one new segment under a new name in the
compacting host's folder (the operations file first, the runs file last: a
segment counts once both are there), and only then removes the segments it
merged; the entries in the run directories stay where their runs wrote them.
Whatever happens in between (a kill, a second compaction on another host),
every entry stays in some file: two compactions at once leave the same
entries twice, which readers and the next compaction keep once. Entries of
run directories that are gone (``gc``, ``rm -r``) are left out, unless they
are younger than ``KEEP_YOUNG_S``: a directory just made on another host may
not show yet through NFS's caches.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jobmeter._rundata.layout import (
    FILE_MODE,
    USAGE,
    make_private_dirs,
    temporary_beside,
    write_private,
)
from jobmeter._rundata.schema import columns_sql
from jobmeter.store._figures import read_samples, run_figures
from jobmeter.store._index.read import (
    ENTRY_COLUMNS,
    Entry,
    Folder,
    entry_of,
    list_index,
    newest_entries,
    read_entry_file,
    read_segments,
)
from jobmeter.store._index.schema import (
    OPERATION_COLUMNS,
    OPERATIONS_PREFIX,
    RUN_COLUMNS,
    RUNS_PREFIX,
    new_token,
    segment_files,
    with_figures,
)
from jobmeter.store._stored import StoredRun, run_directories

#: An entry whose run directory is missing is kept this long after it was written.
KEEP_YOUNG_S: Final = 600.0
#: Temporary and unpaired files older than this are what a killed writer left.
LEFTOVER_S: Final = 3600.0
#: Tries of a compaction whose files another one merged meanwhile.
ATTEMPTS: Final = 3


@dataclass
class Compaction:
    """What one compaction did: entries kept, and the files merged into ``segment``."""

    kept: int = 0
    dropped: int = 0
    merged: int = 0
    segment: Path | None = None


def _select(columns: dict[str, str]) -> str:
    return ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in columns.items())


def _source(segments: Sequence[Path], staging: Path | None, columns: dict[str, str]) -> str:
    """A FROM clause over the segments' files and the staged entries' rows."""
    parts = []
    if segments:
        parts.append(f"SELECT {_select(columns)} FROM read_parquet($segments, union_by_name=true)")
    if staging is not None:
        parts.append(f"SELECT {_select(columns)} FROM read_ndjson($staging, "
                     f"columns={columns_sql(columns)}, format='newline_delimited')")  # fmt: skip
    if not parts:
        empty = ", ".join(f'NULL::{kind} AS "{name}"' for name, kind in columns.items())
        parts.append(f"SELECT {empty} WHERE false")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")"


def _copy(connection: Any, source: str, key: str, params: dict[str, Any], target: Path) -> None:
    """Write the kept rows of ``source``, each once, to ``target`` (whole or not at all)."""
    temporary = temporary_beside(target)
    query = (f"COPY (SELECT * FROM {source} WHERE list_contains($keep, entry) "
             f"QUALIFY row_number() OVER (PARTITION BY {key}) = 1 ORDER BY ALL) "
             f"TO '{str(temporary).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")  # fmt: skip
    try:
        connection.execute(query, params)
        os.chmod(temporary, FILE_MODE)  # DuckDB makes it with the umask's mode
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _stage(into: Path, rows: Iterable[dict[str, Any]], kind: str) -> Path | None:
    lines = [json.dumps(row) + "\n" for row in rows]
    if not lines:
        return None
    staging = temporary_beside(into / f"{kind}.staging.jsonl")
    write_private(staging, "".join(lines))
    return staging


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another compaction merged it too
        except OSError:
            continue  # left for the next one: its entries are in the new segment already


def _leftovers(folder: Folder, now: float) -> list[Path]:
    old = []
    for path in folder.others:
        try:
            if now - path.stat().st_mtime > LEFTOVER_S:
                old.append(path)
        except OSError:
            continue
    return old


def _set_aside(paths: Iterable[Path]) -> None:
    """Hide damaged files (readers skip hidden names); they go with the leftovers later."""
    for path in paths:
        try:
            os.replace(path, path.with_name(f".{path.name}.damaged"))
        except OSError:
            continue


def _operations_file(runs_file: Path) -> Path:
    name = runs_file.name
    return runs_file.with_name(OPERATIONS_PREFIX + name[len(RUNS_PREFIX) :])


def _segments(listed: Sequence[Folder]) -> tuple[list[Entry], list[Path]]:
    """The entries of the folders' segments, and the runs files of the segments read whole."""
    files = [path for folder in listed for path in folder.runs_files()]
    _, operations_read = read_segments([_operations_file(path) for path in files], ("entry",))
    whole = {path.name for path in operations_read}
    files = [path for path in files if _operations_file(path).name in whole]
    rows, read = read_segments(files, ENTRY_COLUMNS)
    broken = [path for path in files if path not in read]
    broken += [_operations_file(path) for path in broken]
    _set_aside(path for path in broken if path.exists())
    return [entry for row in rows if (entry := _entry(row)) is not None], read


def _entry(row: Any) -> Entry | None:
    """A row's entry, of any format (a newer jobmeter's rows are kept as they are)."""
    try:
        return entry_of(row, any_format=True)
    except (ValueError, TypeError):
        return None  # not an entry: nothing a reader could use


def _completed(base: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs' own entries with their figures, read from their samples over one connection."""
    missing = [i for i, row in enumerate(rows) if row.get("figures") is None]
    runs = [StoredRun(rows[i]["id"], base / rows[i]["run_dir"], json.loads(rows[i]["record"]),
                      rows[i]["state"]) for i in missing]  # fmt: skip
    completed = list(rows)
    samples = read_samples([run.directory / USAGE for run in runs])
    for i, run, sampled in zip(missing, runs, samples, strict=True):
        found = run_figures(run, with_records=False, samples=sampled)
        completed[i] = with_figures(rows[i], found.figures, found.source)
    return completed


class _VanishedError(Exception):
    """A file being merged was merged and removed by another compaction meanwhile."""


def compact(
    base: Path, folders: Sequence[Path], into: Path, gone: Iterable[str] = ()
) -> Compaction:
    """Merge the entries of ``folders`` into one new segment in ``into`` (this host's folder).

    Runs whose directory under ``base`` is gone are left out, and those of
    ``gone`` (directories just deleted) at any age. Nothing is
    written when there is nothing to merge or drop. Raises OSError and
    duckdb.Error (the files read stay where they were).
    """
    deleted = set(gone)
    for _ in range(ATTEMPTS - 1):
        try:
            return _compact(base, folders, into, deleted)
        except _VanishedError:
            continue  # another host merged some of these files: list them again
    try:
        return _compact(base, folders, into, deleted)
    except _VanishedError:
        return Compaction()  # others keep merging the same files: they do the work


def _compact(base: Path, folders: Sequence[Path], into: Path, deleted: set[str]) -> Compaction:
    everything = list_index(base)
    merged_paths = set(folders)
    listed = [folder for folder in everything if folder.path in merged_paths]
    now = time.time()
    entries, read = _segments(listed)
    # The entries no segment holds, in their run directories (every host's runs).
    others = [path for f in everything if f.path not in merged_paths for path in f.runs_files()]
    covered = {e.run_dir for e in entries}
    covered.update(row[0] for row in read_segments(others, ("run_dir",))[0])
    names = run_directories(base)
    loose_runs: list[dict[str, Any]] = []
    loose_operations: list[dict[str, Any]] = []
    for name in names:
        if name in covered:
            continue
        found = read_entry_file(base / name)
        entry = _entry(found[0]) if found is not None else None
        if found is not None and entry is not None:
            entries.append(entry)
            loose_runs.append(found[0])
            loose_operations += found[1]
    loose_runs = _completed(base, loose_runs)
    newest = newest_entries(entries)
    listed_now = set(names)
    keep = {e.entry for e in newest.values() if e.run_dir not in deleted and (
            e.run_dir in listed_now or now - e.indexed_at < KEEP_YOUNG_S
            or (base / e.run_dir).is_dir())}  # fmt: skip
    leftovers = [path for folder in listed for path in _leftovers(folder, now)]
    if not loose_runs and len(read) <= 1 and len(keep) == len(entries):
        _remove(leftovers)
        return Compaction(len(keep), 0, 0)  # one file, nothing to drop: it stays as it is
    make_private_dirs(into)
    runs_target, operations_target = segment_files(into, new_token())
    staged = (_stage(into, loose_runs, "runs"), _stage(into, loose_operations, "operations"))
    import duckdb

    try:
        with duckdb.connect() as connection:
            for files, staging, columns, key, target in (
                ([_operations_file(p) for p in read], staged[1], OPERATION_COLUMNS,
                 "entry, position", operations_target),
                (read, staged[0], RUN_COLUMNS, "entry", runs_target),
            ):  # fmt: skip
                params: dict[str, Any] = {"keep": sorted(keep)}
                if files:
                    params["segments"] = [str(path) for path in files]
                if staging is not None:
                    params["staging"] = str(staging)
                _copy(connection, _source(files, staging, columns), key, params, target)
    except BaseException as error:
        operations_target.unlink(missing_ok=True)
        inputs = [*read, *(_operations_file(path) for path in read)]
        if isinstance(error, duckdb.Error) and not all(path.exists() for path in inputs):
            raise _VanishedError from error
        raise
    finally:
        _remove(path for path in staged if path is not None)
    # Only now that the new segment is whole: the runs files first (a reader that
    # still lists one finds its operations file until the pair is gone).
    _remove(read)
    _remove(_operations_file(path) for path in read)
    _remove(leftovers)
    merged = len(read) + len(loose_runs)
    return Compaction(len(keep), len(newest) - len(keep), merged, runs_target)
