"""One Prometheus endpoint for a job's processes: the host that serves it, and its directory.

Under ``jobmeter run`` the wrapper binds the port and the job's processes that
call configure() join it instead of fighting for the port: the wrapper makes a
private directory (mode 0700), names it in ``JOBMETER_SHARED_ENDPOINT`` for the
command, and describes itself in ``endpoint.json`` there. Each joined process
(``shared_member``) answers on a Unix socket ``<pid>-<id>.sock`` in that
directory with its own exposition, and leaves its last one in ``<pid>-<id>.prom``
when it shuts down. A scrape of the host reads its own figures, then each
member's, and merges the families by name, so that one family is written once.
Every series carries ``service_instance_id`` and ``process_pid``: a job's
forked workers are told apart, and their counts add up with ``sum``.

A member that does not answer in time is served from its last answer, and a
member that ended without its last words (SIGKILL, ``os._exit``) as it was last
read, so that nothing it counted goes missing between two scrapes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from jobmeter._core.config import Settings
from jobmeter._core.variables import SHARED_ENDPOINT

_log = logging.getLogger("jobmeter")

DESCRIPTION: Final = "endpoint.json"
LIVE: Final = ".sock"
LAST: Final = ".prom"
#: How long a scrape waits for one member before serving its last answer.
MEMBER_TIMEOUT_S: Final = 2.0
#: The most one member's answer may hold; more is cut off as a fault.
MAX_ANSWER_BYTES: Final = 64 * 2**20
# A Unix socket path holds at most 107 bytes on Linux; ours need about 60.
_MAX_DIRECTORY_CHARS: Final = 60


def match_key(settings: Settings) -> str:
    """What a process must ask for to join: the same address and the same protection."""
    protection = (
        settings.prometheus_certfile, settings.prometheus_keyfile,
        settings.prometheus_client_cafile, settings.prometheus_basic_auth,
    )  # fmt: skip
    digest = hashlib.sha256(repr(protection).encode()).hexdigest()[:16]
    return f"{settings.prometheus_host}:{settings.prometheus_port}:{digest}"


def read_description(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The host's endpoint.json, or None when there is none to read."""
    try:
        data = json.loads((Path(directory) / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fetch(path: Path, timeout: float = MEMBER_TIMEOUT_S) -> str:
    """A member's exposition, read from its socket; OSError when it does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(path))
        chunks, size = [], 0
        while chunk := connection.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise OSError(f"answer over {MAX_ANSWER_BYTES} bytes")
    return b"".join(chunks).decode("utf-8")


class SharedEndpoint:
    """The host's side: the members' directory, and the merge a scrape reads."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="jobmeter-", dir=_short_temp_dir()))
        description = {"version": 1, "match": match_key(settings), "url": url, "pid": os.getpid()}
        (self.directory / DESCRIPTION).write_text(json.dumps(description), encoding="utf-8")
        self._lock = threading.Lock()
        # member name -> its last answer, for members that are slow or gone.
        self._last: dict[str, str] = {}

    @property
    def environment(self) -> dict[str, str]:
        """What the command's environment needs to join."""
        return {SHARED_ENDPOINT: str(self.directory)}

    def merged(self, own: Iterable[Metric]) -> Iterator[Metric]:
        """This process's families, then each member's, one family per name."""
        families: dict[str, Metric] = {}
        _merge(families, own)
        for name, text in self._answers():
            try:
                _merge(families, text_string_to_metric_families(text))
            except ValueError as error:  # one broken member must not spoil the scrape
                _log.debug("jobmeter: cannot read the exposition of %s: %s", name, error)
        return iter(families.values())

    def _answers(self) -> list[tuple[str, str]]:
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return []
        names = {p.stem for p in entries if p.suffix in (LIVE, LAST)}
        answers = []
        for name in sorted(names):
            text = self._answer(name)
            if text is not None:
                answers.append((name, text))
        return answers

    def _answer(self, name: str) -> str | None:
        last_words = self.directory / f"{name}{LAST}"
        try:
            text = last_words.read_text(encoding="utf-8")
        except OSError:
            try:
                text = fetch(self.directory / f"{name}{LIVE}")
            except (OSError, UnicodeError):
                with self._lock:
                    return self._last.get(name)
        with self._lock:
            self._last[name] = text
        return text

    def close(self) -> None:
        """Remove the directory, and what members left in it."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)


def _merge(families: dict[str, Metric], new: Iterable[Metric]) -> None:
    for family in new:
        kept = families.get(family.name)
        if kept is None:
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = list(family.samples)
            families[family.name] = copy
        elif kept.type == family.type:
            kept.samples.extend(family.samples)
        else:  # two processes disagree on a name: keep the first one's
            _log.debug("jobmeter: %s is a %s and a %s; the %s is left out",
                       family.name, kept.type, family.type, family.type)  # fmt: skip


def _short_temp_dir() -> str:
    """The temporary directory, or /tmp where its path is too long for Unix sockets."""
    chosen = tempfile.gettempdir()
    return chosen if len(chosen) <= _MAX_DIRECTORY_CHARS - 20 else "/tmp"
