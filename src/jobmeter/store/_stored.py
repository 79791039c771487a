"""One run of the store as read now (``StoredRun``), the store's errors, and reading run.json."""

from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jobmeter._rundata.layout import USAGE
from jobmeter._rundata.metadata import read_record
from jobmeter._rundata.summary import NOT_STARTED
from jobmeter.store._liveness import Liveness

#: What run.json said of a command that could not start, before ``not_started``.
_OLD_NOT_STARTED = ("not_found", "not_executable")


class StoreError(Exception):
    """A run cannot be found or read; the CLI exits 2 with this message."""


class EmptyStoreError(StoreError):
    """The store holds no run."""

    def __init__(self, root: Path) -> None:
        super().__init__(f"no runs in {root}; make one with: jobmeter run -- CMD")
        self.root = root


class UnknownRunError(StoreError):
    """No run has this id, or the prefix is not unique."""

    def __init__(self, ref: str, matches: list[str], ambiguous: bool = False) -> None:
        what = "is not unique" if ambiguous else "matches no run"
        message = f"run {ref!r} {what}"
        if matches:
            message += "; did you mean: " + ", ".join(matches)
        super().__init__(message)
        self.ref = ref
        self.matches = matches


@dataclass
class StoredRun:
    """One run directory: its run.json, and its state as read now."""

    id: str
    directory: Path
    record: dict[str, Any]
    state: str  # the recorded status, or "incomplete" for an abandoned "running" run
    #: The report's figures (``FIGURES``) as the store's index keeps them, for a run
    #: listed from the index; None for a run read from its run.json (``report()`` has them).
    figures: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: The index entry the run was listed from (docs/run-store.md#the-index); None: run.json.
    entry: str | None = field(default=None, repr=False, compare=False)

    @property
    def started(self) -> bool:
        """False for a command that could not start: its figures are zeros, not usage."""
        return self.state != NOT_STARTED

    @property
    def name(self) -> str:
        """The run's name, else the program's name."""
        return name_of(self.record)

    @property
    def start(self) -> float | None:
        """Unix seconds."""
        start = self.record.get("start")
        return float(start) if isinstance(start, int | float) else None

    @property
    def end(self) -> float | None:
        """Unix seconds; None while running or when incomplete."""
        end = self.record.get("end")
        return float(end) if isinstance(end, int | float) else None

    @property
    def exit_code(self) -> int | None:
        """The command's exit status; None while running or when incomplete."""
        code = self.record.get("exit_code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def summary(self) -> dict[str, Any] | None:
        """run.json's summary, present once the run ended."""
        summary = self.record.get("summary")
        return summary if isinstance(summary, dict) and self.end is not None else None

    def start_iso(self) -> str:
        """The start in local time, ISO 8601 with the offset."""
        if self.start is None:
            return ""
        return datetime.fromtimestamp(self.start).astimezone().isoformat(timespec="seconds")


class IndexedRun(StoredRun):
    """A run listed from the store's index: run.json and the figures are parsed when first used.

    A listing of ten thousand runs needs their names, starts and states, which
    the index has in columns; parsing every run.json kept there would be most
    of its time. It equals the ``StoredRun`` read from the same run.json.
    """

    def __init__(self, directory: Path, entry: str, columns: tuple[str, str, str, Any, Any, Any],
                 record_text: str, figures_text: str | None) -> None:  # fmt: skip
        self._record: dict[str, Any] | None = None
        self._record_text = record_text
        self._figures: dict[str, Any] | None = None
        self._figures_text = figures_text
        self._id, self._name, state, self._start, self._end, self._exit_code = columns
        super().__init__(self._id, directory, {}, state, None, entry)

    @property
    def record(self) -> dict[str, Any]:
        """run.json, as it was when the run ended."""
        if self._record is None:
            self._record = json.loads(self._record_text)
        return self._record

    @record.setter
    def record(self, value: dict[str, Any]) -> None:
        self._record = value or None  # the dataclass's __init__ sets {}: parse when asked

    @property
    def figures(self) -> dict[str, Any] | None:
        """The report's figures as the index keeps them (None: a run's own entry, whose
        figures a compaction reads from its samples)."""
        if self._figures is None and self._figures_text:
            self._figures = json.loads(self._figures_text)
        return self._figures

    @figures.setter
    def figures(self, value: dict[str, Any] | None) -> None:
        self._figures = value

    @property
    def name(self) -> str:
        """The run's name, else the program's name."""
        return self._name if self._record is None else name_of(self._record)

    @property
    def start(self) -> float | None:
        """Unix seconds."""
        return self._start if self._record is None else super().start

    @property
    def end(self) -> float | None:
        """Unix seconds."""
        return self._end if self._record is None else super().end

    @property
    def exit_code(self) -> int | None:
        """The command's exit status."""
        return self._exit_code if self._record is None else super().exit_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredRun):
            return NotImplemented
        mine = (self.id, self.directory, self.record, self.state)
        return mine == (other.id, other.directory, other.record, other.state)

    __hash__ = None  # type: ignore[assignment]  # as a dataclass with eq


def name_of(record: dict[str, Any]) -> str:
    """A run's name, else its program's name (``StoredRun.name``)."""
    name = record.get("name")
    if name:
        return str(name)
    command = record.get("command")
    return str(command.get("executable", "")) if isinstance(command, dict) else ""


def ended(record: dict[str, Any]) -> bool:
    """Whether run.json says the run is over: its state needs no look at live processes."""
    status = record.get("status")
    return bool(status) and status != "running" and record.get("end") is not None


def state_of(record: dict[str, Any], directory: Path, liveness: Liveness) -> str:
    """The state a run is listed in: its status, ``running`` or ``incomplete``."""
    state = str(record.get("status") or "incomplete")
    if state in _OLD_NOT_STARTED:
        state = NOT_STARTED
    if state == "running" or record.get("end") is None:
        state = "running" if liveness.alive(record, directory) else "incomplete"
    elif record.get("incomplete"):  # it ended, but the store could not keep all of it
        state = "incomplete"
    return state


def load_run(directory: Path, liveness: Liveness) -> StoredRun | None:
    """The run of one directory from its run.json; None for a directory that holds no run."""
    record = read_record(directory)
    if record is None:
        if not (directory / USAGE).is_file():
            return None
        record = {"id": directory.name}  # run.json lost or damaged: the samples remain
    state = state_of(record, directory, liveness)
    return StoredRun(str(record.get("id") or directory.name), directory, record, state)


def run_directories(base: Path) -> list[str]:
    """The run directories' names under ``base``, sorted; ``.index`` and hidden ones left out."""
    try:
        with os.scandir(base) as entries:
            # d_type from readdir: no stat per directory, which counts on NFS.
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def start_order(run: StoredRun) -> tuple[float, str]:
    """The order of the listing: by start, then id."""
    # Ids only resolve to the second: two runs started in one second sort by their start.
    if run.start is not None:
        return (run.start, run.id)
    try:
        return (calendar.timegm(time.strptime(run.id[:16], "%Y%m%dT%H%M%SZ")), run.id)
    except ValueError:
        return (0.0, run.id)
