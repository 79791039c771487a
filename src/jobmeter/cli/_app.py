"""The ``jobmeter`` command line (typer + rich)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from jobmeter._core.errors import ConfigurationError
from jobmeter._version import __version__
from jobmeter.cli._grafana import register as register_grafana
from jobmeter.cli._plot import plot
from jobmeter.cli._store import register as register_store

if TYPE_CHECKING:
    from jobmeter._core.sdk import Telemetry
    from jobmeter.run import RunResult

app = typer.Typer(
    name="jobmeter",
    help="Measure what data and compute jobs cost, as OpenTelemetry metrics.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def info(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print what machine this is: host, OS, CPU, memory and GPU."""
    from jobmeter._core.machine import machine_info

    facts = machine_info()
    if as_json:
        typer.echo(json.dumps(facts, indent=2, sort_keys=True))
        return
    table = Table(title=f"jobmeter {__version__}: this machine", show_header=False)
    table.add_column("attribute", style="bold")
    table.add_column("value")
    for key, value in sorted(facts.items()):
        table.add_row(key, str(value))
    Console().print(table)


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _summary_table(result: RunResult) -> Table:
    table = Table(title=f"jobmeter run {result.run_id}", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    rows = [
        ("exit status", f"{result.exit_code} ({result.status})"),
        ("wall time", f"{result.wall_seconds:.2f} s"),
        ("CPU time", f"{result.cpu_user_seconds:.2f} s user, "
                     f"{result.cpu_system_seconds:.2f} s system"),
        ("CPU utilization", f"{result.cpu_utilization_mean:.2f} mean, "
                            f"{result.cpu_utilization_peak:.2f} peak (CPUs busy)"),
        ("peak memory", f"{_size(result.peak_memory_bytes)} from {result.peak_memory_source}"),
        ("  RSS / PSS sampled", f"{_size(result.peak_rss_sampled_bytes)} / "
                                f"{_size(result.peak_pss_sampled_bytes)}"),
        ("  largest process", _size(result.peak_rss_single_process_bytes)),
        ("  cgroup (with page cache)", _size(result.peak_cgroup_bytes)),
        ("peak GPU memory", _size(result.peak_gpu_memory_bytes)),
        ("disk read / written", f"{_size(result.read_bytes)} / {_size(result.written_bytes)}"),
        ("processes / threads (peak)", f"{result.peak_processes} / {result.peak_threads}"),
        ("samples", str(result.samples)),
        ("run directory", str(result.directory)),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    return table


def _configure_quietly() -> Telemetry:
    """configure() from the environment; a busy port must not stop the command from running."""
    from jobmeter._core.sdk import configure

    try:
        return configure()
    except ConfigurationError as error:
        print(f"jobmeter: {error}; running without a metrics endpoint", file=sys.stderr)
        return configure(exporters="none")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    no_args_is_help=True,
)
def run(
    command: list[str] = typer.Argument(..., help="The command to run, after --."),
    interval: float = typer.Option(
        1.0, "--interval", "-i", min=0.05, help="Seconds between samples (0.05 or more)."
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Runs directory (default ./.jobmeter/runs or JOBMETER_RUN_DIR).",
    ),
    capture: bool = typer.Option(
        True, "--capture/--no-capture", help="Also keep stdout and stderr in the run directory."
    ),
    record_args: bool = typer.Option(
        False,
        "--record-args",
        help="Store the full command line (off: program and argument count only).",
    ),
    name: str | None = typer.Option(None, "--name", help="A name for the run."),
    kill_grace: float = typer.Option(
        10.0,
        "--kill-grace",
        min=0.0,
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
    """Run COMMAND and measure its whole process tree: jobmeter run -- CMD [ARGS...]."""
    # Here, not at the top: `jobmeter report` and the other commands start faster.
    from jobmeter._core.sdk import configure
    from jobmeter.run import RunOptions, run_command
    from jobmeter.run._live import RunCollector, push_result

    options = RunOptions(interval=interval, output=output, capture=capture,
                         record_args=record_args, name=name, kill_grace=kill_grace)  # fmt: skip
    telemetry = _configure_quietly() if metrics else configure(exporters="none")
    job = name or os.path.basename(command[0])
    live = RunCollector(attributes={"jobmeter.run.name": job})
    result = run_command(command, options, on_sample=live.update)
    push_result(job, result)
    telemetry.shutdown()
    if as_json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True), file=sys.stderr)
    elif not quiet:
        Console(stderr=True).print(_summary_table(result))
    if comet:
        from jobmeter.cometml._hook import log_at_end

        log_at_end(result.directory, {})
    raise typer.Exit(result.exit_code)


@app.command()
def version() -> None:
    """Print jobmeter's version."""
    typer.echo(__version__)


register_store(app)
register_grafana(app)
app.command()(plot)


def main() -> None:
    """Entry point of the ``jobmeter`` script."""
    app()
