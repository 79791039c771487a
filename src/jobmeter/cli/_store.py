"""The run-store commands that list and manage runs: runs, advise, export, gc (docs/run-store.md).

``report`` and ``compare`` are in ``_report``.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from jobmeter import store
from jobmeter._core.format import format_bytes
from jobmeter.cli._output import DIR_HELP, JSON_HELP, print_json, store_errors

SKIPPED_STATES = ("running", "not_started")


def _run_row(run: store.StoredRun) -> dict[str, Any]:
    figures = run.summary
    if figures is None:  # running or incomplete: the figures so far, from the samples
        figures = store.report(run).figures
        duration = figures.get("wall_seconds")
    else:
        duration = run.end - run.start if run.end is not None and run.start is not None else None
    return {
        "id": run.id,
        "name": run.name,
        "start": run.start_iso(),
        "duration_seconds": duration,
        "status": run.state,
        "exit_code": run.record.get("exit_code"),
        "peak_memory_bytes": figures.get("peak_memory_bytes"),
    }


def runs(
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the runs in the store, oldest first."""
    found = store.list_runs(directory)
    if not found:
        print(f"jobmeter: {store.EmptyStoreError(store.runs_root(directory))}", file=sys.stderr)
    with store_errors():
        rows = [_run_row(run) for run in found]
    if as_json:
        print_json(rows)
        return
    if not found:
        return
    table = Table(title=f"jobmeter runs in {store.runs_root(directory)}")
    for column in ("id", "name", "start", "duration", "status", "peak memory"):
        right = column in ("duration", "peak memory")
        table.add_column(column, justify="right" if right else "left", no_wrap=right is False)
    for run, row in zip(found, rows, strict=True):
        duration = row["duration_seconds"]
        table.add_row(
            run.id, run.name, row["start"], "-" if duration is None else f"{duration:.1f} s",
            run.state, format_bytes(row["peak_memory_bytes"]),
        )  # fmt: skip
    Console().print(table)


def advise(
    name: str | None = typer.Option(None, "--name", help="Only runs of this name."),
    last: int | None = typer.Option(None, "--last", min=1, help="Only the newest N matching runs."),
    percentile: float = typer.Option(
        95.0, "--percentile", min=0, max=100, help="Percentile over the runs."
    ),
    headroom: float = typer.Option(0.2, "--headroom", min=0, help="Added on top (0.2 = 20 %)."),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Memory, CPUs and GPU memory to request, from the measured peaks of past runs."""
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
    table = Table(title=f"jobmeter advise: p{percentile:g} of {len(matching)} run(s) "
                        f"+ {headroom:.0%} headroom")  # fmt: skip
    for column in ("resource", f"p{percentile:g} measured", "with headroom", "request"):
        table.add_column(column, justify="left" if column == "resource" else "right")
    memory = advice.memory_bytes
    table.add_row(
        "memory",
        format_bytes(memory.observed),
        format_bytes(memory.with_headroom),
        format_bytes(memory.request),
    )
    table.add_row(
        "CPUs",
        f"{advice.cpus.observed:.2f}",
        f"{advice.cpus.with_headroom:.2f}",
        f"{advice.cpus.request:g}",
    )
    gpu = advice.gpu_memory_bytes
    if gpu is None:
        table.add_row("GPU memory", "no GPU", "", "")
    else:
        table.add_row(
            "GPU memory",
            format_bytes(gpu.observed),
            format_bytes(gpu.with_headroom),
            format_bytes(gpu.request),
        )
    console = Console()
    console.print(table)
    console.print(f"Based on runs: {', '.join(advice.runs)}")
    console.print(f"Advice {advice.basis}.")


def export(
    run: str = typer.Argument(..., help="Run id or unique prefix, or latest."),
    parquet: str = typer.Option(
        ..., "--parquet", help="Directory to write run.parquet and usage.parquet to."
    ),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a run as Parquet: run.parquet, usage.parquet (the samples) and its records."""
    with store_errors():
        written = store.export_parquet(store.resolve(run, directory), parquet)
    if as_json:
        print_json(written)
    else:
        records = ", ".join(f"{kind}.parquet ({rows} rows)" for kind, rows in
                            written["records"].items())  # fmt: skip
        typer.echo(f"wrote {written['run']} and {written['usage']} ({written['samples']} samples)"
                   + (f", {records}" if records else ""))  # fmt: skip


def gc(
    keep: int = typer.Option(..., "--keep", min=0, help="How many of the newest runs to keep."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be deleted."),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete all runs but the newest N (never one still running)."""
    deleted = store.gc(keep, directory, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "deleted": [run.id for run in deleted]})
        return
    verb = "would delete" if dry_run else "deleted"
    for stored in deleted:
        typer.echo(f"{verb} {stored.id} ({stored.name}) {stored.directory}")
    typer.echo(f"{verb} {len(deleted)} run(s), kept the newest {keep}")
