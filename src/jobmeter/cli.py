"""The ``jobmeter`` command line (typer + rich)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from jobmeter._machine import machine_info
from jobmeter._version import __version__

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


@app.command()
def version() -> None:
    """Print jobmeter's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``jobmeter`` script."""
    app()
