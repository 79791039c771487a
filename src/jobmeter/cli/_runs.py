"""``jobmeter runs``: the runs in the store, newest first, filtered."""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from typing import Any

import typer

from jobmeter import store
from jobmeter._core.format import format_bytes
from jobmeter.cli._output import DIR_HELP, JSON_HELP, print_json, store_errors
from jobmeter.cli._table import Column, Output, Table

#: The states ``runs --status`` accepts: what run.json records, and the store's own two.
STATES = ("succeeded", "failed", "interrupted", "killed", "not_started", "running", "incomplete")
_STATE_LIST = ", ".join(STATES)
#: How many runs a table lists without --limit (--json lists all).
TABLE_LIMIT = 20
_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _check_since(value: str | None) -> str | None:
    parse_since(value)
    return value


def parse_since(value: str | None) -> float | None:
    """``--since``: an age (``30m``, ``12h``, ``7d``, ``2w``) or a local ISO date or time."""
    if value is None:
        return None
    match = _AGO.fullmatch(value.strip())
    if match:
        return time.time() - float(match[1]) * _UNIT_SECONDS[match[2]]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise typer.BadParameter(
            "neither an age (30m, 12h, 7d, 2w) nor an ISO date or time "
            "(2026-12-01, 2026-12-01T08:00)"
        ) from None


def _check_state(value: str | None) -> str | None:
    if value is not None and value not in STATES:
        raise typer.BadParameter(f"not one of {_STATE_LIST}")
    return value


def _run_row(run: store.StoredRun, sampled: dict[str, Any] | None) -> dict[str, Any]:
    # The index's figures, else run.json's summary: neither reads a file of the run.
    figures = run.figures if run.figures is not None else run.summary
    if figures is None:  # running or incomplete: the figures so far, from the samples
        figures = sampled or {}
        duration = figures.get("wall_seconds")
    else:
        duration = run.end - run.start if run.end is not None and run.start is not None else None
    return {
        "id": run.id,
        "name": run.name,
        "start": run.start_iso(),
        "duration_seconds": duration,
        "status": run.state,
        "exit_code": run.exit_code,
        "peak_memory_bytes": figures.get("peak_memory_bytes"),
    }


def _start(run: store.StoredRun) -> str:
    if run.start is None:
        return "-"
    return datetime.fromtimestamp(run.start).astimezone().strftime("%Y-%m-%d %H:%M")


def runs(
    limit: int | None = typer.Option(
        None,
        "--limit",
        "-n",
        min=0,
        metavar="N",
        help=f"List the newest N (default {TABLE_LIMIT} in a table, all with --json; 0: all).",
    ),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="Only runs of this name."),
    status: str | None = typer.Option(
        None,
        "--status",
        metavar="STATE",
        callback=_check_state,
        help=f"Only runs in this state: {_STATE_LIST}.",
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        callback=_check_since,
        help="Only runs started since: an age (12h, 7d) or an ISO date/time.",
    ),
    directory: str | None = typer.Option(None, "--dir", metavar="DIR", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the runs in the store, newest first."""
    after = parse_since(since)
    found = store.list_runs(directory)
    if not found:
        print(f"jobmeter: {store.EmptyStoreError(store.runs_root(directory))}", file=sys.stderr)
    matching = [
        run for run in reversed(found)
        if name in (None, run.name) and status in (None, run.state)
        and (after is None or (run.start is not None and run.start >= after))
    ]  # fmt: skip
    shown = limit if limit is not None else (0 if as_json else TABLE_LIMIT)
    listed = matching[:shown] if shown else matching
    with store_errors():  # the samples of the runs without figures, read in one go
        unfinished = [run for run in listed if run.figures is None and run.summary is None]
        sampled = dict(zip(map(id, unfinished), store.figures_of(unfinished), strict=True))
        rows = [_run_row(run, sampled.get(id(run))) for run in listed]
    if as_json:
        print_json(rows)
        return
    if not found:
        return
    out = Output()
    table = Table(f"jobmeter runs in {store.runs_root(directory)}, newest first", (
        Column("id", "left"), Column("name", "left", fold=True, min_width=10),
        Column("start", drop=2), Column("duration"), Column("status", "left"),
        Column("exit", drop=1), Column("peak memory"),
    ))  # fmt: skip
    for run, row in zip(listed, rows, strict=True):
        duration, code = row["duration_seconds"], row["exit_code"]
        table.add_row(
            run.id, run.name, _start(run), "-" if duration is None else f"{duration:.1f} s",
            run.state, "-" if code is None else str(code), format_bytes(row["peak_memory_bytes"]),
        )  # fmt: skip
    if len(listed) < len(matching):
        table.notes.append(f"({len(matching) - len(listed)} older not listed: --limit 0 lists all)")
    out.table(table)
