"""The ``jobmeter`` command line (typer + rich): one module per command group."""

from jobmeter.cli._app import app, main

__all__ = ["app", "main"]
