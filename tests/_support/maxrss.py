"""Ground truth for a command's own peak RSS, as time(1) measures it: ``ru_maxrss`` of wait4.

``/usr/bin/time -f %M`` where GNU time is installed; elsewhere the same
measurement by hand, so that a test never needs to skip. The command must be
forked from a small process: Linux keeps in ``ru_maxrss`` the peak of the
memory a process had before exec, so a command forked from this Python would
start at its size. Here a shell forks it as an asynchronous list, whose child
opens a FIFO before it execs; the open waits for a writer, which comes only
once the shell has exited and this process (a subreaper) is the child's
parent, so the shell can never reap it. Then ``wait4`` gives the command's own
figure. Run as ``python maxrss.py CMD ARGS...``: it prints KiB.

This is deliberately not jobmeter's launcher (``jobmeter.run._launcher``):
a shell's asynchronous child and a FIFO, against a foreground subshell and a
socket, so that the two are not the same code checked against itself.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

GNU_TIME = "/usr/bin/time"
_HERE = os.path.abspath(__file__)


def peak_rss_kib(argv: Sequence[str]) -> int:
    """The command's own peak RSS in KiB: GNU time's figure, else this module's."""
    if os.access(GNU_TIME, os.X_OK):
        done = subprocess.run([GNU_TIME, "-f", "%M", *argv], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
        lines = done.stderr.strip().splitlines()
        if lines and lines[-1].isdigit():
            return int(lines[-1])
    return forked_peak_rss_kib(argv)


def forked_peak_rss_kib(argv: Sequence[str]) -> int:
    """This module's own measurement, in a process of its own (it becomes a subreaper)."""
    done = subprocess.run([sys.executable, _HERE, *argv], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return int(done.stdout.split()[-1])


def _measure(argv: Sequence[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    shell = shutil.which("dash") or "/bin/sh"
    with tempfile.TemporaryDirectory() as scratch:
        fifo = os.path.join(scratch, "go")
        os.mkfifo(fifo)
        # $0 is the FIFO. The shell prints the child's pid and exits at once; the child
        # keeps a copy of the pipe until it execs, so read one line, not to the end.
        script = '"$@" </dev/null >/dev/null 3<"$0" 3<&- & echo $!'
        shell_process = subprocess.Popen([shell, "-c", script, fifo, *argv],
                                         stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert shell_process.stdout is not None
        with shell_process.stdout:
            child = int(shell_process.stdout.readline())
        shell_process.wait()
        # The shell has exited and been reaped: the child is ours, and waits for this.
        os.close(os.open(fifo, os.O_WRONLY))
        _, _, usage = os.wait4(child, 0)
    return int(usage.ru_maxrss)


if __name__ == "__main__":
    print(_measure(sys.argv[1:]))
