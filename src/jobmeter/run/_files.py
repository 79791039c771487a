"""The run directory: run.json (rewritten atomically) and usage.jsonl (appended, flushed).

A run killed with SIGKILL leaves a usage.jsonl readable up to its last sample
and a run.json that still says ``"status": "running"``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import IO, Any

from jobmeter._config import RUN_DIR

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
    """Where one run writes; every write is a warning on failure, never a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self._usage: IO[str] | None = open(path / "usage.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def write_run(self, record: dict[str, Any]) -> None:
        """Replace run.json atomically."""
        target = self.path / "run.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, target)

    def append_usage(self, record: dict[str, Any]) -> None:
        """One line per sample, flushed at once."""
        if self._usage is not None:
            self._usage.write(json.dumps(record, sort_keys=True) + "\n")
            self._usage.flush()

    def log_file(self, name: str) -> IO[bytes]:
        """A captured output file (stdout.log, stderr.log)."""
        return open(self.path / name, "ab", buffering=0)

    def close(self) -> None:
        """Close usage.jsonl."""
        if self._usage is not None:
            self._usage.close()
            self._usage = None
