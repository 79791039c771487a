"""What a backfill shows: a rich bar on a terminal (a real pty), log lines elsewhere, or nothing."""

from __future__ import annotations

import os
import pty
import re
import subprocess

import pytest

from _support.backfill import strip_ansi, worker, worker_env
from _support.terminal import read_terminal
from jobmeter.backfill._progress import status_line
from jobmeter.backfill._snapshot import Snapshot


def _run_on_pty(*args: str) -> tuple[int, str, str]:
    """Run the worker with stderr on a pseudo-terminal; (exit status, terminal text, stdout)."""
    master, slave = pty.openpty()
    env = worker_env(TERM="xterm-256color", COLUMNS="160", LINES="24")
    proc = worker(*args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    screen = read_terminal(master)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=30)
    return proc.returncode, screen, out


def test_a_terminal_gets_a_rich_bar_with_count_rate_and_eta() -> None:
    code, screen, out = _run_on_pty("terminal", "--items", "40", "--sleep", "0.05")
    assert code == 0, screen
    assert out == "finished\n"
    text = strip_ansi(screen)
    assert "━" in screen  # rich's bar
    lines = [line for line in text.splitlines() if "orders" in line]
    final = lines[-1]
    assert "orders succeeded" in final
    assert "40/40 days" in final
    assert re.search(r"[\d.,]+ day/s", final), final
    assert "ETA 0s" in final
    assert "1 failed" in final
    # The bar was drawn while it ran, not only at the end.
    assert any(re.search(r"\b([1-9]|[1-3]\d)/40 days\b", line) for line in lines), lines
    assert "jobmeter: backfill" not in text  # no log lines on a terminal


def test_progress_false_shows_nothing_on_a_terminal() -> None:
    code, screen, out = _run_on_pty("terminal", "--items", "5", "--sleep", "0", "--no-progress")
    assert code == 0
    assert out == "finished\n"
    assert screen == ""


def test_a_pipe_gets_a_log_line_every_interval_and_one_at_the_end() -> None:
    proc = worker("terminal", "--items", "40", "--sleep", "0.05", "--log-interval", "0.3",
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "finished\n"
    lines = err.splitlines()
    assert all(line.startswith("jobmeter: backfill orders") for line in lines), lines
    assert "\x1b" not in err
    periodic = [line for line in lines if line.startswith("jobmeter: backfill orders: ")]
    assert len(periodic) >= 2
    first = re.match(r"jobmeter: backfill orders: (\d+)/40 days \(([\d.]+)%\)", periodic[0])
    assert first, periodic[0]
    assert float(first.group(2)) == pytest.approx(int(first.group(1)) / 40 * 100, abs=0.05)
    final = lines[-1]
    assert final.startswith("jobmeter: backfill orders succeeded: 40/40 days (100.0%), ")
    assert ", ETA 0s, 1 failed, elapsed " in final


def test_progress_false_writes_no_line() -> None:
    proc = worker("terminal", "--items", "5", "--sleep", "0.05", "--log-interval", "0.05",
                  "--no-progress", stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert (out, err) == ("finished\n", "")


def test_status_line_format() -> None:
    s = Snapshot(started=0.0, done=100, skipped=20, failed={"E": 3}, retries={"t": 4},
                 rate_limit_hits={"429": 2}, total=365, rate=4.123)  # fmt: skip
    assert status_line("orders-2024", "day", s, 75.0) == (
        "jobmeter: backfill orders-2024: 123/365 days (33.7%), 4.12 day/s, ETA 59s, 3 failed, "
        "20 skipped, 4 retries, 2 rate-limited, elapsed 1m15s"
    )
    unknown = Snapshot(started=0.0, done=5)
    assert status_line("x", "batch", unknown, 3.0) == (
        "jobmeter: backfill x: 5 batches, ? batch/s, elapsed 3s"
    )
    nearly = Snapshot(started=0.0, done=9, total=10, rate=5.0)
    assert ", ETA <1s, " in status_line("y", "item", nearly, 1.0)
    retried = Snapshot(started=0.0, done=7, failed={"E": 3}, retried={"done": 2, "failed": 1})
    assert status_line("z", "item", retried, 1.0) == (
        "jobmeter: backfill z: 10 items, ? item/s, 3 failed, 3 failed retried, elapsed 1s"
    )
