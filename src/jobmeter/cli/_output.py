"""What the commands share: help texts, JSON output, the run picker and store errors."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from jobmeter import store

DIR_HELP = "Runs directory (default JOBMETER_RUN_DIR, else ./.jobmeter/runs)."
JSON_HELP = "Print JSON (stable keys, docs/run-store.md) instead of a table."
#: What every command that takes a run accepts (``store.resolve``).
RUN_HELP = "A run id, a unique id prefix, a run name (its newest run) or latest."
LATEST_HELP = "The newest run (the same as RUN latest)."


class _Stderr(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"jobmeter: warning: {record.getMessage()}", file=sys.stderr)


@contextmanager
def store_errors() -> Iterator[None]:
    """Store warnings on stderr, once; a StoreError is a message and exit status 2."""
    logger = logging.getLogger("jobmeter")
    handler = _Stderr(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    except store.StoreError as error:
        print(f"jobmeter: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    finally:
        logger.removeHandler(handler)


def click_error(name: str) -> Any:
    """click's exception class ``name``: typer 0.2x vendors click (``typer._click``), older
    versions use click itself; typer.BadParameter derives from the right one either way."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def print_json(data: Any) -> None:
    """``data`` as indented JSON with sorted keys, on stdout."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def pick_run(run: str | None, latest: bool) -> str:
    """The RUN argument of a command: ``latest`` for --latest or when none is given."""
    if run is not None and latest:
        print(f"jobmeter: give RUN ({run!r}) or --latest, not both", file=sys.stderr)
        raise typer.Exit(2)
    return "latest" if run is None else run
