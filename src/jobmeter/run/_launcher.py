"""Start the command from a small process, so that the kernel's peak RSS of it is its own.

Linux keeps in ``ru_maxrss`` the peak RSS of the memory a process had before
exec (``exec_mmap()``): a command forked from the wrapper, a Python process
of tens of MB, reports at least the wrapper's size, with fork, vfork and
posix_spawn alike. So the command is forked from a shell instead, and reaped
by the wrapper itself (its subreaper), whose ``wait4()`` then gives the
command's own rusage:

1. the wrapper spawns ``sh -c SCRIPT sh CMD ARGS...`` (dash where there is one);
2. the shell forks a foreground subshell, which keeps SIGINT, SIGQUIT and stdin
   as the wrapper has them (an asynchronous list would ignore both signals and
   read /dev/null); the subshell writes its pid to a socket and waits there;
3. the wrapper kills the shell, which would reap the subshell (dash reaps even
   an asynchronous child that ends before it), reaps it and so holds the
   subshell as its own child; then it says go, and the subshell execs the command.

The shell's own rusage is left out of every total. The environment reaches
the command as given: the subshell puts back what a shell resets (``IFS``,
``OPTIND``, ``PPID``, ``PWD``) and passes names no shell can hold (exported
bash functions) through env(1). Where no shell passes the probe, or the
wrapper cannot be a subreaper, the command is spawned directly.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from jobmeter._core import probes

#: What a shell resets or adds when it starts; the subshell sets them back.
SHELL_VARIABLES = ("IFS", "OPTIND", "PPID", "PWD")
#: The subshell's own variable; an environment that has it is spawned directly.
MARK = "_JOBMETER_LAUNCH"
HANDSHAKE_S = 10.0
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class Spawned:
    """The command once started, and what its figures must leave out."""

    pid: int
    process: subprocess.Popen[bytes]  # the command itself, or the (reaped) launcher
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None
    #: A kernel peak of the command at or below this is the wrapper's size, not its own.
    peak_floor: int = 0
    #: The names (comm) the command's process has until its exec succeeds.
    launcher_names: frozenset[str] = field(default_factory=frozenset)


def unstartable(argv: Sequence[str], env: Mapping[str, str]) -> int | None:
    """127 (not found) or 126 (not executable) as exec would answer, else None.

    The same search as execvp in ``env``'s PATH, and the ``#!`` interpreter of
    a script, so that neither strategy has to start anything to say so.
    """
    if not argv or not argv[0]:
        return 127
    name = argv[0]
    paths = [name] if "/" in name else [os.path.join(d, name) for d in os.get_exec_path(env)]
    denied = False
    for path in paths:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return _interpreter(path)
        denied = denied or os.path.exists(path)
    return 126 if denied else 127


def _interpreter(path: str) -> int | None:
    try:
        with open(path, "rb") as script:
            head = script.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!") or not head[2:].split():
        return None
    interpreter = os.fsdecode(head[2:].split()[0])
    if not os.path.exists(interpreter):
        return 127
    return None if os.access(interpreter, os.X_OK) else 126


def direct(argv: Sequence[str], env: Mapping[str, str], capture: bool,
           preexec_fn: Callable[[], None] | None) -> Spawned:  # fmt: skip
    """The command forked from the wrapper: its kernel peak starts at the wrapper's size."""
    floor = probes.rss_bytes() + 2**20
    child = subprocess.Popen(list(argv), stdout=subprocess.PIPE if capture else None,
                             stderr=subprocess.PIPE if capture else None,
                             preexec_fn=preexec_fn, env=dict(env))  # fmt: skip
    return Spawned(child.pid, child, child.stdout, child.stderr, peak_floor=floor)


@dataclass(frozen=True)
class Launcher:
    """A shell that passed the probe, and env(1) for names a shell cannot hold."""

    shell: str
    env_tool: str | None

    def accepts(self, argv: Sequence[str], env: Mapping[str, str]) -> bool:
        """Whether this command can go through the launcher with this environment."""
        if MARK in env:
            return False
        if any(not _NAME.match(name) for name in env):
            # env(1) would read a program name with "=" as one more variable.
            return self.env_tool is not None and "=" not in argv[0]
        return True

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], capture: bool,
              preexec_fn: Callable[[], None] | None) -> Spawned | None:  # fmt: skip
        """Start ``argv`` through the shell; None if the launch failed (nothing ran then).

        The shell is reaped before this returns: a ``ReapedUsage`` made after it
        leaves the shell's rusage out.
        """
        ours, theirs = socket.socketpair()
        with ours:
            with theirs:
                fd = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD, 3)
            try:
                if fd > 9:  # a shell names only the descriptors 0 to 9
                    return None
                launcher = subprocess.Popen(
                    [self.shell, "-c", self._script(fd, env), "sh", *argv],
                    stdout=subprocess.PIPE if capture else None,
                    stderr=subprocess.PIPE if capture else None,
                    preexec_fn=preexec_fn, env=dict(env), pass_fds=(fd,),
                )  # fmt: skip
            except OSError:
                return None
            finally:
                os.close(fd)
            ours.settimeout(HANDSHAKE_S)
            pid = _read_pid(ours)
            with contextlib.suppress(ProcessLookupError):
                os.kill(launcher.pid, signal.SIGKILL)
            _, status, _ = os.wait4(launcher.pid, 0)
            launcher.returncode = os.waitstatus_to_exitcode(status)
            if pid is None or not _is_our_child(pid):
                ours.close()  # a subshell still waiting ends on the closed socket
                _abandon(launcher, pid)
                return None
            with contextlib.suppress(OSError):  # a subshell killed meanwhile is reaped as one
                ours.sendall(b"\n")  # go: the subshell execs the command
        names = {os.path.basename(self.shell)[:15]}
        if self.env_tool is not None and any(not _NAME.match(name) for name in env):
            names.add(os.path.basename(self.env_tool)[:15])
        return Spawned(pid, launcher, launcher.stdout, launcher.stderr,
                       launcher_names=frozenset(names))  # fmt: skip

    def _script(self, fd: int, env: Mapping[str, str]) -> str:
        lines = [
            "(",
            f"read -r {MARK} </proc/self/stat || exit 1",  # its own pid, in its first field
            f'echo "${MARK}" >&{fd} || exit 1',
            f"read -r {MARK} <&{fd} || exit 1",  # until the wrapper holds it
            f"unset {MARK}",
            *(f"{name}={shlex.quote(env[name])}" for name in SHELL_VARIABLES if name in env),
        ]
        if "PWD" not in env:
            lines.append("unset PWD")
        if "PATH" not in env:  # the search exec does without PATH; not exported
            lines.append(f"PATH={shlex.quote(os.defpath)}")
        passed = [f"{k}={v}" for k, v in env.items() if not _NAME.match(k)]
        tool = [shlex.quote(str(self.env_tool)), "--", *map(shlex.quote, passed)] if passed else []
        lines += [" ".join(["exec", *tool, '"$@"', f"{fd}>&-"]), ")", "exit 125"]
        return "\n".join(lines)


def _read_pid(sock: socket.socket) -> int | None:
    line = b""
    try:
        while not line.endswith(b"\n"):
            chunk = sock.recv(512)
            if not chunk:
                return None
            line += chunk
        return int(line.split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_our_child(pid: int) -> bool:
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _abandon(launcher: subprocess.Popen[bytes], pid: int | None) -> None:
    """A failed launch: reap the subshell if it is ours (it ends on the closed socket)."""
    if pid is not None and _is_our_child(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    for stream in (launcher.stdout, launcher.stderr):
        if stream is not None:
            stream.close()


def process_name(pid: int) -> str | None:
    """The comm of a process, a zombie's too (its name until it exec'd something else)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            line = stat.read()
    except OSError:
        return None
    return os.fsdecode(line[line.find(b"(") + 1 : line.rfind(b")")])


@functools.cache
def launcher() -> Launcher | None:
    """The launcher this machine allows (probed once), or None: spawn directly.

    Call it as a subreaper: the probe launches a real command and reaps it.
    """
    env_tool = shutil.which("env")
    cat = shutil.which("cat")
    if cat is None:
        return None
    for candidate in (shutil.which("dash"), "/bin/sh"):
        if candidate is None or not os.access(candidate, os.X_OK):
            continue
        found = Launcher(os.path.realpath(candidate), env_tool)
        if _probe(found, cat):
            return found
    return None


def _probe(candidate: Launcher, cat: str) -> bool:
    """Whether the command gets exactly its environment, through a real launch."""
    env = {"PATH": os.defpath, "IFS": "x", "OPTIND": "3", "PPID": "1", "_JOBMETER_PROBE": "a b"}
    try:
        spawned = candidate.spawn([cat, "/proc/self/environ"], env, True, None)
    except OSError:
        return False
    if spawned is None:
        return False
    assert spawned.stdout is not None
    assert spawned.stderr is not None
    with spawned.stdout, spawned.stderr:
        out = spawned.stdout.read()
    _, status, _ = os.wait4(spawned.pid, 0)
    expected = {f"{k}={v}".encode() for k, v in env.items()}
    return os.waitstatus_to_exitcode(status) == 0 and set(out.split(b"\0")) - {b""} == expected
