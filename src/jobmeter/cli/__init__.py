"""The ``jobmeter`` command line (typer + rich): one module per command group.

``main`` reads ``jobmeter run``'s arguments itself where it can, so that a run
starts before typer loads; ``app`` (the typer app) loads on first use.
"""

from typing import Any

from jobmeter.cli._main import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from jobmeter.cli._app import app

        return app
    raise AttributeError(f"module 'jobmeter.cli' has no attribute {name!r}")
