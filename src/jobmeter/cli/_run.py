"""``jobmeter run -- CMD [ARGS...]``: run a command, measure it, and print its summary."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer

from jobmeter._core.format import format_bytes
from jobmeter._rundata.summary import NOT_STARTED
from jobmeter.cli._output import DIR_HELP
from jobmeter.cli._table import Column, Output, Table

if TYPE_CHECKING:
    from jobmeter.run import RunResult

#: How ``run`` is registered: everything after the options is the command's own.
RUN_SETTINGS: dict[str, Any] = {
    # The first word that is not one of run's options starts the command: its own options
    # (`python -u x.py`) are its own, and an unknown option before it is a usage error.
    "context_settings": {"allow_extra_args": True, "allow_interspersed_args": False},
    "no_args_is_help": True,
}


def _summary_table(result: RunResult) -> Table:
    table = Table(f"jobmeter run {result.run_id}", (
        Column("figure", "left", style="bold"), Column("value", "left", fold=True, min_width=30),
    ), show_header=False)  # fmt: skip
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
        ("  largest process", format_bytes(result.peak_rss_single_process_bytes)),
        ("  cgroup (+ page cache)", format_bytes(result.peak_cgroup_bytes)),
        ("peak GPU memory", "no GPU" if result.peak_gpu_memory_bytes is None
                            else format_bytes(result.peak_gpu_memory_bytes)),
        ("disk read / written", f"{format_bytes(result.read_bytes)} / "
                                 f"{format_bytes(result.written_bytes)}"),
        ("processes / threads", f"{result.peak_processes} / {result.peak_threads} (peak)"),
        ("samples", str(result.samples)),
    ]  # fmt: skip
    if result.signals_forwarded:
        rows.append(("signals forwarded", ", ".join(result.signals_forwarded)))
    for name, value in rows:
        table.add_row(name, value)
    return table


def run(
    command: list[str] = typer.Argument(..., help="The command to run, after --."),
    interval: float = typer.Option(
        1.0,
        "--interval",
        "-i",
        min=0.05,
        metavar="SECONDS",
        help="Seconds between samples (0.05 or more).",
    ),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    output: str | None = typer.Option(None, "--output", "-o", hidden=True),  # the old --dir
    capture: bool = typer.Option(
        True, "--capture/--no-capture", help="Also keep stdout and stderr in the run directory."
    ),
    record_args: bool = typer.Option(
        False,
        "--record-args",
        help="Store the full command line (off: program and argument count only).",
    ),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="A name for the run."),
    kill_grace: float = typer.Option(
        10.0,
        "--kill-grace",
        min=0.0,
        metavar="SECONDS",
        help="Seconds between a forwarded SIGTERM and SIGKILL to what is left of the command.",
    ),
    metrics: bool = typer.Option(
        True,
        "--metrics/--no-metrics",
        help="Publish the run's figures while it runs through the OTEL_* exporters "
        "(off: no endpoint of the wrapper's own, e.g. when the command serves :8000).",
    ),
    comet: bool = typer.Option(
        False,
        "--comet",
        help="Log the run to Comet when it ends (COMET_API_KEY, COMET_PROJECT_NAME, "
        "COMET_WORKSPACE; offline when COMET_OFFLINE_DIRECTORY is set).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run a command and measure its process tree.

    jobmeter run [OPTIONS] -- CMD [ARGS...]: the options go before --.
    """
    # Here, not at the top: `jobmeter report` and the other commands start faster.
    from jobmeter import run as runs

    def print_summary(result: RunResult) -> None:
        if result.status == NOT_STARTED:
            return  # its one line is on stderr already; a table of zeros would say nothing
        if as_json:
            print(json.dumps(result.to_json(), indent=2, sort_keys=True), file=sys.stderr)
        elif not quiet:
            out = Output(sys.stderr)
            out.table(_summary_table(result))
            out.line(f"run directory: {result.directory}", wrap=False)  # whole on one line, to copy

    if output is not None:
        print("jobmeter: warning: run -o/--output is now --dir (the runs directory)",
              file=sys.stderr)  # fmt: skip
    options = runs.RunOptions(interval=interval, output=directory or output, capture=capture,
                              record_args=record_args, name=name,
                              kill_grace=kill_grace)  # fmt: skip
    result = runs.execute(command, options, metrics=metrics, comet=comet, on_end=print_summary)
    raise typer.Exit(result.exit_code)
