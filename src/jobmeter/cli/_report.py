"""``jobmeter report`` and ``compare``: what one run cost, and two runs side by side."""

from __future__ import annotations

from typing import Any

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
from jobmeter.cli._table import Column, Output, Styled, Table
from jobmeter.cli._tables import compared, print_compared, print_processes, print_records

#: What ``compare`` calls each figure of ``store.FIGURES`` (--json keeps the keys).
FIGURE_LABELS = {
    "wall_seconds": "wall time",
    "cpu_user_seconds": "CPU user",
    "cpu_system_seconds": "CPU system",
    "cpu_utilization_mean": "CPUs busy, mean",
    "cpu_utilization_peak": "CPUs busy, peak",
    "cpu_utilization_p95": "CPUs busy, p95",
    "peak_memory_bytes": "peak memory",
    "peak_rss_sampled_bytes": "RSS sampled, peak",
    "average_rss_bytes": "RSS sampled, mean",
    "peak_pss_sampled_bytes": "PSS sampled, peak",
    "peak_rss_single_process_bytes": "largest process",
    "peak_cgroup_bytes": "cgroup (+ page cache)",
    "read_bytes": "disk read",
    "written_bytes": "disk written",
    "peak_gpu_memory_bytes": "peak GPU memory",
    "peak_processes": "processes, peak",
    "peak_threads": "threads, peak",
    "energy_total_joules": "energy",
    "energy_cpu_joules": "  CPU energy",
    "energy_dram_joules": "  DRAM energy",
    "energy_gpu_joules": "  GPU energy",
    "samples": "samples",
}
#: What a run without energy counters shows.
NOT_METERED = "not metered (no readable RAPL or GPU energy counter)"


def _shown(name: str, value: Any) -> str:
    """A figure in its unit, from its name."""
    if value is None:
        return "no GPU" if name == "peak_gpu_memory_bytes" else "-"
    if isinstance(value, str):
        return value
    if name.endswith("_bytes"):
        return format_bytes(value)
    if name.endswith("_joules"):
        return format_joules(value)
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
    run: str | None = typer.Argument(None, metavar="RUN", help=RUN_HELP + " Default: latest."),
    latest: bool = typer.Option(False, "--latest", help=LATEST_HELP),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What one run cost: time, CPU, memory, disk, GPU, processes."""
    with store_errors():
        result = store.report(store.resolve(pick_run(run, latest), directory))
    if as_json:
        print_json(result.to_json())
        return
    stored = result.run
    table = Table(f"jobmeter report {stored.id} ({stored.name}, {stored.state})",
                  (Column("figure", "left", style="bold"), Column("value", "left", fold=True,
                                                                  min_width=30)),
                  show_header=False)  # fmt: skip
    f = result.figures
    rows = [
        ("start", stored.start_iso()),
        ("exit status", f"{_shown('exit', stored.record.get('exit_code'))} ({stored.state})"),
        ("wall time", _shown("wall_seconds", f["wall_seconds"])),
        ("CPU time", f"{_shown('_seconds', f['cpu_user_seconds'])} user, "
                     f"{_shown('_seconds', f['cpu_system_seconds'])} system"),
        ("CPUs busy", f"{_shown('cpu_utilization', f['cpu_utilization_mean'])} mean, "
                      f"{_shown('cpu_utilization', f['cpu_utilization_peak'])} peak, "
                      f"{_shown('cpu_utilization', f['cpu_utilization_p95'])} p95"),
        ("peak memory", f"{format_bytes(f['peak_memory_bytes'])} from {f['peak_memory_source']}"),
        ("  RSS / PSS sampled", f"{format_bytes(f['peak_rss_sampled_bytes'])} / "
                                f"{format_bytes(f['peak_pss_sampled_bytes'])}"),
        ("  RSS mean over time", format_bytes(f["average_rss_bytes"])),
        ("  largest process", format_bytes(f["peak_rss_single_process_bytes"])),
        ("  cgroup (+ page cache)", format_bytes(f["peak_cgroup_bytes"])),
        ("disk read / written", f"{format_bytes(f['read_bytes'])} / "
                                 f"{format_bytes(f['written_bytes'])}"),
        ("peak GPU memory", _shown("peak_gpu_memory_bytes", f["peak_gpu_memory_bytes"])),
        ("processes / threads", f"{f['peak_processes']} / {f['peak_threads']} (peak)"),
        ("energy", energy_text(f)),
        *([] if result.cost is None else [("cost", cost_text(result.cost))]),
        ("samples", f"{f['samples']} read, {result.skipped_lines} skipped"),
        ("figures from", "run.json summary" if result.source == "summary"
                         else "usage.jsonl samples (the run did not end)"),
        ("git commit", _git(stored.record.get("git"))),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    out = Output()
    out.table(table)
    out.line(f"run directory: {stored.directory}", wrap=False)  # whole on one line, to copy
    out.line()
    print_processes(out, result)
    print_records(out, result)


def energy_text(figures: dict[str, Any]) -> str:
    """``12.3 kJ (CPU 11 kJ, DRAM 1.3 kJ)``, or why there is none."""
    total = figures.get("energy_total_joules")
    if total is None:
        return NOT_METERED
    parts = [f"{label} {format_joules(figures[f'energy_{key}_joules'])}"
             for key, label in (("cpu", "CPU"), ("dram", "DRAM"), ("gpu", "GPU"))
             if figures.get(f"energy_{key}_joules") is not None]  # fmt: skip
    return f"{format_joules(total)} ({', '.join(parts)}), the machine's"


def cost_text(cost: store.Cost | None) -> str:
    """``$0.42 (energy $0.01, 4 CPUs $0.30, ...)``, or how to get one."""
    if cost is None:
        return "no prices set (JOBMETER_PRICE_PER_KWH, _PER_CPU_HOUR, _PER_GPU_HOUR, _PER_GB_HOUR)"
    money = store.Prices(currency=cost.currency).money
    parts = [
        (cost.energy, f"energy {'' if cost.kwh is None else f'{cost.kwh:.3g} kWh '}"),
        (cost.cpu, f"{cost.cpus:g} CPUs "),
        (cost.gpu, f"{cost.gpus} GPUs "),
        (cost.memory, f"{format_bytes(cost.memory_bytes)} "),
    ]
    shown = [label + money(part) for part, label in parts if part is not None]
    return f"{money(cost.total)} ({', '.join(shown)})" if shown else money(cost.total)


def _change(a: Any, b: Any) -> tuple[float | None, float | None]:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None, None
    return b - a, ((b - a) / a * 100 if a else None)


def compare(
    run_a: str = typer.Argument(..., metavar="RUN_A", help="The first run (A). " + RUN_HELP),
    run_b: str = typer.Argument(
        ..., metavar="RUN_B", help="The second run (B), compared with A. " + RUN_HELP
    ),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Two runs side by side, with the change.

    The figures of RUN_A and RUN_B, the change from A to B, and their operations and
    DuckDB queries matched by name.
    """
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
    cost_a, cost_b = (None if r.cost is None else r.cost.total for r in (a, b))
    cost_change, cost_percent = _change(cost_a, cost_b)
    if as_json:
        cost = {"a": cost_a, "b": cost_b, "change": cost_change, "change_percent": cost_percent}
        print_json({"a": a.to_json(), "b": b.to_json(), "figures": figures, "cost": cost,
                    "operations": operations, "queries": queries})  # fmt: skip
        return
    out = Output()
    out.line(f"A: {a.run.id} ({a.run.name}, {a.run.state})")
    out.line(f"B: {b.run.id} ({b.run.name}, {b.run.state})")
    table = Table("jobmeter compare A → B", (
        Column("figure", "left", fold=True, min_width=14), Column("A"), Column("B"),
        Column("change"), Column("%"),
    ))  # fmt: skip
    for name, row in figures.items():
        if isinstance(row["a"], str) or isinstance(row["b"], str):
            continue  # peak_memory_source: in --json only
        change, percent = row["change"], row["change_percent"]
        color = "" if not change else ("red" if change > 0 else "green")
        delta = "" if change is None else ("+" if change > 0 else "") + _shown(name, change)
        pct = "" if percent is None else f"{percent:+.1f} %"
        table.add_row(FIGURE_LABELS.get(name, name), _shown(name, row["a"]),
                      _shown(name, row["b"]), Styled(delta, color), Styled(pct, color))  # fmt: skip
    if a.cost is not None and b.cost is not None:
        money = store.Prices(currency=a.cost.currency).money
        color = "" if not cost_change else ("red" if cost_change > 0 else "green")
        delta = (
            ""
            if cost_change is None
            else ("+" if cost_change > 0 else "-") + money(abs(cost_change))
        )
        pct = "" if cost_percent is None else f"{cost_percent:+.1f} %"
        table.add_row("cost", money(a.cost.total), money(b.cost.total), Styled(delta, color),
                      Styled(pct, color))  # fmt: skip
    out.table(table)
    print_compared(out, operations, "operations")
    print_compared(out, queries, "queries")
