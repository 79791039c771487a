"""``jobmeter advise``: what to request for the next run, and what each part of the job takes."""

from __future__ import annotations

from typing import Any

import typer

from jobmeter import store
from jobmeter._core.format import format_bytes, format_joules
from jobmeter.cli._output import DIR_HELP, JSON_HELP, print_json, store_errors
from jobmeter.cli._table import Column, Output, Table
from jobmeter.cli._tables import seconds

SKIPPED_STATES = ("running", "not_started")
#: Operations and query shapes shown in each table; --json has them all.
PARTS_SHOWN = 10
#: Runs named one by one in the last line; more are given as a range.
RUNS_NAMED = 5


def _request(value: float) -> str:
    """A request exactly, as it would be written: ``3 GiB``, else ``2304 MiB``."""
    whole = int(value)
    if whole % 2**30 == 0:
        return f"{whole // 2**30} GiB"
    return f"{whole // 2**20} MiB" if whole % 2**20 == 0 else format_bytes(whole)


def _saving(now: float, advised: float) -> str:
    if now <= 0:
        return "no saving to compute"
    change = (advised - now) / now
    return f"{-change:.0%} less" if change < 0 else f"{change:.0%} more"


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
    """Memory and CPUs to request, from past runs; and what each operation takes.

    Memory, CPUs and GPU memory: a percentile of the measured peaks of past runs,
    with headroom, rounded up to a request, beside what the newest run held (its
    cgroup's or Slurm's limits, else the machine). Then each operation and query
    shape across the runs: p95 time, peak memory and energy.
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
        parts = store.advise_operations(matching, percentile, headroom)
    held = store.held_of(matching[-1].record)
    if as_json:
        print_json({**advice.to_json(), "held_now": held,
                    "operations": [part.to_json() for part in parts]})  # fmt: skip
        return
    out = Output()
    out.table(_resources(advice, held, percentile, headroom, len(matching)))
    _held_line(out, advice, held)
    now, advised = advice.cost_per_run, advice.cost_per_run_advised
    if now is not None and advised is not None:
        money = store.Prices(currency=advice.currency).money
        out.line(f"This job cost {money(now)} a run; at the advised size it would cost "
                 f"{money(advised)} ({_saving(now, advised)}).")  # fmt: skip
    out.line()
    _parts(out, parts, percentile)
    out.line(_based_on(advice.runs))
    out.line(f"Advice {advice.basis}.")


def _based_on(runs: list[str]) -> str:
    """The runs advised from: each by id when few, else the first and the last."""
    if len(runs) <= RUNS_NAMED:
        return f"Based on runs: {', '.join(runs)}"
    return f"Based on {len(runs)} runs, {runs[0]} to {runs[-1]} (--json lists them)"


def _calls(value: float) -> str:
    """Calls per run: whole, else to one decimal (3.49 calls are 3.5)."""
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _held_text(held: dict[str, Any], kind: str) -> str:
    source = held.get(f"{kind}_from") or "machine"
    if kind == "memory":
        value = held.get("memory_bytes")
        return "-" if value is None else f"{format_bytes(value)} ({source})"
    value = held.get("cpus")
    return "-" if value is None else f"{value:g} ({source})"


def _resources(
    advice: store.Advice, held: dict[str, Any], percentile: float, headroom: float, runs: int
) -> Table:
    table = Table(f"jobmeter advise: p{percentile:g} of {runs} run(s) + {headroom:.0%} headroom", (
        Column("resource", "left"), Column(f"p{percentile:g} measured"),
        Column("with headroom"), Column("request"), Column("held now", drop=1),
    ))  # fmt: skip
    memory = advice.memory_bytes
    table.add_row("memory", format_bytes(memory.observed), format_bytes(memory.with_headroom),
                  _request(memory.request), _held_text(held, "memory"))  # fmt: skip
    cpus = advice.cpus
    table.add_row("CPUs", f"{cpus.observed:.2f}", f"{cpus.with_headroom:.2f}", f"{cpus.request:g}",
                  _held_text(held, "cpus"))  # fmt: skip
    gpu = advice.gpu_memory_bytes
    if gpu is None:
        table.add_row("GPU memory", "no GPU", "-", "-", "-")
    else:
        table.add_row("GPU memory", format_bytes(gpu.observed), format_bytes(gpu.with_headroom),
                      _request(gpu.request), "-")  # fmt: skip
    energy = advice.energy_joules
    shown = "not metered" if energy is None else format_joules(energy.observed)
    table.add_row("energy per run", shown, "-", "-", "-")
    return table


def _held_line(out: Output, advice: store.Advice, held: dict[str, Any]) -> None:
    """The request beside what the newest run held, where that was a limit, not the machine."""
    changes = []
    memory, cpus = held.get("memory_bytes"), held.get("cpus")
    if held.get("memory_from") in ("cgroup", "slurm") and memory:
        less = memory - advice.memory_bytes.request
        word = "less" if less >= 0 else "more"
        changes.append(f"{format_bytes(abs(less))} ({abs(less) / memory:.0%}) {word} memory")
    if held.get("cpus_from") in ("cgroup", "slurm") and cpus:
        less = cpus - advice.cpus.request
        word = "fewer" if less >= 0 else "more"
        changes.append(f"{abs(less):g} ({abs(less) / cpus:.0%}) {word} CPUs")
    if changes:
        out.line(f"The advised request holds {' and '.join(changes)} than the newest run held.")
    else:
        out.line("The newest run had no cgroup or Slurm limit: it could use the whole machine.")


def _parts(out: Output, parts: list[store.PartAdvice], percentile: float) -> None:
    operations = [p for p in parts if p.kind == "operation"]
    queries = [p for p in parts if p.kind == "query"]
    p = f"p{percentile:g}"
    if operations:
        table = Table(f"by operation ({p} over the runs that have it)", (
            Column("operation", "left", fold=True), Column("runs"), Column("calls/run", drop=2),
            Column(f"{p} time"), Column(f"{p} peak mem"), Column("request"),
            Column("energy/run", drop=1),
        ))  # fmt: skip
        for part in operations[:PARTS_SHOWN]:
            memory = part.peak_memory_bytes
            table.add_row(
                part.label, str(part.runs), _calls(part.calls_per_run),
                seconds(part.duration_p95_seconds),
                "-" if memory is None else format_bytes(memory.observed),
                "-" if memory is None else _request(memory.request),
                format_joules(part.energy_per_run_joules),
            )  # fmt: skip
        _more(table, len(operations), "operations")
        out.table(table)
    if queries:
        table = Table(f"by query shape ({p} over the runs that have it)", (
            Column("query", "left", fold=True), Column("database", "left", drop=2),
            Column("runs"), Column("calls/run", drop=1), Column(f"{p} time"),
        ))  # fmt: skip
        for part in queries[:PARTS_SHOWN]:
            table.add_row(part.label, part.namespace or "-", str(part.runs),
                          _calls(part.calls_per_run),
                          seconds(part.duration_p95_seconds))  # fmt: skip
        _more(table, len(queries), "query shapes")
        out.table(table)


def _more(table: Table, total: int, noun: str) -> None:
    if total > PARTS_SHOWN:
        table.notes.append(f"({total - PARTS_SHOWN} more {noun} in --json)")
