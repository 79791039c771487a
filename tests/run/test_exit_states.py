"""How a run ends: interrupted by Ctrl-C, killed, or never started, and what the store makes of it.

Real signals to a real wrapper process; commands that cannot start for real
reasons (missing, not executable, a missing interpreter, a file busy being
written). Each case runs with the launcher and spawned directly (no shell on
the wrapper's PATH), which must read the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jobmeter import store


def _env(tmp_path: Path, direct: bool = False) -> dict[str, str]:
    env = {**os.environ, "OTEL_METRICS_EXPORTER": "none"}
    if direct:
        # No cat and no dash on the wrapper's PATH: no launcher, the command is spawned.
        empty = tmp_path / "empty-path"
        empty.mkdir(exist_ok=True)
        env["PATH"] = str(empty)
    return env


def _args(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobmeter", "run", "--no-metrics",
            "--dir", str(tmp_path / "runs"), *args]  # fmt: skip


def _record(tmp_path: Path) -> dict[str, Any]:
    (run,) = (tmp_path / "runs").iterdir()
    record: dict[str, Any] = json.loads((run / "run.json").read_text())
    return record


def _wrapper(tmp_path: Path, code: str) -> subprocess.Popen[str]:
    """A wrapper whose command says "ready"; SIGINT at its default, as in a terminal."""
    return subprocess.Popen(
        _args(tmp_path, "--interval", "0.1", "--", sys.executable, "-c", code),
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def test_ctrl_c_interrupts_the_command_and_the_run(tmp_path: Path) -> None:
    """SIGINT to the wrapper reaches the command as KeyboardInterrupt (so SIGINT was not
    ignored in it), which dies of it: exit 130, "interrupted" in run.json and the summary."""
    marker = tmp_path / "got-int"
    code = textwrap.dedent(
        f"""
        import time
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            open({str(marker)!r}, "w").write("INT")
            raise
        """
    )
    wrapper = _wrapper(tmp_path, code)
    assert wrapper.stdout is not None
    assert wrapper.stdout.readline().strip() == "ready"
    wrapper.send_signal(signal.SIGINT)
    _, err = wrapper.communicate(timeout=30)
    assert wrapper.returncode == 130
    assert marker.read_text() == "INT"
    record = _record(tmp_path)
    assert (record["status"], record["exit_code"]) == ("interrupted", 130)
    assert record["summary"]["signals_forwarded"] == ["SIGINT"]
    assert "130 (interrupted)" in err


def test_sigterm_still_reads_killed(tmp_path: Path) -> None:
    """A command that dies of a forwarded SIGTERM (its handler ran first) was killed."""
    marker = tmp_path / "got-term"
    code = textwrap.dedent(
        f"""
        import os, signal, time
        def stop(signum, frame):
            open({str(marker)!r}, "w").write("TERM")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    wrapper = _wrapper(tmp_path, code)
    assert wrapper.stdout is not None
    assert wrapper.stdout.readline().strip() == "ready"
    wrapper.send_signal(signal.SIGTERM)
    _, err = wrapper.communicate(timeout=30)
    assert wrapper.returncode == 143
    assert marker.read_text() == "TERM"
    assert (_record(tmp_path)["status"], _record(tmp_path)["exit_code"]) == ("killed", 143)
    assert "143 (killed)" in err


def _no_executable(tmp_path: Path) -> str:
    path = tmp_path / "not-executable"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    return str(path)


def _bad_interpreter(tmp_path: Path) -> str:
    path = tmp_path / "bad-interpreter"
    path.write_text("#!/no/such/interpreter\n")
    path.chmod(0o755)
    return str(path)


CASES = [
    # (make the command, exit status, the error as on stderr and in run.json)
    (lambda tmp: "no-such-command-jobmeter", 127, "command not found"),
    (_no_executable, 126, "permission denied"),
    (lambda tmp: str(tmp), 126, "permission denied"),  # a directory
    (_bad_interpreter, 127, "command not found"),  # as exec says: ENOENT
]


@pytest.mark.parametrize("direct", [False, True], ids=["launcher", "direct"])
@pytest.mark.parametrize(("make", "code", "error"), CASES)
def test_a_command_that_cannot_start(
    tmp_path: Path, direct: bool, make: Any, code: int, error: str
) -> None:
    """One line on stderr, no summary of zeros, its exit status, "not_started" in run.json."""
    command = make(tmp_path)
    done = subprocess.run(_args(tmp_path, "--", command), env=_env(tmp_path, direct),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == code
    assert done.stderr == f"jobmeter: {error}: {command}\n"
    record = _record(tmp_path)
    assert (record["status"], record["error"], record["exit_code"]) == ("not_started", error, code)
    assert record["end"] is not None


@pytest.mark.parametrize("direct", [False, True], ids=["launcher", "direct"])
def test_an_exec_refused_after_the_checks_is_not_started_either(
    tmp_path: Path, direct: bool
) -> None:
    """A program held open for writing: found and executable, yet exec says ETXTBSY.
    Through the launcher its process ends before exec (the shell says why, then we do)."""
    program = tmp_path / "busy"
    program.write_bytes(Path("/bin/true").read_bytes())
    program.chmod(0o755)
    held = os.open(program, os.O_WRONLY)
    try:
        done = subprocess.run(_args(tmp_path, "--json", "--", str(program)),
                              env=_env(tmp_path, direct), capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    finally:
        os.close(held)
    assert done.returncode == 126
    lines = done.stderr.splitlines()
    assert lines[-1] == f"jobmeter: cannot execute: {program}"
    assert len(lines) == (1 if direct else 2)  # no summary, not even as JSON
    record = _record(tmp_path)
    assert (record["status"], record["error"]) == ("not_started", "cannot execute")


def test_a_command_that_exits_127_itself_did_start(tmp_path: Path) -> None:
    """A script whose own last command is missing exits 127: that run failed, it ran."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho ran\nno-such-command-jobmeter\n")
    script.chmod(0o755)
    done = subprocess.run(_args(tmp_path, "--quiet", "--", str(script)), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 127
    assert done.stdout == "ran\n"
    assert "jobmeter: command not found" not in done.stderr
    assert _record(tmp_path)["status"] == "failed"


def test_the_store_leaves_runs_that_did_not_start_out_of_advice(tmp_path: Path) -> None:
    """Listed as not started; a name resolves to its newest run that ran; advise and
    compare by name average only what ran."""
    runs = tmp_path / "runs"
    env = _env(tmp_path)
    code = "b = bytearray(64 * 2**20)"
    ok = subprocess.run(_args(tmp_path, "-q", "--name", "etl", "--", sys.executable, "-c", code),
                        env=env, timeout=60)  # fmt: skip
    assert ok.returncode == 0
    missing = subprocess.run(_args(tmp_path, "-q", "--name", "etl", "--", "no-such-etl"),
                             env=env, capture_output=True, timeout=60)  # fmt: skip
    assert missing.returncode == 127
    ran, not_started = store.list_runs(runs)
    assert (ran.state, not_started.state) == ("succeeded", "not_started")
    assert not not_started.started
    assert store.resolve("etl", runs).id == ran.id
    advice = store.advise([ran, not_started])
    assert advice.runs == [ran.id]
    assert advice.memory_bytes.per_run == [store.report(ran).figures["peak_memory_bytes"]]
    with pytest.raises(store.StoreError):
        store.advise([not_started])
    advised = subprocess.run(
        [sys.executable, "-m", "jobmeter", "advise", "--name", "etl", "--json", "--dir", str(runs)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert advised.returncode == 0, advised.stderr
    assert json.loads(advised.stdout)["runs"] == [ran.id]


def test_an_older_not_found_run_reads_as_not_started(tmp_path: Path) -> None:
    """Runs recorded before "not_started" said "not_found" or "not_executable"."""
    done = subprocess.run(_args(tmp_path, "--", "no-such-command-jobmeter"),
                          env=_env(tmp_path), capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 127
    (run,) = (tmp_path / "runs").iterdir()
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "not_found"}))
    (stored,) = store.list_runs(tmp_path / "runs")
    assert stored.state == "not_started"
