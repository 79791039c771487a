"""The ``jobmeter`` typer app: ``info``, ``version``, and every command group registered."""

from __future__ import annotations

import sys
from typing import Any

import typer

from jobmeter._core.format import format_bytes
from jobmeter._version import __version__
from jobmeter.cli._advise import advise
from jobmeter.cli._grafana import grafana_app
from jobmeter.cli._output import click_error, print_json
from jobmeter.cli._plot import plot
from jobmeter.cli._report import compare, report
from jobmeter.cli._run import RUN_SETTINGS, run
from jobmeter.cli._runs import runs
from jobmeter.cli._store import export, gc
from jobmeter.cli._table import Column, Output, Table

app = typer.Typer(
    name="jobmeter",
    help="Measure what data and compute jobs cost, as OpenTelemetry metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: it reads at 80 columns and in a pipe
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"jobmeter {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """Measure what data and compute jobs cost, as OpenTelemetry metrics."""


def info(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """What machine this is: host, OS, CPU, memory, GPU, energy counters."""
    from jobmeter import _energy
    from jobmeter._core.machine import machine_info

    # Not a resource attribute: which energy counters runs and blocks will read.
    facts = {**machine_info(), "jobmeter.energy.counters": _energy.meter().describe()}
    if as_json:
        print_json(facts)
        return
    table = Table(f"jobmeter {__version__}: this machine", (
        Column("attribute", "left", style="bold"), Column("value", "left", fold=True),
    ), show_header=False)  # fmt: skip
    for key, value in sorted(facts.items()):
        shown = str(value)
        if key.endswith("memory.total") and isinstance(value, int):
            shown = f"{format_bytes(value)} ({value} bytes)"
        table.add_row(key, shown)
    Output().table(table)


def version(
    as_json: bool = typer.Option(False, "--json", help='Print {"version": ...}.'),
) -> None:
    """Print jobmeter's version."""
    if as_json:
        print_json({"version": __version__})
    else:
        typer.echo(__version__)


# Registered in the order `jobmeter --help` lists them (groups come after the commands).
app.command()(info)
app.command(**RUN_SETTINGS)(run)
app.command()(version)
for command in (runs, report, compare, advise, export, gc, plot):
    app.command()(command)
app.add_typer(grafana_app, name="grafana")


_UsageError = click_error("UsageError")
_ClickException = click_error("ClickException")


def _given(opts: list[str]) -> str | None:
    """The value given on the command line to the option spelled ``opts``."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--":
            break
        name, equals, value = arg.partition("=")
        if name in opts:
            return value if equals else (args[i + 1] if i + 1 < len(args) else None)
        attached = [opt for opt in opts if len(opt) == 2 and arg.startswith(opt) and arg != opt]
        if attached and not arg.startswith("--"):  # -i0.01
            return arg[2:]
    return None


def _usage_error(error: Any) -> int:
    """One line naming the option, the value given and what is accepted: not typer's box."""
    command = error.ctx.command_path if error.ctx is not None else "jobmeter"
    message = error.format_message()
    param = getattr(error, "param", None)
    opts = list(getattr(param, "opts", None) or [])
    value = _given(opts) if type(error).__name__ == "BadParameter" and opts else None
    if value is not None:
        message = f"{'/'.join(sorted(opts, key=len, reverse=True))} {value!r}: {error.message}"
    print(f"{command}: {' '.join(message.split())} (see {command} --help)", file=sys.stderr)
    return int(error.exit_code)


def main() -> None:
    """Entry point of the ``jobmeter`` script."""
    from jobmeter._core.errors import ConfigurationError

    try:
        code = app(standalone_mode=False)
    except _UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # `jobmeter` alone: the help
            typer.echo(error.format_message())
            code = 0
        else:  # a wrong option value, a missing argument
            code = _usage_error(error)
    except _ClickException as error:
        print(f"jobmeter: {error.format_message()}", file=sys.stderr)
        code = error.exit_code
    except typer.Abort:  # Ctrl-C at a prompt
        code = 130
    except ConfigurationError as error:  # strict mode, or a wrong option value: one line, no trace
        print(f"jobmeter: {error}", file=sys.stderr)
        code = 2
    raise SystemExit(code if isinstance(code, int) else 0)
