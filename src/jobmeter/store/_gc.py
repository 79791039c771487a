"""Deleting old runs: ``jobmeter gc``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from jobmeter.store._index.write import compact_index
from jobmeter.store._runs import StoredRun, list_runs, start_order

_log = logging.getLogger("jobmeter")


def gc(keep: int, root: str | Path | None = None, dry_run: bool = False) -> list[StoredRun]:
    """Delete all but the newest ``keep`` runs of each name, never a live one; those deleted.

    Runs are grouped by :attr:`StoredRun.name` (the run's name, else its program), so a
    nightly job's history is not pushed out by many runs of another. Then the
    store's index is compacted, every host's folder into this host's, without
    the runs deleted (here or by hand); a failure there is one warning.
    """
    if keep < 0:
        raise ValueError("keep must be 0 or more")
    by_name: dict[str, list[StoredRun]] = {}
    for run in list_runs(root):
        by_name.setdefault(run.name, []).append(run)
    doomed = [
        run
        for runs in by_name.values()
        for run in runs[: max(len(runs) - keep, 0)]
        if run.state != "running"
    ]
    doomed.sort(key=start_order)
    if not dry_run:
        for run in doomed:
            shutil.rmtree(run.directory, ignore_errors=True)
        try:
            compact_index(root, every_host=True, gone=[run.directory.name for run in doomed])
        except OSError as error:
            _log.warning("jobmeter: %s; the runs are listed all the same", error)
    return doomed
