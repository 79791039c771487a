"""The run directory: run.json (rewritten atomically) and usage.jsonl (appended, flushed).

A run killed with SIGKILL leaves a usage.jsonl readable up to its last sample
and a run.json that still says ``"status": "running"``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import IO, Any

from jobmeter._config import RUN_DIR

_log = logging.getLogger("jobmeter")

DEFAULT_RUN_DIR = Path(".jobmeter") / "runs"


def runs_root(output: str | Path | None = None) -> Path:
    """``--output``, else ``JOBMETER_RUN_DIR``, else ``./.jobmeter/runs``."""
    if output is not None:
        return Path(output)
    return Path(os.environ.get(RUN_DIR) or DEFAULT_RUN_DIR)


def new_run_id() -> str:
    """Sortable by start time, unique: ``20261123T204501Z-3f9a1c``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class RunDirectory:
    """Where one run writes; every write is a warning on failure, never a crash.

    A directory that cannot be made (permissions, a file in the way, a full
    disk) leaves the run unrecorded, with one warning: the job runs all the same.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed = False
        self._usage: IO[str] | None = None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._usage = open(path / "usage.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            self._fail(f"cannot create the run directory {path}: {error}; the job runs, "
                       "unrecorded")  # fmt: skip

    def _fail(self, message: str) -> None:
        if not self.failed:
            self.failed = True
            _log.warning("jobmeter: %s", message)

    def write_run(self, record: dict[str, Any]) -> None:
        """Replace run.json atomically."""
        target = self.path / "run.json"
        temporary = target.with_suffix(".json.tmp")
        try:
            temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                                 encoding="utf-8")  # fmt: skip
            os.replace(temporary, target)
        except OSError as error:
            self._fail(f"cannot write {target}: {error}")

    def append_usage(self, record: dict[str, Any]) -> None:
        """One line per sample, flushed at once."""
        if self._usage is not None:
            try:
                self._usage.write(json.dumps(record, sort_keys=True) + "\n")
                self._usage.flush()
            except (OSError, ValueError) as error:
                self._fail(f"cannot write samples to {self.path}: {error}")

    def log_file(self, name: str) -> IO[bytes]:
        """A captured output file (stdout.log, stderr.log); /dev/null when it cannot be made."""
        try:
            return open(self.path / name, "ab", buffering=0)
        except OSError as error:
            self._fail(f"cannot write {self.path / name}: {error}")
            return open(os.devnull, "ab", buffering=0)

    def close(self) -> None:
        """Close usage.jsonl."""
        if self._usage is not None:
            try:
                self._usage.close()
            except OSError as error:
                self._fail(f"cannot write samples to {self.path}: {error}")
            self._usage = None
