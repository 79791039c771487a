"""A backfill that dies in an item's body redoes that item when resumed, with exact counts.

Real worker processes (tests/_support/backfill_worker.py ``crash``), real
signals, real checkpoint files. Items 2 and 7 of 10 raise ValueError, caught in
the body and counted failed; item 5 ends the program.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support.backfill import read_checkpoint, worker

ITEMS = 10
BAD = "2,7"
CRASH_AT = 5


def _run(path: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    return worker("crash", "--checkpoint", str(path), "--log", str(log), "--items", str(ITEMS),
                  "--fail", BAD, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _first_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.communicate()
    found: dict[str, Any] = json.loads(line)
    return found


def _events(log: Path) -> list[tuple[str, int]]:
    return [(what, int(i)) for what, i in (line.split() for line in log.read_text().splitlines())]


def _crash_by_signal(path: Path, log: Path, sig: signal.Signals, interval: str) -> int:
    """Run until item 5's body blocks, wait for the periodic write, send ``sig``; the exit code."""
    proc = _run(path, log, "--at", str(CRASH_AT), "--how", "signal", "--interval", interval)
    _first_line(proc)
    assert _first_line(proc) == {"blocked": CRASH_AT}
    if interval != "1000":  # items 0-4 finished: the next periodic write has them
        deadline = time.monotonic() + 30
        while read_checkpoint(path)["counts"]["done"] < CRASH_AT - 1:
            assert time.monotonic() < deadline, "no periodic write"
            time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err or sig == signal.SIGINT, err
    return proc.returncode


@pytest.mark.parametrize(
    ("how", "status", "code"),
    [
        ("exit", "failed", 3),  # sys.exit(3) in the body
        ("raise", "failed", 1),  # an uncaught RuntimeError in the body
        ("bare-raise", "failed", 1),  # the same with no with block: closed at exit
        ("SIGINT", "failed", -signal.SIGINT),  # Ctrl-C: KeyboardInterrupt in the body
        ("SIGTERM", "interrupted", -signal.SIGTERM),
        ("SIGKILL", "running", -signal.SIGKILL),  # the last periodic write
    ],
)
def test_the_item_that_ended_the_program_is_redone_on_resume(
    tmp_path: Path, how: str, status: str, code: int
) -> None:
    path, log = tmp_path / "crashy.json", tmp_path / "items.log"
    if how.startswith("SIG"):
        returncode = _crash_by_signal(path, log, signal.Signals[how], "0.05")
    else:
        extra = ("--bare",) if how.startswith("bare") else ()
        proc = _run(path, log, "--at", str(CRASH_AT), "--how", how.removeprefix("bare-"), *extra)
        _, err = proc.communicate(timeout=60)
        returncode = proc.returncode
        assert ("item 5 crashed" in err) == how.endswith("raise"), err
    assert returncode == code
    crashed = read_checkpoint(path)
    assert crashed["status"] == status
    # Items 0-4 finished (2 failed); item 5 is neither done nor failed: the resume redoes it.
    assert crashed["counts"] == {"done": 4, "failed": {"ValueError": 1}, "skipped": 0}
    assert crashed["failed_items"] == {"ValueError": [2]}
    assert crashed["failed_items_not_kept"] == 0

    again = _run(path, log)
    first = _first_line(again)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert first["resumed_at"] == CRASH_AT
    assert first["failed_items"] == [2]
    final = read_checkpoint(path)
    assert final["status"] == "succeeded"
    assert final["counts"] == {"done": 8, "failed": {"ValueError": 2}, "skipped": 0}
    assert final["failed_items"] == {"ValueError": [2, 7]}
    starts = Counter(i for what, i in _events(log) if what == "start")
    assert starts == {i: 2 if i == CRASH_AT else 1 for i in range(ITEMS)}  # 5 twice, no gap
    finished = Counter(i for what, i in _events(log) if what in ("done", "failed"))
    assert finished == dict.fromkeys(range(ITEMS), 1)  # each item's work ended exactly once


def test_sigkill_before_any_periodic_write_redoes_every_item_since_the_last(
    tmp_path: Path,
) -> None:
    """At-least-once: the work of items 0-4 ended, but no checkpoint write had them yet."""
    path, log = tmp_path / "crashy.json", tmp_path / "items.log"
    assert _crash_by_signal(path, log, signal.SIGKILL, "1000") == -signal.SIGKILL
    crashed = read_checkpoint(path)
    assert crashed["counts"] == {"done": 0, "failed": {}, "skipped": 0}  # the start's write
    assert crashed["failed_items"] == {}

    again = _run(path, log)
    assert _first_line(again)["resumed_at"] == 0
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    final = read_checkpoint(path)
    assert final["counts"] == {"done": 8, "failed": {"ValueError": 2}, "skipped": 0}
    assert final["failed_items"] == {"ValueError": [2, 7]}
    starts = Counter(i for what, i in _events(log) if what == "start")
    assert starts == {i: 2 if i <= CRASH_AT else 1 for i in range(ITEMS)}


def test_a_resume_retries_the_failed_items_and_the_counts_stay_exact(tmp_path: Path) -> None:
    path, log = tmp_path / "crashy.json", tmp_path / "items.log"
    crashed = _run(path, log, "--at", str(CRASH_AT), "--how", "exit")
    crashed.communicate(timeout=60)
    assert crashed.returncode == 3
    resumed = _run(path, log)
    resumed.communicate(timeout=60)
    assert resumed.returncode == 0
    assert read_checkpoint(path)["failed_items"] == {"ValueError": [2, 7]}

    # The upstream is fixed: no item fails any more; the resume retries the failed ones.
    log.unlink()
    retry = worker("crash", "--checkpoint", str(path), "--log", str(log), "--items", str(ITEMS),
                   "--retry", stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    first = _first_line(retry)
    _, err = retry.communicate(timeout=60)
    assert retry.returncode == 0, err
    assert (first["resumed_at"], first["failed_items"]) == (ITEMS, [2, 7])
    assert _events(log) == [("retry", 2), ("done", 2), ("retry", 7), ("done", 7)]
    final = read_checkpoint(path)
    assert final["status"] == "succeeded"
    # First outcomes as they were; the retries' outcomes apart; nothing failed any more.
    assert final["counts"] == {"done": 8, "failed": {"ValueError": 2}, "skipped": 0}
    assert final["retried"] == {"done": 2, "failed": 0, "skipped": 0}
    assert final["failed_items"] == {}


def test_a_retry_that_crashes_keeps_the_item_failed_for_the_next_resume(tmp_path: Path) -> None:
    path, log = tmp_path / "crashy.json", tmp_path / "items.log"
    first = _run(path, log)
    first.communicate(timeout=60)
    assert read_checkpoint(path)["failed_items"] == {"ValueError": [2, 7]}
    retry = _run(path, log, "--retry", "--at", "7", "--how", "exit")  # 2 fails again, 7 crashes
    retry.communicate(timeout=60)
    assert retry.returncode == 3
    saved = read_checkpoint(path)
    assert saved["retried"] == {"done": 0, "failed": 1, "skipped": 0}
    assert saved["failed_items"] == {"ValueError": [2, 7]}
    assert saved["counts"] == {"done": 8, "failed": {"ValueError": 2}, "skipped": 0}
