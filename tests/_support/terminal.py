"""Run a command at a real terminal of a given width (a pseudo-terminal), and read its screen."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def strip_escapes(text: str) -> str:
    """The text without ANSI colour and style sequences."""
    return _ESCAPES.sub("", text)


def read_terminal(leader: int, timeout: float = 60) -> str:
    """All a pseudo-terminal showed until every process closed it; ``leader`` is closed."""
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                raise TimeoutError(f"the terminal showed nothing for {timeout} s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command and its children closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def run_at_terminal(
    args: Sequence[str], columns: int, env: Mapping[str, str], timeout: float = 60
) -> tuple[int, str, str]:
    """Run ``args`` with stdout on a pseudo-terminal ``columns`` wide; stderr is a pipe.

    Returns:
        The exit status, what the terminal showed (escapes kept, ``\\r\\n`` as ``\\n``), and
        stderr.
    """
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = {key: value for key, value in env.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        list(args), stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE,
        env={**environ, "TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(follower)
    try:
        screen = read_terminal(leader, timeout)
    except TimeoutError:
        process.kill()
        raise
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    code = process.wait(timeout)
    return code, screen.replace("\r\n", "\n"), stderr
