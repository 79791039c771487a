"""``jobmeter run -- CMD [ARGS...]`` as typer reads it: its help, and its usage errors.

Argument lists that ``_run_command.parse`` reads itself never reach typer.
"""

from __future__ import annotations

from typing import Any

import typer

from jobmeter.cli._output import DIR_HELP
from jobmeter.cli._run_command import RunArguments, execute

#: How ``run`` is registered: everything after the options is the command's own.
RUN_SETTINGS: dict[str, Any] = {
    # The first word that is not one of run's options starts the command: its own options
    # (`python -u x.py`) are its own, and an unknown option before it is a usage error.
    "context_settings": {"allow_extra_args": True, "allow_interspersed_args": False},
    "no_args_is_help": True,
}


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
    processes: int = typer.Option(
        10,
        "--processes",
        min=0,
        metavar="N",
        help="Processes listed one by one in each sample, the heaviest by RSS, the rest "
        "summed (0: none). Names only; their arguments too with --record-args.",
    ),
) -> None:
    """Run a command and measure its process tree.

    jobmeter run [OPTIONS] -- CMD [ARGS...]: the options go before --.
    """
    arguments = RunArguments(
        command, interval, directory, output, capture, record_args, name, kill_grace, metrics,
        comet, quiet, as_json, processes,
    )  # fmt: skip
    raise typer.Exit(execute(arguments))
