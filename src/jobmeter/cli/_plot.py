"""``jobmeter plot``: a run's CPU, memory, disk I/O and GPU over time, as a PNG (and HTML)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from jobmeter import store
from jobmeter.cli._output import (
    DIR_HELP,
    LATEST_HELP,
    RUN_HELP,
    pick_run,
    print_json,
    store_errors,
)


def plot(
    run: str | None = typer.Argument(None, metavar="RUN", help=RUN_HELP + " Default: latest."),
    latest: bool = typer.Option(False, "--latest", help=LATEST_HELP),
    output: str = typer.Option(
        "run.png",
        "--output",
        "-o",
        metavar="FILE",
        help="The PNG to write (a directory, or a path ending in /: <run id>.png in it).",
    ),
    html: bool = typer.Option(False, "--html", help="Also write an HTML page beside the PNG."),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"run": ..., "png": ..., "html": ...}.'
    ),
) -> None:
    """Plot a run's CPU, memory, I/O and GPU.

    CPU, memory, disk I/O and GPU over time as a PNG, with the operations in a lane
    (needs the plot extra: pip install 'jobmeter[plot]').
    """
    target = Path(output)
    if output.endswith(("/", os.sep)):  # a directory to be: Path() would drop the slash
        target.mkdir(parents=True, exist_ok=True)
    with store_errors():
        stored = store.resolve(pick_run(run, latest), directory)
        try:
            written = store.plot_run(stored.directory, target, html=html)
        except store.PlotDependencyError as error:
            print(f"jobmeter: {error}", file=sys.stderr)
            raise typer.Exit(2) from None
        except ValueError as error:
            print(f"jobmeter: {error}", file=sys.stderr)
            raise typer.Exit(2) from None
    page = str(written.with_suffix(".html")) if html else None
    if as_json:
        print_json({"run": stored.id, "png": str(written), "html": page})
    else:
        typer.echo(f"wrote {written}" + (f" and {page}" if page else ""))
