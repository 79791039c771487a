"""``jobmeter run``'s summary table, printed on stderr when the command has ended."""

from __future__ import annotations

import sys

from jobmeter import store
from jobmeter._core.format import format_bytes
from jobmeter._rundata.metadata import read_record
from jobmeter._rundata.summary import RunResult, energy_figures
from jobmeter.cli._report import cost_text, energy_text
from jobmeter.cli._table import Column, Output, Table


def print_table(result: RunResult) -> None:
    """The run's figures as a table, then its directory whole on one line (to copy)."""
    out = Output(sys.stderr)
    out.table(_summary_table(result))
    out.line(f"run directory: {result.directory}", wrap=False)


def _summary_table(result: RunResult) -> Table:
    table = Table(f"jobmeter run {result.run_id}", (
        Column("figure", "left", style="bold"), Column("value", "left", fold=True, min_width=30),
    ), show_header=False)  # fmt: skip
    energy = energy_figures(result.energy_joules)
    rows = [
        ("exit status", f"{result.exit_code} ({result.status})"),
        ("wall time", f"{result.wall_seconds:.2f} s"),
        ("CPU time", f"{result.cpu_user_seconds:.2f} s user, "
                     f"{result.cpu_system_seconds:.2f} s system"),
        ("CPUs busy", f"{result.cpu_utilization_mean:.2f} mean, "
                      f"{result.cpu_utilization_peak:.2f} peak"),
        ("peak memory", f"{format_bytes(result.peak_memory_bytes)} "
                        f"from {result.peak_memory_source}"),
        ("  RSS / PSS sampled", f"{format_bytes(result.peak_rss_sampled_bytes)} / "
                                f"{format_bytes(result.peak_pss_sampled_bytes)}"),
        ("  RSS mean over time", format_bytes(result.average_rss_bytes)),
        ("  largest process", format_bytes(result.peak_rss_single_process_bytes)),
        ("  cgroup (+ page cache)", format_bytes(result.peak_cgroup_bytes)),
        ("peak GPU memory", "no GPU" if result.peak_gpu_memory_bytes is None
                            else format_bytes(result.peak_gpu_memory_bytes)),
        ("disk read / written", f"{format_bytes(result.read_bytes)} / "
                                 f"{format_bytes(result.written_bytes)}"),
        ("processes / threads", f"{result.peak_processes} / {result.peak_threads} (peak)"),
        ("energy", energy_text(energy)),
    ]  # fmt: skip
    prices = store.prices()
    if prices.any:
        figures = {"wall_seconds": result.wall_seconds, **energy}
        held = store.held_of(read_record(result.directory) or {})  # what run.json says it held
        rows.append(("cost", cost_text(store.cost_of(figures, held, prices))))
    rows.append(("samples", str(result.samples)))
    if result.signals_forwarded:
        rows.append(("signals forwarded", ", ".join(result.signals_forwarded)))
    for name, value in rows:
        table.add_row(name, value)
    return table
