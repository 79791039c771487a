"""A Pushgateway that refuses or hangs never changes the job's result or holds its exit.

Two pushers, each in a real subprocess: ``jobmeter run``'s final push
(``JOBMETER_PUSHGATEWAY_URL``, 5 s timeout) and a ``Backfill``'s periodic
pushes plus its bounded final one (docs/backfill.md: the end waits at most
``push_timeout`` plus one second). Each test prints ``FIGURE ...`` lines
(shown with ``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.hanging_server import HangingTcpServer
from _support.ports import refused_endpoint_port

MARGIN_S = 3.0  # teardown of a loaded 2-core machine; start-up is not counted
RUN_PUSH_TIMEOUT_S = 5.0  # push_result()'s timeout, used by jobmeter run
BACKFILL_PUSH_TIMEOUT_S = 1.0


@contextlib.contextmanager
def _gateway(case: str) -> Iterator[str]:
    if case == "refusing":
        yield f"http://127.0.0.1:{refused_endpoint_port()}"
    else:
        with HangingTcpServer() as hanging:
            yield hanging.endpoint


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))}
    env.update(JOBMETER_PUSHGATEWAY_URL=url, JOBMETER_RUN_DIR=str(tmp_path / "runs"))
    return env


def _exit_seconds(stdout: str) -> tuple[str, float]:
    """The job's output before its last line, and the time of that last line."""
    lines = stdout.splitlines()
    exiting = next(line for line in lines if line.startswith("EXITING"))
    return "\n".join(line for line in lines if not line.startswith("EXITING")), float(
        exiting.split()[1]
    )


COMMAND = (
    "import time; print('hello from the job', flush=True); "
    "print('EXITING', time.time(), flush=True); raise SystemExit(7)"
)


@pytest.mark.parametrize("case", ["refusing", "hanging"])
def test_jobmeter_run_final_push_to_a_bad_gateway(case: str, tmp_path: Path) -> None:
    """The command's output and exit status come through; the push costs at most its timeout."""
    with _gateway(case) as url:
        done = subprocess.run(
            [sys.executable, "-m", "jobmeter", "run", "--no-metrics", "--quiet", "--no-capture",
             "--", sys.executable, "-c", COMMAND],
            env=_env(url, tmp_path), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        ended = time.time()
    output, last_line = _exit_seconds(done.stdout)
    exit_s = ended - last_line
    print(f"\nFIGURE case=jobmeter-run-push-{case} exit_s={exit_s:.2f}")
    assert done.returncode == 7, done.stderr
    assert output == "hello from the job"
    assert "jobmeter: cannot push to the Pushgateway at" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert exit_s < RUN_PUSH_TIMEOUT_S + MARGIN_S, done.stderr


BACKFILL_JOB = textwrap.dedent(
    f"""
    import sys, time
    from jobmeter.backfill import Backfill

    started = time.monotonic()
    with Backfill("orders", total=40, push_interval=0.1,
                  push_timeout={BACKFILL_PUSH_TIMEOUT_S}, progress=False) as bf:
        for _ in range(40):
            time.sleep(0.02)
            bf.done()
        work = time.monotonic() - started
        print("RESULT", bf.completed, round(work, 3), flush=True)
        print("EXITING", time.time(), flush=True)
    sys.exit(5)
    """
)


@pytest.mark.parametrize("case", ["refusing", "hanging"])
def test_backfill_pushes_to_a_bad_gateway(case: str, tmp_path: Path) -> None:
    """Periodic pushes do not slow the loop; the final one waits at most push_timeout + 1 s."""
    with _gateway(case) as url:
        done = subprocess.run(
            [sys.executable, "-c", BACKFILL_JOB], env=_env(url, tmp_path),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        ended = time.time()
    output, last_line = _exit_seconds(done.stdout)
    exit_s = ended - last_line
    _, completed, work_s = output.split()
    print(f"\nFIGURE case=backfill-push-{case} exit_s={exit_s:.2f} work_s={work_s}")
    assert done.returncode == 5, done.stderr
    assert completed == "40"
    # 40 items of 20 ms; a push in the loop's thread would add a second per push when hanging.
    assert float(work_s) < 2.5, done.stderr
    assert "jobmeter: backfill 'orders' cannot push to the Pushgateway at" in done.stderr
    assert done.stderr.count("cannot push") == 1, done.stderr  # once, not at every interval
    assert "Traceback" not in done.stderr, done.stderr
    assert exit_s < BACKFILL_PUSH_TIMEOUT_S + 1.0 + MARGIN_S, done.stderr
