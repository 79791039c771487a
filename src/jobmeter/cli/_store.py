"""The run-store commands that manage runs: export, gc (docs/run-store.md).

``runs`` is in ``_runs``; ``report`` and ``compare`` are in ``_report``; ``advise`` in
``_advise``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from jobmeter import store
from jobmeter.cli._output import (
    DIR_HELP,
    JSON_HELP,
    LATEST_HELP,
    RUN_HELP,
    pick_run,
    print_json,
    store_errors,
)
from jobmeter.cli._table import Output

#: How many runs of each name ``gc`` keeps without --keep.
GC_KEEP = 20


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def export(
    run: str | None = typer.Argument(None, metavar="RUN", help=RUN_HELP + " Default: latest."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="DIR",
        help="Directory to write the Parquet files to (made if missing).",
    ),
    parquet: str | None = typer.Option(None, "--parquet", hidden=True),  # the old name of -o
    latest: bool = typer.Option(False, "--latest", help=LATEST_HELP),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a run as Parquet files.

    run.parquet (run.json, one row), usage.parquet (the samples) and the run's
    records (operations.parquet, queries.parquet, ...) in the -o directory.
    """
    target = output or parquet
    if target is None:
        print("jobmeter: export needs -o/--output DIR, the directory to write to", file=sys.stderr)
        raise typer.Exit(2)
    with store_errors():
        written = store.export_parquet(store.resolve(pick_run(run, latest), directory), target)
    if as_json:
        print_json(written)
        return
    out = Output()
    out.line(f"wrote {written['run']}", wrap=False)
    out.line(f"wrote {written['usage']} ({_count(written['samples'], 'sample')})", wrap=False)
    for kind, rows in written["records"].items():
        out.line(f"wrote {Path(target) / f'{kind}.parquet'} ({_count(rows, 'row')})", wrap=False)


def gc(
    keep: int = typer.Option(
        GC_KEEP,
        "--keep",
        min=0,
        metavar="N",
        help="How many of the newest runs of each name to keep.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete old runs, keeping the newest N of each name.

    A run still running is never deleted; --dry-run lists what would be.
    """
    before = len(store.list_runs(directory))
    deleted = store.gc(keep, directory, dry_run=dry_run)
    kept = before - len(deleted)
    if as_json:
        key = "would_delete" if dry_run else "deleted"
        print_json({"dry_run": dry_run, key: [run.id for run in deleted], "kept": kept})
        return
    verb = "would delete" if dry_run else "deleted"
    out = Output()
    for stored in deleted:
        out.line(f"{verb} {stored.id} ({stored.name}) {stored.directory}", wrap=False)
    kept_verb = "would keep" if dry_run else "kept"
    out.line(f"{verb} {len(deleted)} run(s); {kept_verb} {kept} (the newest {keep} of each name)")
