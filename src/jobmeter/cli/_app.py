"""The ``jobmeter`` typer app: ``info``, ``version``, and every command group registered."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from jobmeter._version import __version__
from jobmeter.cli._grafana import grafana_app
from jobmeter.cli._output import print_json
from jobmeter.cli._plot import plot
from jobmeter.cli._report import compare, report
from jobmeter.cli._run import RUN_SETTINGS, run
from jobmeter.cli._store import advise, export, gc, runs

app = typer.Typer(
    name="jobmeter",
    help="Measure what data and compute jobs cost, as OpenTelemetry metrics.",
    no_args_is_help=True,
    add_completion=False,
)


def info(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print what machine this is: host, OS, CPU, memory and GPU."""
    from jobmeter._core.machine import machine_info

    facts = machine_info()
    if as_json:
        print_json(facts)
        return
    table = Table(title=f"jobmeter {__version__}: this machine", show_header=False)
    table.add_column("attribute", style="bold")
    table.add_column("value")
    for key, value in sorted(facts.items()):
        table.add_row(key, str(value))
    Console().print(table)


def version() -> None:
    """Print jobmeter's version."""
    typer.echo(__version__)


# Registered in the order `jobmeter --help` lists them (groups come after the commands).
app.command()(info)
app.command(**RUN_SETTINGS)(run)
app.command()(version)
for command in (runs, report, compare, advise, export, gc, plot):
    app.command()(command)
app.add_typer(grafana_app, name="grafana")


def main() -> None:
    """Entry point of the ``jobmeter`` script."""
    from jobmeter._core.errors import ConfigurationError

    try:
        app()
    except ConfigurationError as error:  # strict mode, or a wrong option value: one line, no trace
        print(f"jobmeter: {error}", file=sys.stderr)
        raise SystemExit(2) from None
