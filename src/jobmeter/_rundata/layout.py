"""The run directory: run.json (rewritten atomically) and usage.jsonl (appended, flushed).

A run killed with SIGKILL leaves a usage.jsonl readable up to its last sample
and a run.json that still says ``"status": "running"``. Everything is made for
the user only (directories 0700, files 0600): command lines, output and
paths are often private.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import IO, Any

from jobmeter._core.config import RUN_DIR

_log = logging.getLogger("jobmeter")

DEFAULT_RUN_DIR = Path(".jobmeter") / "runs"
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
# Run directories warned about in this process, and the warning: one per run, whoever hits it.
_warned: dict[str, str] = {}


def warn_once(directory: Path, message: str) -> bool:
    """Log ``message`` unless this run directory has had its warning; True if logged."""
    key = str(directory)
    if key in _warned:
        return False
    _warned[key] = message
    _log.warning("jobmeter: %s; the job goes on", message)
    return True


def store_error(directory: Path) -> str | None:
    """The warning this run directory had in this process, if any."""
    return _warned.get(str(directory))


def open_private(path: Path, mode: str) -> IO[Any]:
    """Open for appending or writing, creating the file 0600 (the umask cannot widen it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_APPEND if mode.startswith("a") else os.O_TRUNC
    fd = os.open(path, flags, FILE_MODE)
    try:
        if "b" in mode:
            return open(fd, mode, buffering=0)
        return open(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def make_private_dirs(path: Path) -> None:
    """``mkdir -p`` where each directory made is 0700; existing ones are left as they are."""
    missing = []
    for each in (path, *path.parents):
        if each.is_dir():
            break
        missing.append(each)
    for each in reversed(missing):
        try:
            each.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            if not each.is_dir():
                raise
            continue  # another run made it at the same moment
        os.chmod(each, DIRECTORY_MODE)  # the umask may have taken bits off


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
    A write that fails later (a full disk, the directory removed) is one
    warning too, and ``failed`` says so; the first failure is kept in ``error``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed = False
        self.error: str | None = None
        self._usage: IO[str] | None = None
        self._made = False
        try:
            make_private_dirs(path)
            self._made = True
            self._usage = open_private(path / "usage.jsonl", "a")
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
        target = self.path / "run.json"
        temporary = target.with_suffix(".json.tmp")
        try:
            with open_private(temporary, "w") as handle:
                handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
            os.replace(temporary, target)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()  # a half-written file would only take space
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
