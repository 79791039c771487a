"""Writing the store's index: the entry of a finished run, and compacting the index.

A finished run writes its entry into its own directory (``index_run``, from
the end of ``jobmeter run`` and ``jobmeter.Run``): one small file, no DuckDB
of its own, no file another host writes. A host that lists the store and
finds ``COMPACT_AFTER`` entries that no segment holds yet compacts them into
its own folder (``list_runs``); ``jobmeter gc`` compacts every host's folder
into its own (``compact_index``). A failure is one warning: the runs are
then listed from their entries or their run.json, as before.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from jobmeter._rundata.layout import runs_root, warn_once, write_atomic
from jobmeter.store._figures import run_figures
from jobmeter.store._index.compact import Compaction, compact
from jobmeter.store._index.read import list_index
from jobmeter.store._index.schema import (
    ENTRY_FILE,
    FORMAT,
    INDEX_DIR,
    new_token,
    operation_rows,
    run_row,
    writer_name,
)
from jobmeter.store._liveness import Liveness
from jobmeter.store._stored import StoredRun, ended, load_run
from jobmeter.store._summary import summarize

_log = logging.getLogger("jobmeter")

#: Entries that no segment holds yet which make a listing compact them.
COMPACT_AFTER: Final = 16
# A store this host cannot write: it reads the entries where they are, quietly.
_READ_ONLY: Final = (errno.EACCES, errno.EPERM, errno.EROFS)


def entry_document(run: StoredRun, writer: str, *, figures: bool = False) -> dict[str, Any]:
    """The entry of one finished run: its runs row and its operations rows.

    Without ``figures`` its samples are not read (their p95 would cost a run
    DuckDB's import, 0.2 s): the compaction that puts the entry into a segment
    reads them, for many runs at once.
    """
    entry = new_token()
    if not figures:
        records = summarize(run.directory)  # no DuckDB for a run without records
        return {"format": FORMAT, "run": run_row(run, None, entry, writer, records, "summary"),
                "operations": operation_rows(run, entry, records)}  # fmt: skip
    found = run_figures(run)
    return {
        "format": FORMAT,
        "run": run_row(run, found.figures, entry, writer, found.records, found.source),
        "operations": operation_rows(run, entry, found.records),
    }


def write_entry(directory: Path, document: dict[str, Any]) -> Path:
    """Write a run's entry into its directory (whole or not at all); its path."""
    path = directory / ENTRY_FILE
    write_atomic(path, json.dumps(document, separators=(",", ":")) + "\n")
    return path


def index_run(directory: str | Path) -> Path | None:
    """Write the entry of one finished run for its store's index; the file written.

    Called at the end of a run, by the process that recorded it: the run's
    run.json and its operations and query shapes, as ``<run dir>/index.json``
    (its figures are completed from its samples when a compaction takes it). A run that has
    not ended is left out (it is listed from run.json). Never raises: a
    failure is one warning, and the run is listed from its run.json.
    """
    directory = Path(directory)
    try:
        run = load_run(directory, Liveness())
        if run is None or not ended(run.record):
            return None
        return write_entry(directory, entry_document(run, writer_name()))
    except Exception as error:  # telemetry never stops the job: run.json still lists the run
        warn_once(directory, f"cannot write the run's index entry in {directory}: {error}; "
                             "the run is listed from its run.json")  # fmt: skip
        return None


def compact_index(
    root: str | Path | None = None, *, every_host: bool = False, gone: Iterable[str] = ()
) -> Compaction:
    """Compact the store's index into one new segment in this host's folder.

    It merges the entries that no segment holds yet and this host's segments
    (``every_host``: every host's), leaving out runs whose directory is gone
    (``gone`` names those just deleted: left out however young their entries).
    Safe while other hosts write and compact: no file is written twice, and a
    segment merged is removed only once the new one is whole.

    Raises:
        OSError: the index cannot be written.
    """
    base = runs_root(root)
    into = base / INDEX_DIR / writer_name()
    folders = [folder.path for folder in list_index(base)] if every_host else []
    import duckdb

    try:
        return compact(base, sorted({into, *folders}), into, gone)
    except duckdb.Error as error:
        raise OSError(f"cannot compact the index in {into}: {error}") from error


def compact_quietly(base: Path) -> None:
    """A listing's compaction: a store this host may not write is read as it is."""
    try:
        compact_index(base)
    except OSError as error:
        cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
        if cause.errno not in _READ_ONLY:
            warn_once(base / INDEX_DIR, f"{error}; the runs are listed all the same")
