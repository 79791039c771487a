"""``jobmeter report`` and ``compare``: what one run cost, and two runs side by side."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from jobmeter import store
from jobmeter._core.format import format_bytes
from jobmeter.cli._output import DIR_HELP, JSON_HELP, pick_run, print_json, store_errors
from jobmeter.cli._tables import compared, print_compared, print_records


def _shown(name: str, value: Any) -> str:
    """A figure in its unit, from its name."""
    if value is None:
        return "no GPU" if name == "peak_gpu_memory_bytes" else "-"
    if isinstance(value, str):
        return value
    if name.endswith("_bytes"):
        return format_bytes(value)
    if name.endswith("_seconds"):
        return f"{value:.2f} s"
    if name.startswith("cpu_utilization"):
        return f"{value:.2f} CPUs"
    return str(value)


def _git(git: Any) -> str:
    if not isinstance(git, dict) or not git.get("commit"):
        return "-"
    return str(git["commit"])[:12] + (" (with uncommitted changes)" if git.get("dirty") else "")


def report(
    run: str | None = typer.Argument(None, help="Run id or unique prefix."),
    latest: bool = typer.Option(False, "--latest", help="The newest run."),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What one run cost: time, CPU, memory, disk, GPU, processes."""
    with store_errors():
        result = store.report(store.resolve(pick_run(run, latest), directory))
    if as_json:
        print_json(result.to_json())
        return
    stored = result.run
    title = f"jobmeter report {stored.id} ({stored.name}, {stored.state})"
    table = Table(title=title, show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    f = result.figures
    rows = [
        ("start", stored.start_iso()),
        ("exit status", f"{_shown('exit', stored.record.get('exit_code'))} ({stored.state})"),
        ("wall time", _shown("wall_seconds", f["wall_seconds"])),
        ("CPU time", f"{_shown('_seconds', f['cpu_user_seconds'])} user, "
                     f"{_shown('_seconds', f['cpu_system_seconds'])} system"),
        ("CPUs busy", f"{_shown('cpu_utilization', f['cpu_utilization_mean'])} mean, "
                      f"{_shown('cpu_utilization', f['cpu_utilization_peak'])} peak, "
                      f"{_shown('cpu_utilization', f['cpu_utilization_p95'])} p95 of samples"),
        ("peak memory", f"{format_bytes(f['peak_memory_bytes'])} from {f['peak_memory_source']}"),
        ("  RSS / PSS sampled", f"{format_bytes(f['peak_rss_sampled_bytes'])} / "
                                f"{format_bytes(f['peak_pss_sampled_bytes'])}"),
        ("  largest process", format_bytes(f["peak_rss_single_process_bytes"])),
        ("  cgroup (with page cache)", format_bytes(f["peak_cgroup_bytes"])),
        ("disk read / written", f"{format_bytes(f['read_bytes'])} / "
                                 f"{format_bytes(f['written_bytes'])}"),
        ("peak GPU memory", _shown("peak_gpu_memory_bytes", f["peak_gpu_memory_bytes"])),
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
    with store_errors():
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
        print_json({"a": a.to_json(), "b": b.to_json(), "figures": figures,
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
        delta = "" if change is None else ("+" if change > 0 else "") + _shown(name, change)
        pct = "" if percent is None else f"{percent:+.1f} %"
        table.add_row(
            name, _shown(name, row["a"]), _shown(name, row["b"]),
            f"[{color}]{delta}[/]" if color else delta, f"[{color}]{pct}[/]" if color else pct,
        )  # fmt: skip
    console = Console()
    console.print(table)
    print_compared(console, operations, "operations")
    print_compared(console, queries, "queries")
