"""The checkpoint of a backfill: a small JSON file, replaced atomically, read back on restart.

A write goes to a temporary file in the same directory, is flushed to disk
(``fsync``), then renamed over the checkpoint (``os.replace``): a crash at any
moment leaves either the previous checkpoint or the new one, never half of
one. A write that fails (disk full, directory gone, permissions) is one
warning; the backfill goes on and tries again at the next interval.

The failed positions (``failed_items``, by error type), the count of those
not kept and the retried outcomes are top-level keys that older files lack
(they load as none) and older versions ignore, so the version stays 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Final

from jobmeter.backfill._failures import FAILED_ITEMS_LIMIT, RETRIED_OUTCOMES
from jobmeter.backfill._snapshot import Snapshot

_log = logging.getLogger("jobmeter")

FORMAT: Final = "jobmeter.backfill.checkpoint"
VERSION: Final = 1
_COUNT_KEYS: Final = ("done", "failed", "skipped")
_STATUSES: Final = ("running", "succeeded", "failed", "interrupted")


def encode(name: str, snapshot: Snapshot, status: str) -> dict[str, Any]:
    """The JSON document of ``snapshot`` (without the time it was written)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "status": status,
        "total": snapshot.total,
        "started": snapshot.started,
        "last_success": snapshot.last_success,
        "counts": {
            "done": snapshot.done,
            "skipped": snapshot.skipped,
            "failed": dict(snapshot.failed),
        },
        "retries": dict(snapshot.retries),
        "rate_limit_hits": dict(snapshot.rate_limit_hits),
        "failed_items": _by_label(snapshot.failed_items),
        "failed_items_not_kept": snapshot.failed_items_not_kept,
        "retried": {outcome: snapshot.retried.get(outcome, 0) for outcome in RETRIED_OUTCOMES},
    }


def _by_label(positions: Any) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for position, label in sorted(positions.items()):
        grouped.setdefault(label, []).append(position)
    return grouped


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"checkpoint {str(path)!r}: {problem}; delete the file or pass resume=False to "
            "start the backfill over"
        )


def _count(path: Path, where: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise CheckpointError(path, f"{where} must be a whole number >= 0, got {value!r}")
    return value


def _labelled(path: Path, where: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise CheckpointError(path, f"{where} must be an object of label: count, got {value!r}")
    return {str(k): _count(path, f"{where}[{k!r}]", v) for k, v in value.items()}


def _positions(path: Path, value: Any) -> tuple[dict[int, str], int]:
    """``{error type: [position, ...]}`` as position -> type; past the limit, only counted."""
    if not isinstance(value, dict):
        raise CheckpointError(path, f"failed_items must be an object of error type: positions, "
                              f"got {value!r}")  # fmt: skip
    found: dict[int, str] = {}
    for label, positions in value.items():
        if not isinstance(positions, list):
            raise CheckpointError(
                path, f"failed_items[{label!r}] must be a list, got {positions!r}"
            )
        for i, position in enumerate(positions):
            _count(path, f"failed_items[{label!r}][{i}]", position)
            if position in found:
                raise CheckpointError(path, f"failed_items lists position {position} twice")
            found[position] = str(label)
    kept = dict(sorted(found.items())[:FAILED_ITEMS_LIMIT])  # a file from a larger limit
    return kept, len(found) - len(kept)


def _retried(path: Path, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise CheckpointError(path, f"retried must be an object of outcome: count, got {value!r}")
    unknown = sorted(set(value) - set(RETRIED_OUTCOMES))
    if unknown:
        raise CheckpointError(path, f"unknown outcome {unknown[0]!r} in retried; accepted: "
                              f"{', '.join(RETRIED_OUTCOMES)}")  # fmt: skip
    return {k: _count(path, f"retried.{k}", value.get(k, 0)) for k in RETRIED_OUTCOMES}


def _time(path: Path, where: str, value: Any, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise CheckpointError(path, f"{where} must be a Unix time in seconds, got {value!r}")
    return float(value)


def decode(path: Path, name: str, document: Any) -> Snapshot:
    """Check a checkpoint document; raise CheckpointError naming what is wrong."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(path, f"not a jobmeter backfill checkpoint (no format {FORMAT!r})")
    if document.get("version") != VERSION:
        raise CheckpointError(
            path, f"version {document.get('version')!r} is not supported; accepted: {VERSION}"
        )
    if document.get("name") != name:
        raise CheckpointError(
            path, f"it belongs to the backfill {document.get('name')!r}, not {name!r}"
        )
    if document.get("status") not in _STATUSES:
        raise CheckpointError(
            path, f"status {document.get('status')!r} is unknown; accepted: {', '.join(_STATUSES)}"
        )
    counts = document.get("counts")
    if not isinstance(counts, dict):
        raise CheckpointError(path, f"counts must be an object, got {counts!r}")
    unknown = sorted(set(counts) - set(_COUNT_KEYS))
    if unknown:
        raise CheckpointError(
            path, f"unknown outcome {unknown[0]!r} in counts; accepted: {', '.join(_COUNT_KEYS)}"
        )
    total = document.get("total")
    started = _time(path, "started", document.get("started"), optional=False)
    assert started is not None
    failed = _labelled(path, "counts.failed", counts.get("failed", {}))
    failed_items, past_limit = _positions(path, document.get("failed_items", {}))
    not_kept = _count(path, "failed_items_not_kept", document.get("failed_items_not_kept", 0))
    # Each failed item was counted failed once, by its first failure: never fewer counts.
    if len(failed_items) + past_limit + not_kept > sum(failed.values()):
        raise CheckpointError(
            path, f"failed_items has {len(failed_items) + past_limit + not_kept} items "
            f"(not_kept included), more than the {sum(failed.values())} counted failed"
        )  # fmt: skip
    return Snapshot(
        started=started,
        done=_count(path, "counts.done", counts.get("done", 0)),
        skipped=_count(path, "counts.skipped", counts.get("skipped", 0)),
        failed=failed,
        retries=_labelled(path, "retries", document.get("retries", {})),
        rate_limit_hits=_labelled(path, "rate_limit_hits", document.get("rate_limit_hits", {})),
        total=None if total is None else _count(path, "total", total),
        last_success=_time(path, "last_success", document.get("last_success"), optional=True),
        failed_items=failed_items,
        failed_items_not_kept=not_kept + past_limit,
        retried=_retried(path, document.get("retried", {})),
    )


def load(path: Path, name: str) -> Snapshot | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointError(path, f"cannot be read ({error})") from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise CheckpointError(path, f"is not valid JSON ({error})") from error
    return decode(path, name, document)


def check_path(raw: str | os.PathLike[str]) -> Path:
    """A checkpoint path the backfill can write; its directory is made if missing."""
    if not isinstance(raw, str | os.PathLike):
        raise TypeError(f"checkpoint must be a path (str or os.PathLike), got {type(raw).__name__}")
    path = Path(raw)
    if not str(raw).strip() or path.is_dir():
        raise ValueError(f"checkpoint must be a file path, got {str(raw)!r}")
    try:  # like `mkdir -p`: a fresh checkout has no state/ directory yet
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"checkpoint {str(raw)!r}: its directory {str(path.parent)!r} cannot be made "
            f"({error.strerror or error})"
        ) from error
    return path


class CheckpointFile:
    """Writes one backfill's checkpoint; a failure is one warning, then quiet until it works."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._last: dict[str, Any] | None = None
        self._failing = False
        self._warned = False
        self._lock = threading.Lock()  # the background thread and the end never interleave
        self._ended = False
        self.writes = 0

    def write(self, snapshot: Snapshot, status: str, *, final: bool = False) -> bool:
        """Write ``snapshot`` unless the file holds it already; True when on disk.

        The final write (``final=True``) always writes, and no write follows it.
        """
        with self._lock:
            if self._ended:
                return False
            self._ended = final
            return self._write(snapshot, status, final)

    def _write(self, snapshot: Snapshot, status: str, final: bool) -> bool:
        document = encode(self.name, snapshot, status)
        if not final and document == self._last:
            return True
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump({**document, "updated": time.time()}, out, indent=1, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except (OSError, TypeError, ValueError) as error:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._failing = True
            if not self._warned:
                self._warned = True
                _log.warning(
                    "jobmeter: backfill %r cannot write its checkpoint %s: %s; the backfill goes "
                    "on, counts stay in memory and the write is tried again later",
                    self.name, self.path, error,
                )  # fmt: skip
            return False
        self._sync_directory()
        if self._failing:
            self._failing = False
            _log.info("jobmeter: backfill %r writes its checkpoint again", self.name)
        self._last = document
        self.writes += 1
        return True

    def _sync_directory(self) -> None:
        # The rename is durable once the directory is on disk too; best effort.
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
