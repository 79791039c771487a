"""run.json: its first form (identity, machine, git commit, command), and reading it back.

Both kinds of run write the same first form; the end adds ``status``,
``end``, ``exit_code`` and the ``summary`` (``summary.RunResult``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobmeter._rundata.layout import RUN_JSON
from jobmeter._version import __version__

_GIT_TIMEOUT_S = 2.0


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info() -> dict[str, Any] | None:
    """The commit of the working directory's git repository and whether files changed.

    None outside a repository or without git. Only the commit and a flag are
    kept: no branch names, paths or remote URLs.
    """
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if changes is None else bool(changes)}


def command_record(argv: Sequence[str], record_args: bool) -> dict[str, Any]:
    """The command as the store keeps it: by default the program and a count only.

    Full command lines can hold secrets (tokens, passwords, paths).
    """
    command: dict[str, Any] = {
        "executable": os.path.basename(argv[0]) if argv else "",
        "argument_count": max(len(argv) - 1, 0),
    }
    if record_args:
        command["argv"] = list(argv)
    return command


def new_record(
    run_id: str,
    name: str | None,
    kind: str,
    command: dict[str, Any],
    interval: float,
    *,
    described: bool = True,
) -> dict[str, Any]:
    """run.json of a run that starts now (status "running").

    ``described=False`` leaves out the machine and the git commit, which take
    NVML and two git processes to find: ``describe()`` adds them later (once
    ``jobmeter run``'s command has started).
    """
    record: dict[str, Any] = {
        "id": run_id,
        "name": name,
        "kind": kind,
        "status": "running",
        "pid": os.getpid(),  # the process that owns the run: a dead pid marks it abandoned
        "start": time.time(),
        "end": None,
        "jobmeter_version": __version__,
        "command": command,
        "interval_seconds": interval,
    }
    if described:
        describe(record)
    return record


def describe(record: dict[str, Any]) -> None:
    """Add the machine (``host``), what the run holds (``held``) and the git commit."""
    from jobmeter._core import gpus  # NVML: not for readers of the store
    from jobmeter._core.environment import read
    from jobmeter._core.hardware_settings import DEFAULT_SYSFS_PATH, SYSFS_PATH
    from jobmeter._core.machine import machine_info
    from jobmeter._core.parse import parse_text
    from jobmeter._rundata.held import held_resources

    host = record["host"] = machine_info()
    sysfs = read(SYSFS_PATH, parse_text, DEFAULT_SYSFS_PATH, "the default applies")
    record["held"] = held_resources(
        host["jobmeter.host.memory.total"], host["jobmeter.host.cpu.usable_count"],
        len(gpus.visible_devices()), sysfs,
    )  # fmt: skip
    git = git_info()
    if git is not None:
        record["git"] = git


def read_record(directory: Path) -> dict[str, Any] | None:
    """run.json of a run directory; None when it is missing, damaged or not a JSON object."""
    try:
        record = json.loads((directory / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
