"""Where a run lives: the runs directory, the files of one run directory, and their modes.

One directory per run, ``<runs root>/<run id>/``:

- ``run.json``: what the run is and, once it ended, its summary (``metadata``, ``summary``);
- ``usage.jsonl``: one line per sample of the process tree (``usage``);
- ``<kind>.<pid>.jsonl``: what each process measured, per flush interval, and
  ``<kind>.parquet`` once the clean end compacted them (``records``);
- ``stdout.log``, ``stderr.log``: the command's output (``jobmeter run``);
- ``operations.jsonl``: spans a user wrote, drawn by ``jobmeter plot``;
- ``peak.<pid>``: a process's lifetime peak RSS in bytes, left by one whose measured
  blocks reset the kernel's high-water mark (``jobmeter.collector._peak``).
- ``index.json``: the run's entry in the store's index, written at its end
  (``jobmeter.store``; docs/run-store.md#the-index). The index's segments are in
  ``<runs root>/.index/<host>/``, which no run directory is.

Everything is made for the user only (directories 0700, files 0600): command
lines, output and paths are often private.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import IO, Any

from jobmeter._core.environment import env_value
from jobmeter._core.variables import RUN_DIR

_log = logging.getLogger("jobmeter")

DEFAULT_RUN_DIR = Path(".jobmeter") / "runs"
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
RUN_JSON = "run.json"
USAGE = "usage.jsonl"
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
USER_SPANS = "operations.jsonl"
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


def runs_root(output: str | os.PathLike[str] | None = None) -> Path:
    """``--output``, else ``JOBMETER_RUN_DIR``, else ``./.jobmeter/runs``."""
    if output is not None:
        return Path(output)
    return Path(env_value(RUN_DIR) or DEFAULT_RUN_DIR)


#: Random bytes in a run id: 64 bits keep ids unique across the hosts of a shared store.
RUN_ID_RANDOM_BYTES = 8


def new_run_id() -> str:
    """Sortable by start time (to the second), unique: ``20261123T204501Z-3f9a1c0b7e42d915``.

    Many hosts write one shared store with no lock between them, so the id alone
    must keep runs apart: 64 random bits make two equal ids among 200 runs started
    in the same second a chance of about 1 in 10^15. No host name goes in (it
    may be private, ``JOBMETER_HOST_NAME=omit``).
    """
    # os.urandom, not secrets: importing secrets costs 7 ms, which every run would pay.
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return stamp + "-" + os.urandom(RUN_ID_RANDOM_BYTES).hex()


def records_file(directory: Path, kind: str, pid: int) -> Path:
    """The JSONL file one process appends its records of ``kind`` to."""
    return directory / f"{kind}.{pid}.jsonl"


def record_files(directory: Path, kind: str) -> list[str]:
    """Every process's JSONL file of ``kind`` in a run directory, sorted."""
    return sorted(str(path) for path in directory.glob(f"{kind}.*.jsonl") if path.is_file())


def compacted_file(directory: Path, kind: str) -> Path:
    """The Parquet file the records of ``kind`` are compacted into."""
    return directory / f"{kind}.parquet"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file made 0600, as every file of the run store."""
    with open_private(path, "w") as handle:
        handle.write(text)


def temporary_beside(path: Path) -> Path:
    """A hidden, unique name in ``path``'s directory to write before renaming over ``path``.

    Readers skip names that start with a dot; the random part keeps two writers
    (two hosts of a shared store) from ever writing the same temporary file.
    """
    return path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a whole or not at all: a temporary file, then a rename.

    The rename is atomic within one directory, on NFS too: a reader sees the old
    file, the new one, or none, never a part. Raises OSError (the temporary file
    is removed).
    """
    temporary = temporary_beside(path)
    try:
        write_private(temporary, text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def peak_file(directory: Path, pid: int) -> Path:
    """Where a process leaves its lifetime peak RSS (its resets hid it from the kernel)."""
    return directory / f"peak.{pid}"


def write_peak(path: Path, peak: int) -> None:
    """Replace a process's lifetime peak (a new file renamed over: never read half-written)."""
    temporary = path.with_name(f".{path.name}.tmp")
    write_private(temporary, str(int(peak)))
    os.replace(temporary, path)


def published_peaks(directory: Path) -> dict[int, int]:
    """The lifetime peaks processes left in a run directory, by pid; damaged files skipped."""
    found: dict[int, int] = {}
    for path in directory.glob("peak.*"):
        try:
            found[int(path.name.split(".", 1)[1])] = int(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return found
