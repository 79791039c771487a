"""The run-store commands that manage runs: advise, export, gc (docs/run-store.md).

``runs`` is in ``_runs``; ``report`` and ``compare`` are in ``_report``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from jobmeter import store
from jobmeter._core.format import format_bytes, format_joules
from jobmeter.cli._output import (
    DIR_HELP,
    JSON_HELP,
    LATEST_HELP,
    RUN_HELP,
    pick_run,
    print_json,
    store_errors,
)
from jobmeter.cli._table import Column, Output, Table

SKIPPED_STATES = ("running", "not_started")
#: How many runs of each name ``gc`` keeps without --keep.
GC_KEEP = 20


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _request(value: float) -> str:
    """A request exactly, as it would be written: ``3 GiB``, else ``2304 MiB``."""
    whole = int(value)
    if whole % 2**30 == 0:
        return f"{whole // 2**30} GiB"
    return f"{whole // 2**20} MiB" if whole % 2**20 == 0 else format_bytes(whole)


def advise(
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="Only runs of this name."),
    last: int | None = typer.Option(
        None, "--last", min=1, metavar="N", help="Only the newest N matching runs."
    ),
    percentile: float = typer.Option(
        95.0, "--percentile", min=0, max=100, metavar="P", help="Percentile over the runs."
    ),
    headroom: float = typer.Option(
        0.2, "--headroom", min=0, metavar="FRACTION", help="Added on top (0.2 = 20 %)."
    ),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Memory and CPUs to request, from past runs.

    Memory, CPUs and GPU memory: a percentile of the measured peaks of past runs,
    with headroom, rounded up to a request.
    """
    with store_errors():
        found = store.list_runs(directory)
        if not found:
            raise store.EmptyStoreError(store.runs_root(directory))
        matching = [r for r in found if r.state not in SKIPPED_STATES and name in (None, r.name)]
        if last is not None:
            matching = matching[-last:]
        if not matching:
            raise store.StoreError(f"no finished run named {name!r} to advise from" if name
                                   else "no finished run to advise from")  # fmt: skip
        advice = store.advise(matching, percentile, headroom)
    if as_json:
        print_json(advice.to_json())
        return
    table = Table(f"jobmeter advise: p{percentile:g} of {len(matching)} run(s) "
                  f"+ {headroom:.0%} headroom", (
        Column("resource", "left"), Column(f"p{percentile:g} measured"),
        Column("with headroom"), Column("request"),
    ))  # fmt: skip
    memory = advice.memory_bytes
    table.add_row("memory", format_bytes(memory.observed), format_bytes(memory.with_headroom),
                  _request(memory.request))  # fmt: skip
    cpus = advice.cpus
    table.add_row("CPUs", f"{cpus.observed:.2f}", f"{cpus.with_headroom:.2f}", f"{cpus.request:g}")
    gpu = advice.gpu_memory_bytes
    if gpu is None:
        table.add_row("GPU memory", "no GPU", "-", "-")
    else:
        table.add_row("GPU memory", format_bytes(gpu.observed), format_bytes(gpu.with_headroom),
                      _request(gpu.request))  # fmt: skip
    energy = advice.energy_joules
    if energy is None:
        table.add_row("energy per run", "not metered", "-", "-")
    else:
        table.add_row("energy per run", format_joules(energy.observed), "-", "-")
    out = Output()
    out.table(table)
    now, advised = advice.cost_per_run, advice.cost_per_run_advised
    if now is not None and advised is not None:
        money = store.Prices(currency=advice.currency).money
        out.line(f"This job cost {money(now)} a run; at the advised size it would cost "
                 f"{money(advised)} ({_saving(now, advised)}).")  # fmt: skip
    out.line(f"Based on runs: {', '.join(advice.runs)}")
    out.line(f"Advice {advice.basis}.")


def _saving(now: float, advised: float) -> str:
    if now <= 0:
        return "no saving to compute"
    change = (advised - now) / now
    return f"{-change:.0%} less" if change < 0 else f"{change:.0%} more"


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
