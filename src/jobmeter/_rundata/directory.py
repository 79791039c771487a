"""Writing one run directory: run.json (rewritten atomically), usage.jsonl (appended, flushed)
and the captured output.

usage.jsonl is flushed at most once per USAGE_FLUSH_S (at 0.1 s sampling, one
write in ten samples), and at the end. A run killed with SIGKILL leaves a
usage.jsonl readable up to its last flush and a run.json that still says
``"status": "running"``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any, Final

from jobmeter._rundata.layout import RUN_JSON, USAGE, make_private_dirs, open_private, warn_once
from jobmeter._rundata.schema import USAGE_COLUMNS

#: The longest a sample waits in the buffer before usage.jsonl is flushed.
USAGE_FLUSH_S: Final = 1.0
# In the order json.dumps(sort_keys=True) wrote them: the lines stay byte for byte the same.
_COLUMNS: Final = tuple(sorted(USAGE_COLUMNS))


class RunDirectory:
    """Where one run writes; every write is a warning on failure, never a crash.

    A directory that cannot be made (permissions, a file in the way, a full
    disk) leaves the run unrecorded, with one warning: the job runs all the same.
    A write that fails later (a full disk, the directory removed) is one
    warning too, and ``failed`` says so; the first failure is kept in ``error``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed = False
        self.error: str | None = None
        self._usage: IO[str] | None = None
        self._flushed = 0.0  # time.monotonic() of the last flush
        self._made = False
        try:
            make_private_dirs(path)
            self._made = True
            self._usage = open_private(path / USAGE, "a")
        except OSError as error:
            self._fail(f"cannot create the run directory {path}: {error}; the run is not "
                       "recorded")  # fmt: skip

    def _fail(self, message: str) -> None:
        if not self.failed:
            self.failed = True
            if self._made and not self.path.is_dir():
                message = f"the run directory {self.path} was removed; the run is not recorded"
            self.error = message
            warn_once(self.path, message)

    def write_run(self, record: dict[str, Any]) -> None:
        """Replace run.json atomically."""
        target = self.path / RUN_JSON
        temporary = target.with_suffix(".json.tmp")
        try:
            with open_private(temporary, "w") as handle:
                handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
            os.replace(temporary, target)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()  # a half-written file would only take space
            self._fail(f"cannot write {target}: {error}")

    def append_usage(self, sample: dict[str, Any]) -> None:
        """One line per sample (the columns of ``schema.USAGE_COLUMNS``), flushed within 1 s."""
        if self._usage is not None:
            line = {name: sample.get(name) for name in _COLUMNS}
            try:
                self._usage.write(json.dumps(line) + "\n")
                now = time.monotonic()
                if now - self._flushed >= USAGE_FLUSH_S:
                    self._usage.flush()
                    self._flushed = now
            except (OSError, ValueError) as error:
                self._fail(f"cannot write samples to {self.path}: {error}")

    def log_file(self, name: str) -> IO[bytes]:
        """A captured output file (stdout.log, stderr.log); /dev/null when it cannot be made."""
        try:
            return open_private(self.path / name, "ab")
        except OSError as error:
            self._fail(f"cannot write {self.path / name}: {error}")
            return open(os.devnull, "ab", buffering=0)

    def log_failed(self, name: str, error: OSError) -> None:
        """A captured output file could not be written: the run's one warning."""
        self._fail(f"cannot write {self.path / name}: {error}; the output still reaches "
                   "the terminal")  # fmt: skip

    def close(self) -> None:
        """Close usage.jsonl."""
        if self._usage is not None:
            try:
                self._usage.close()
            except OSError as error:
                self._fail(f"cannot write samples to {self.path}: {error}")
            self._usage = None
