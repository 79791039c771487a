"""Reading the store's index: the segments of each host's folder, and the runs' own entries.

A listing reads the segments (about one per host that compacted) with one
DuckDB query, and the ``index.json`` of the few run directories no segment
holds yet with ``json``. A file that cannot be read (cut short, not Parquet,
not the JSON of an entry) is skipped with one warning; its runs are then read
from their run.json, so nothing goes missing from the listing. A segment that
vanished while being read was merged by a compaction: the index is listed
again, once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobmeter._rundata.layout import warn_once
from jobmeter.store._index.schema import (
    ENTRY_FILE,
    FORMAT,
    INDEX_DIR,
    OPERATIONS_PREFIX,
    RUNS_PREFIX,
    SEGMENT_SUFFIX,
    segment_files,
)

#: What a listing needs of a runs row.
ENTRY_COLUMNS = ("run_dir", "entry", "indexed_at", "format", "record", "figures", "id", "name",
                 "state", "start", "end", "exit_code")  # fmt: skip


@dataclass
class Folder:
    """The files of one host's folder, as listed now."""

    path: Path
    segments: list[str] = field(default_factory=list)  # with both their files present
    others: list[Path] = field(default_factory=list)  # hidden (temporary), unpaired

    def runs_files(self) -> list[Path]:
        """The runs file of each segment."""
        return [segment_files(self.path, segment)[0] for segment in self.segments]


def list_folder(path: Path) -> Folder:
    """The segments of one host's folder."""
    folder = Folder(path)
    try:
        names = os.listdir(path)
    except OSError:
        return folder
    present = set(names)
    for name in sorted(names):
        if name.startswith(".") or not name.endswith(SEGMENT_SUFFIX):
            folder.others.append(path / name)
        elif name.startswith(RUNS_PREFIX):
            segment = name[len(RUNS_PREFIX) : -len(SEGMENT_SUFFIX)]
            if f"{OPERATIONS_PREFIX}{segment}{SEGMENT_SUFFIX}" in present:
                folder.segments.append(segment)
            else:
                folder.others.append(path / name)
        elif name.startswith(OPERATIONS_PREFIX):
            segment = name[len(OPERATIONS_PREFIX) : -len(SEGMENT_SUFFIX)]
            if f"{RUNS_PREFIX}{segment}{SEGMENT_SUFFIX}" not in present:
                folder.others.append(path / name)
    return folder


def list_index(base: Path) -> list[Folder]:
    """Every host's folder of a store's index; none where nothing was compacted yet."""
    index = base / INDEX_DIR
    try:
        with os.scandir(index) as entries:
            paths = sorted(index / e.name for e in entries if not e.name.startswith("."))
    except OSError:
        return []
    return [list_folder(path) for path in paths if path.is_dir()]


@dataclass
class Entry:
    """One run as the index keeps it (the runs table's row, in part)."""

    run_dir: str
    entry: str
    indexed_at: float
    record: str  # run.json, JSON text
    figures: str | None  # the report's figures, JSON text; None: not read yet
    #: id, name, state, start, end, exit_code: what a listing needs without parsing ``record``.
    columns: tuple[str, str, str, Any, Any, Any]


def damaged(path: Path, error: object) -> None:
    """One warning for an index file that cannot be read; its runs are read from their
    directories (their own entry, else run.json)."""
    warn_once(path, f"skipped the damaged index file {path} ({error}); its runs are read "
                    "from their own directories")  # fmt: skip


def read_entry_file(directory: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """A run's own entry: its runs row and operations rows; None if it has none, or (with one
    warning) a damaged one."""
    path = directory / ENTRY_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        run, operations = document["run"], document["operations"]
        if not isinstance(run, dict) or not isinstance(operations, list):
            raise ValueError("not an index entry")
        if run.get("run_dir") != directory.name:
            raise ValueError("the entry of another run directory")
        entry_of(run)  # checks its columns
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        damaged(path, error)
        return None
    return run, [op for op in operations if isinstance(op, dict)]


def entry_of(row: dict[str, Any] | Sequence[Any], *, any_format: bool = False) -> Entry | None:
    """The entry of a runs row (``ENTRY_COLUMNS``); None for a newer format's, unless
    ``any_format``. Raises ValueError or TypeError for a row that is not an entry."""
    values = dict(zip(ENTRY_COLUMNS, row, strict=True)) if not isinstance(row, dict) else row
    if not any_format and (values["format"] is None or int(values["format"]) > FORMAT):
        return None  # a newer jobmeter's row: its run.json says what this one can read
    texts = [values[name] for name in ("run_dir", "entry", "record", "id", "name", "state")]
    if not all(isinstance(text, str) for text in texts) or not isinstance(
        values["figures"], str | None
    ):
        raise ValueError("an index row without its run directory, entry or record")
    columns = (values["id"], values["name"], values["state"], values["start"], values["end"],
               values["exit_code"])  # fmt: skip
    return Entry(values["run_dir"], values["entry"], float(values["indexed_at"] or 0.0),
                 values["record"], values["figures"], columns)  # fmt: skip


def read_segments(files: Sequence[Path], columns: Sequence[str] = ENTRY_COLUMNS,
                  where: str = "", params: dict[str, Any] | None = None
                  ) -> tuple[list[tuple[Any, ...]], list[Path]]:  # fmt: skip
    """The rows of some segment files (one query; file by file if one fails), and those read.

    A missing file is skipped quietly (a compaction merged it), a damaged one
    with a warning.
    """
    if not files:
        return [], []
    import duckdb  # here: a store without an index never loads it

    names = ", ".join(f'"{name}"' for name in columns)
    query = f"SELECT {names} FROM read_parquet($files, union_by_name=true) {where}"
    with duckdb.connect() as connection:
        try:
            found = connection.execute(query, {**(params or {}), "files": [str(f) for f in files]})
            return found.fetchall(), list(files)
        except duckdb.Error:
            pass  # find the file at fault
        rows: list[tuple[Any, ...]] = []
        read: list[Path] = []
        for path in files:
            try:
                one = connection.execute(query, {**(params or {}), "files": [str(path)]})
                rows += one.fetchall()
                read.append(path)
            except duckdb.Error as error:
                if path.exists():
                    damaged(path, str(error).splitlines()[0])
    return rows, read


def newest_entries(entries: Iterable[Entry]) -> dict[str, Entry]:
    """One entry per run directory: the one written last."""
    best: dict[str, Entry] = {}
    for entry in entries:
        held = best.get(entry.run_dir)
        if held is None or (entry.indexed_at, entry.entry) > (held.indexed_at, held.entry):
            best[entry.run_dir] = entry
    return best


def _segment_entries(folders: Sequence[Folder]) -> tuple[list[Entry], bool]:
    """Every entry of the folders' segments, and whether a file vanished while they were read."""
    files = [path for folder in folders for path in folder.runs_files()]
    rows, read = read_segments(files)
    vanished = len(read) < len(files) and any(not path.exists() for path in files)
    found: list[Entry] = []
    for row in rows:
        try:
            entry = entry_of(row)
        except (ValueError, TypeError):
            continue  # a row a hand or another program wrote: its run.json is read instead
        if entry is not None:
            found.append(entry)
    return found, vanished


def read_entries(base: Path, names: Sequence[str]) -> tuple[dict[str, Entry], list[str]]:
    """The newest entry of each of the run directories ``names``, and those whose entry no
    segment holds yet (read from their own ``index.json``)."""
    found, vanished = _segment_entries(list_index(base))
    if vanished:  # a compaction merged segments between the listing and the reading
        found, _ = _segment_entries(list_index(base))
    entries = newest_entries(found)
    loose = []
    for name in names:
        if name not in entries:
            own = read_entry_file(base / name)
            entry = entry_of(own[0]) if own is not None else None
            if entry is not None:
                entries[name] = entry
                loose.append(name)
    return entries, loose
