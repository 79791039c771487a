"""The ``jobmeter`` script's entry: ``jobmeter run`` read without typer where it can be."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``jobmeter`` script."""
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        from jobmeter.cli._run_command import execute, parse

        arguments = parse(args[1:])
        if arguments is not None:
            from jobmeter._core.errors import ConfigurationError

            try:
                code = execute(arguments)
            except ConfigurationError as error:  # strict mode: one line, no trace, as typer's
                print(f"jobmeter: {error}", file=sys.stderr)
                code = 2
            raise SystemExit(code)
    from jobmeter.cli._app import main as typer_main  # every other command, help and errors

    typer_main()
