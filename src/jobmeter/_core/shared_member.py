"""A process that joins the endpoint of the ``jobmeter run`` it runs under (``shared_endpoint``).

It opens no port: its reader answers on a Unix socket in the host's directory,
one connection at a time (only the host connects), and at shutdown it leaves
its last exposition next to it, so that the host serves what it counted after
it has ended. A forked child joins anew, with its own socket and identity.
Its answers hold its default prometheus_client registry too (``default_registry``),
after a DEFAULT_MARK line, so that the host's merge knows them from jobmeter's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Final

from jobmeter._core import otel_private, threads
from jobmeter._core.config import Settings
from jobmeter._core.default_registry import text_with_registry
from jobmeter._core.environment import env_value
from jobmeter._core.prometheus import new_reader
from jobmeter._core.shared_endpoint import LAST, LIVE, match_key, read_description
from jobmeter._core.variables import SHARED_ENDPOINT

_log = logging.getLogger("jobmeter")

#: How long the host may take to read one answer.
SEND_TIMEOUT_S: Final = 10.0


def shared_directory(settings: Settings) -> tuple[Path, str] | None:
    """(directory, URL) of the endpoint this process should join, or None to serve its own.

    It joins when it runs under a host (``JOBMETER_SHARED_ENDPOINT``) that
    serves the address and protection this process's settings ask for.
    """
    raw = env_value(SHARED_ENDPOINT)
    if raw is None:
        return None
    description = read_description(raw)
    if description is None:
        return None
    if description.get("match") != match_key(settings):
        return None
    return Path(raw), str(description.get("url", ""))


class SharedMember:
    """This process's part of a shared endpoint: its reader, answering on a Unix socket."""

    def __init__(
        self, directory: Path, url: str, *, default_registry: str = "true", strict: bool = False
    ) -> None:
        self.directory = directory
        self.url = url
        self.registry, self.reader = new_reader(
            shared=True, default_registry=default_registry, strict=strict
        )
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._name = ""
        self._listen()

    @property
    def host(self) -> str:
        """The host part of the shared endpoint's URL."""
        return self.url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        """The shared endpoint's port."""
        tail = self.url.rsplit(":", 1)[-1].split("/", 1)[0]
        return int(tail) if tail.isdigit() else 0

    def _listen(self) -> None:
        self._name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.directory / f"{self._name}{LIVE}"))
            listener.listen(8)
        except OSError:
            listener.close()
            raise
        self._listener = listener

    def start(self) -> None:
        """Answer the host, now that the reader is registered."""
        if self._listener is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._serve, args=(self._listener,), name="jobmeter-prometheus", daemon=True
        )
        threads.start(self._thread)

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: this member has shut down
                return
            with connection:
                try:
                    connection.settimeout(SEND_TIMEOUT_S)
                    connection.sendall(self._answer())
                except Exception as error:  # a failed answer must never stop the next one
                    _log.debug("jobmeter: answering the shared endpoint failed: %s", error)

    def _answer(self) -> bytes:
        return text_with_registry(self.registry, self.reader.default, mark=True)

    def close(self) -> None:
        """Leave the last exposition for the host, then stop answering; idempotent."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        try:
            last = self.directory / f"{self._name}{LAST}"
            partial = last.with_suffix(".tmp")
            partial.write_bytes(self._answer())
            partial.replace(last)  # whole or not at all: the host may read it at any moment
        except OSError as error:
            _log.warning("jobmeter: cannot leave the last figures at %s: %s; the shared "
                         "endpoint keeps what it read last", self.directory, error)  # fmt: skip
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with contextlib.suppress(OSError):
            (self.directory / f"{self._name}{LIVE}").unlink()

    def rejoin_in_child(self) -> None:
        """In a forked child: its own socket and thread; the parent's socket stays the parent's."""
        inherited, self._listener, self._thread = self._listener, None, None
        if inherited is not None:
            with contextlib.suppress(OSError):
                inherited.close()
        # The reader keeps the parent's target_info; the child's identity is its own.
        otel_private.forget_target_info(self.reader)
        try:
            self._listen()
        except OSError as error:
            _log.warning("jobmeter: a forked child cannot join the shared endpoint at %s: %s; "
                         "its figures are not served", self.directory, error)  # fmt: skip
            return
        self.start()
