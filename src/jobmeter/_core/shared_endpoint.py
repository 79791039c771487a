"""One Prometheus endpoint for a job's processes: the host that serves it, and its directory.

Under ``jobmeter run`` the wrapper binds the port and the job's processes that
call configure() join it instead of fighting for the port: the wrapper makes a
private directory (mode 0700), names it in ``JOBMETER_SHARED_ENDPOINT`` for the
command, and describes itself in ``endpoint.json`` there. Each joined process
(``shared_member``) answers on a Unix socket ``<pid>-<id>.sock`` in that
directory with its own exposition, and leaves its last one in ``<pid>-<id>.prom``
when it shuts down. A scrape of the host reads its own figures, then each
member's, and merges the pages by family name (as text, without parsing the
samples), so that each family is written once; each process's default
prometheus_client registry follows its own figures (after a DEFAULT_MARK line),
and a family of it that takes a name of a jobmeter family is left out.
Every series carries ``service_instance_id`` and ``process_pid``: a job's
forked workers are told apart, and their counts add up with ``sum``.

Members that do not answer within MEMBER_TIMEOUT_S (for the whole scrape) are
served from their last answers, so that no scrape is held for long; a member
that ended without its last words (SIGKILL, a bare ``os._exit``) stays as it was
last read.
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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from jobmeter._core.config import Settings
from jobmeter._core.family_names import (
    CLASH_MARK,
    DEFAULT_MARK,
    SIDE_SUFFIXES,
    ClashError,
    clash,
    report,
    taken_by,
    text_family,
)
from jobmeter._core.variables import SHARED_ENDPOINT

_log = logging.getLogger("jobmeter")

DESCRIPTION: Final = "endpoint.json"
LIVE: Final = ".sock"
LAST: Final = ".prom"
#: How long a scrape waits for its members before serving the last answers of the rest.
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
        self._strict = settings.strict
        self._mode = settings.prometheus_default_registry
        self._lock = threading.Lock()
        # member name -> its last answer, for members that are slow or gone.
        self._last: dict[str, str] = {}

    @property
    def environment(self) -> dict[str, str]:
        """What the command's environment needs to join."""
        return {SHARED_ENDPOINT: str(self.directory)}

    def merged(self, own: bytes) -> bytes:
        """This process's page, then each member's, merged so that each family is written once."""
        pages = [own.decode("utf-8")] + [text for _, text in self._answers()]
        return merge_pages(pages, strict=self._strict, mode=self._mode).encode("utf-8")

    def _answers(self) -> list[tuple[str, str]]:
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return []
        names = {p.stem for p in entries if p.suffix in (LIVE, LAST)}
        # One budget for the whole scrape: many stopped members cost MEMBER_TIMEOUT_S, not each.
        deadline = time.monotonic() + MEMBER_TIMEOUT_S
        answers = []
        for name in sorted(names):
            text = self._answer(name, deadline)
            if text is not None:
                answers.append((name, text))
        return answers

    def _answer(self, name: str, deadline: float) -> str | None:
        last_words = self.directory / f"{name}{LAST}"
        try:
            text = last_words.read_text(encoding="utf-8")
        except OSError:
            try:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the scrape's budget is spent")
                text = fetch(self.directory / f"{name}{LIVE}", left)
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


def open_shared(settings: Settings, url: str) -> SharedEndpoint | None:
    """The host's side for the endpoint at ``url``; None, with one warning, when it cannot be."""
    try:
        return SharedEndpoint(settings, url)
    except OSError as error:
        _log.warning("jobmeter: cannot share the endpoint with the command (%s); a command "
                     "that calls configure() serves its own", error)  # fmt: skip
        return None


def merge_pages(pages: Iterable[str], *, strict: bool = False, mode: str = "true") -> str:
    """Text expositions merged by family: one HELP and TYPE each, then every page's samples.

    Line by line, without parsing the samples: a page of a thousand series merges
    in milliseconds. A family whose type differs from the first page's is left
    out (two processes disagree on a name), and so is a line outside a family.
    A default registry's family (after DEFAULT_MARK) that takes a name of a
    jobmeter family of any page is left out, with one warning; in strict mode
    that, and a member's CLASH_MARK line, raise ClashError (``family_names``).
    """
    blocks = [block for page in pages for block in _blocks(page)]
    taken = taken_by(text_family(b.name, b.kind) for b in blocks if not b.default)
    families: dict[str, tuple[str, list[str]]] = {}  # name -> (type, header and samples)
    left_out: set[str] = set()
    for block in blocks:
        if block.default:
            name, kind = text_family(block.name, block.kind)
            if any(name == base + side for base in left_out for side in SIDE_SUFFIXES):
                continue  # the _created family of one left out
            owner = clash(name, kind, taken)
            if owner is not None:
                left_out.add(name)
                report(name, kind, owner, mode, strict=strict)
                continue
        kept = families.get(block.name)
        if kept is None:
            families[block.name] = (block.kind, [*block.header, *block.samples])
        elif block.kind in ("", kept[0]) or not kept[0]:
            if not kept[0] and block.kind:  # only a HELP line came first
                families[block.name] = (block.kind, kept[1])
                kept[1].append(block.header[-1])
            kept[1].extend(block.samples)
        else:
            _log.debug("jobmeter: %s is a %s and a %s; the %s is left out",
                       block.name, kept[0], block.kind, block.kind)  # fmt: skip
    return "".join("\n".join(lines) + "\n" for _, lines in families.values())


class _Block:
    """One family's lines on one page."""

    __slots__ = ("default", "header", "kind", "name", "samples")

    def __init__(self, name: str, default: bool) -> None:
        self.name = name
        self.default = default
        self.kind = ""
        self.header: list[str] = []
        self.samples: list[str] = []


def _blocks(page: str) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    default = False
    for line in page.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            parts = line.split(" ", 3)
            if current is None or current.name != parts[2]:
                current = _Block(parts[2], default)
                blocks.append(current)
            if parts[1] == "TYPE":
                current.kind = parts[3] if len(parts) > 3 else ""
            current.header.append(line)
        elif line == DEFAULT_MARK:
            default, current = True, None
        elif line.startswith(CLASH_MARK):  # a strict member found a clash
            raise ClashError.from_line(line)
        elif line and not line.startswith("#") and current is not None:
            current.samples.append(line)
    return blocks


def _short_temp_dir() -> str:
    """The temporary directory, or /tmp where its path is too long for Unix sockets."""
    chosen = tempfile.gettempdir()
    return chosen if len(chosen) <= _MAX_DIRECTORY_CHARS - 20 else "/tmp"
