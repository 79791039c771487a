"""``jobmeter plot``: a run's CPU, memory, disk I/O and GPU over time, as a PNG (and HTML)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from jobmeter import store
from jobmeter.cli._output import DIR_HELP, pick_run, store_errors


def plot(
    run: str | None = typer.Argument(None, help="Run id, unique prefix or name."),
    latest: bool = typer.Option(False, "--latest", help="The newest run."),
    output: Path = typer.Option(
        Path("run.png"), "--output", "-o", help="The PNG to write (a directory: <run id>.png)."
    ),
    html: bool = typer.Option(False, "--html", help="Also write an HTML page beside the PNG."),
    directory: str | None = typer.Option(None, "--dir", help=DIR_HELP),
) -> None:
    """Plot a run: CPU, memory, disk I/O and GPU over time (needs the plot extra)."""
    with store_errors():
        stored = store.resolve(pick_run(run, latest), directory)
        try:
            written = store.plot_run(stored.directory, output, html=html)
        except store.PlotDependencyError as error:
            print(f"jobmeter: {error}", file=sys.stderr)
            raise typer.Exit(2) from None
        except ValueError as error:
            print(f"jobmeter: {error}", file=sys.stderr)
            raise typer.Exit(2) from None
    typer.echo(f"wrote {written}" + (f" and {written.with_suffix('.html')}" if html else ""))
