"""The run-store commands: runs, report, compare, advise, export, gc (docs/run-store.md)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from jobmeter import store
from jobmeter.cli._tables import compared, print_compared, print_records
from jobmeter.store._advise import BASIS

DIR_HELP = "Runs directory (default JOBMETER_RUN_DIR, else ./.jobmeter/runs)."
JSON_HELP = "Print JSON (stable keys, docs/run-store.md) instead of a table."
SKIPPED_STATES = ("running", "not_found", "not_executable")


def size(n: float | None) -> str:
    """Bytes in binary units."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def shown(name: str, value: Any) -> str:
    """A figure in its unit."""
    if value is None:
        return "no GPU" if name == "peak_gpu_memory_bytes" else "-"
    if isinstance(value, str):
        return value
    if name.endswith("_bytes"):
        return size(value)
    if name.endswith("_seconds"):
        return f"{value:.2f} s"
    if name.startswith("cpu_utilization"):
        return f"{value:.2f} CPUs"
    return str(value)


class _Stderr(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"jobmeter: warning: {record.getMessage()}", file=sys.stderr)


@contextmanager
def errors() -> Iterator[None]:
    """Store warnings on stderr, once; a StoreError is a message and exit status 2."""
    logger = logging.getLogger("jobmeter")
    handler = _Stderr(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    except store.StoreError as error:
        print(f"jobmeter: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    finally:
        logger.removeHandler(handler)


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


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
    with errors():
        rows = [_run_row(run) for run in found]
    if as_json:
        _emit(rows)
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
            run.state, size(row["peak_memory_bytes"]),
        )  # fmt: skip
    Console().print(table)


def pick(run: str | None, latest: bool) -> str:
    if run is None and not latest:
        print("jobmeter: give a run id (or a unique prefix), or --latest", file=sys.stderr)
        raise typer.Exit(2)
    return "latest" if run is None else run


def report(
    run: str | None = typer.Argument(None, help="Run id or unique prefix."),
    latest: bool = typer.Option(False, "--latest", help="The newest run."),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What one run cost: time, CPU, memory, disk, GPU, processes."""
    with errors():
        result = store.report(store.resolve(pick(run, latest), directory))
    if as_json:
        _emit(result.to_json())
        return
    stored = result.run
    title = f"jobmeter report {stored.id} ({stored.name}, {stored.state})"
    table = Table(title=title, show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    f = result.figures
    rows = [
        ("start", stored.start_iso()),
        ("exit status", f"{shown('exit', stored.record.get('exit_code'))} ({stored.state})"),
        ("wall time", shown("wall_seconds", f["wall_seconds"])),
        ("CPU time", f"{shown('_seconds', f['cpu_user_seconds'])} user, "
                     f"{shown('_seconds', f['cpu_system_seconds'])} system"),
        ("CPUs busy", f"{shown('cpu_utilization', f['cpu_utilization_mean'])} mean, "
                      f"{shown('cpu_utilization', f['cpu_utilization_peak'])} peak, "
                      f"{shown('cpu_utilization', f['cpu_utilization_p95'])} p95 of samples"),
        ("peak memory", f"{size(f['peak_memory_bytes'])} from {f['peak_memory_source']}"),
        ("  RSS / PSS sampled", f"{size(f['peak_rss_sampled_bytes'])} / "
                                f"{size(f['peak_pss_sampled_bytes'])}"),
        ("  largest process", size(f["peak_rss_single_process_bytes"])),
        ("  cgroup (with page cache)", size(f["peak_cgroup_bytes"])),
        ("disk read / written", f"{size(f['read_bytes'])} / {size(f['written_bytes'])}"),
        ("peak GPU memory", shown("peak_gpu_memory_bytes", f["peak_gpu_memory_bytes"])),
        ("processes / threads (peak)", f"{f['peak_processes']} / {f['peak_threads']}"),
        ("samples", f"{f['samples']} read, {result.skipped_lines} skipped"),
        ("figures from", "run.json summary" if result.source == "summary"
                         else "usage.jsonl samples (no summary: the run did not end)"),
        ("git commit", _git(stored.record.get("git"))),
        ("run directory", str(stored.directory)),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    print_records(console, result)


def _git(git: Any) -> str:
    if not isinstance(git, dict) or not git.get("commit"):
        return "-"
    return str(git["commit"])[:12] + (" (with uncommitted changes)" if git.get("dirty") else "")


def _change(a: Any, b: Any) -> tuple[float | None, float | None]:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None, None
    return b - a, ((b - a) / a * 100 if a else None)


def compare(
    run_a: str = typer.Argument(..., help="First run (id or unique prefix)."),
    run_b: str = typer.Argument(..., help="Second run (id or unique prefix)."),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Two runs side by side, with the change from the first to the second."""
    with errors():
        found = store.list_runs(directory)
        a = store.report(store.resolve(run_a, directory, found))
        b = store.report(store.resolve(run_b, directory, found))
    figures: dict[str, dict[str, Any]] = {}
    for name in store.FIGURES:
        change, percent = _change(a.figures[name], b.figures[name])
        figures[name] = {"a": a.figures[name], "b": b.figures[name],
                         "change": change, "change_percent": percent}  # fmt: skip
    operations = compared(a, b, "operations")
    queries = compared(a, b, "queries")
    if as_json:
        _emit({"a": a.to_json(), "b": b.to_json(), "figures": figures,
               "operations": operations, "queries": queries})  # fmt: skip
        return
    table = Table(title=f"jobmeter compare {a.run.id} → {b.run.id}")
    for column in ("figure", f"A {a.run.name}", f"B {b.run.name}", "change", "%"):
        table.add_column(column, justify="left" if column == "figure" else "right", no_wrap=True)
    for name, row in figures.items():
        if isinstance(row["a"], str) or isinstance(row["b"], str):
            continue  # peak_memory_source: in --json only
        change, percent = row["change"], row["change_percent"]
        color = "" if not change else ("red" if change > 0 else "green")
        delta = "" if change is None else ("+" if change > 0 else "") + shown(name, change)
        pct = "" if percent is None else f"{percent:+.1f} %"
        table.add_row(
            name, shown(name, row["a"]), shown(name, row["b"]),
            f"[{color}]{delta}[/]" if color else delta, f"[{color}]{pct}[/]" if color else pct,
        )  # fmt: skip
    console = Console()
    console.print(table)
    print_compared(console, operations, "operations")
    print_compared(console, queries, "queries")


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
    with errors():
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
        _emit(advice.to_json())
        return
    table = Table(title=f"jobmeter advise: p{percentile:g} of {len(matching)} run(s) "
                        f"+ {headroom:.0%} headroom")  # fmt: skip
    for column in ("resource", f"p{percentile:g} measured", "with headroom", "request"):
        table.add_column(column, justify="left" if column == "resource" else "right")
    table.add_row(
        "memory",
        size(advice.memory_bytes.observed),
        size(advice.memory_bytes.with_headroom),
        size(advice.memory_bytes.request),
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
        table.add_row("GPU memory", size(gpu.observed), size(gpu.with_headroom), size(gpu.request))
    console = Console()
    console.print(table)
    console.print(f"Based on runs: {', '.join(advice.runs)}")
    console.print(f"Advice {BASIS}.")


def export(
    run: str = typer.Argument(..., help="Run id or unique prefix, or latest."),
    parquet: str = typer.Option(
        ..., "--parquet", help="Directory to write run.parquet and usage.parquet to."
    ),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a run as Parquet: run.parquet, usage.parquet (the samples) and its records."""
    with errors():
        written = store.export_parquet(store.resolve(run, directory), parquet)
    if as_json:
        _emit(written)
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
        _emit({"dry_run": dry_run, "deleted": [run.id for run in deleted]})
        return
    verb = "would delete" if dry_run else "deleted"
    for stored in deleted:
        typer.echo(f"{verb} {stored.id} ({stored.name}) {stored.directory}")
    typer.echo(f"{verb} {len(deleted)} run(s), kept the newest {keep}")


def register(app: typer.Typer) -> None:
    """Add the run-store commands to the ``jobmeter`` CLI."""
    for command in (runs, report, compare, advise, export, gc):
        app.command()(command)
