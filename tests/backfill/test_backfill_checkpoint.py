"""Backfill checkpoints: resume after a restart or a SIGKILL, SIGTERM and exit, failed writes."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from _support.backfill import FakeClock, read_checkpoint, worker, worker_env
from _support.otlp_receiver import OtlpReceiver
from jobmeter.backfill import Backfill
from jobmeter.backfill._checkpoint import CheckpointError


def test_a_restart_resumes_every_count(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    first = Backfill("orders", total=50, checkpoint=path, progress=False)
    first.done(7)
    first.skipped(2)
    first.failed(3, error_type=ValueError)
    first.retry("timeout")
    first.rate_limited(1.0, reason="429")
    started = read_checkpoint(path)["started"]
    first.close(success=False)
    saved = read_checkpoint(path)
    assert saved["status"] == "failed"
    assert saved["last_success"] is None

    clock = FakeClock()
    second = Backfill("orders", checkpoint=path, progress=False, clock=clock)
    assert second.counts == {
        "done": 7, "failed": {"ValueError": 3}, "skipped": 2, "retries": {"timeout": 1},
        "rate_limit_hits": {"429": 1}, "completed": 12, "total": 50,
        "retried": {"done": 0, "failed": 0, "skipped": 0}, "failed_items_not_kept": 0,
    }  # fmt: skip
    clock.advance(2.0)
    assert second.rate == 0.0  # the resumed counts are not a rate
    second.done(38)
    second.close()
    saved = read_checkpoint(path)
    assert saved["status"] == "succeeded"
    assert saved["counts"] == {"done": 45, "failed": {"ValueError": 3}, "skipped": 2}
    assert saved["started"] == started  # the first start, kept across the resume
    assert saved["last_success"] >= started


def test_resume_false_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "again.json"
    with Backfill("again", checkpoint=path, progress=False) as first:
        first.done(5)
    second = Backfill("again", checkpoint=path, resume=False, progress=False)
    assert second.completed == 0
    assert read_checkpoint(path)["counts"]["done"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "other"}', "not a jobmeter backfill checkpoint"),
        ('{"format": "jobmeter.backfill.checkpoint", "version": 9}', "version 9 is not supported"),
        (None, "belongs to the backfill 'someone-else', not 'mine'"),
        ({"counts": {"done": 1, "lost": 2}}, "unknown outcome 'lost' in counts; accepted: done"),
        ({"counts": {"done": -4}}, "counts.done must be a whole number >= 0, got -4"),
        ({"total": 1, "counts": {"done": 2}}, "total=1 is less than the 2 items"),
        ({"counts": {"failed": {"E": 1}}, "failed_items": {"E": [-3]}},
         r"failed_items\['E'\]\[0\] must be a whole number >= 0, got -3"),
        ({"counts": {"failed": {"E": 2}}, "failed_items": {"E": [4], "F": [4]}},
         "failed_items lists position 4 twice"),
        ({"counts": {"failed": {"E": 1}}, "failed_items": {"E": [4, 5]}},
         "failed_items has 2 items .not_kept included., more than the 1 counted failed"),
        ({"counts": {"failed": {"E": 1}}, "failed_items": {"E": 4}},
         r"failed_items\['E'\] must be a list, got 4"),
        ({"retried": {"done": 1, "lost": 2}}, "unknown outcome 'lost' in retried"),
        ({"retried": {"done": -1}}, "retried.done must be a whole number >= 0, got -1"),
    ],
)  # fmt: skip
def test_a_checkpoint_that_cannot_be_resumed_is_a_clear_error(
    tmp_path: Path, content: str | dict[str, object] | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    good = {"format": "jobmeter.backfill.checkpoint", "version": 1, "name": "mine",
            "status": "running", "total": None, "started": 1.0, "last_success": None,
            "counts": {"done": 0}}  # fmt: skip
    if content is None:
        path.write_text(json.dumps({**good, "name": "someone-else"}))
    elif isinstance(content, dict):
        path.write_text(json.dumps({**good, **content}))
    else:
        path.write_text(content)
    before = path.read_text()
    with pytest.raises(CheckpointError, match=message) as raised:
        Backfill("mine", checkpoint=path, progress=False)
    assert "resume=False" in str(raised.value)
    assert path.read_text() == before  # never overwritten


def test_a_checkpoint_without_failed_items_still_resumes(tmp_path: Path) -> None:
    """Files written before failed positions were kept: no positions, no retries."""
    path = tmp_path / "old.json"
    path.write_text(json.dumps({
        "format": "jobmeter.backfill.checkpoint", "version": 1, "name": "old",
        "status": "failed", "total": 10, "started": 1.0, "last_success": None,
        "counts": {"done": 6, "failed": {"ValueError": 1}, "skipped": 0},
        "retries": {}, "rate_limit_hits": {}, "updated": 2.0,
    }))  # fmt: skip
    bf = Backfill("old", checkpoint=path, progress=False)
    assert (bf.completed, bf.failed_items()) == (7, [])
    assert bf.counts["retried"] == {"done": 0, "failed": 0, "skipped": 0}
    assert list(bf.track_failed(range(10))) == []
    bf.close()
    saved = read_checkpoint(path)
    assert saved["counts"] == {"done": 6, "failed": {"ValueError": 1}, "skipped": 0}
    assert (saved["failed_items"], saved["failed_items_not_kept"]) == ({}, 0)


def test_a_checkpoint_over_the_position_limit_keeps_the_first(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({
        "format": "jobmeter.backfill.checkpoint", "version": 1, "name": "big",
        "status": "running", "total": None, "started": 1.0, "last_success": None,
        "counts": {"failed": {"E": 1300}}, "failed_items": {"E": list(range(1200, 0, -1))},
        "failed_items_not_kept": 100,
    }))  # fmt: skip
    bf = Backfill("big", checkpoint=path, progress=False)
    assert bf.failed_items() == list(range(1, 1001))
    assert bf.counts["failed_items_not_kept"] == 300


def test_a_failing_write_is_one_warning_and_the_job_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    path = directory / "cp.json"
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        bf = Backfill("fragile", checkpoint=path, checkpoint_interval=0.05, progress=False)
        shutil.rmtree(directory)  # the directory vanishes under the running job
        for _ in range(20):
            bf.done()
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while bf._outputs.checkpoint is not None and not bf._outputs.checkpoint._failing:
            assert time.monotonic() < deadline, "no write was tried"
            time.sleep(0.02)
        directory.mkdir()  # back: the next write lands
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "the checkpoint was never written again"
            time.sleep(0.02)
        bf.close()
    warnings = [r for r in caplog.records if "cannot write its checkpoint" in r.getMessage()]
    assert len(warnings) == 1
    assert read_checkpoint(path)["counts"]["done"] == 20


def test_disk_full_writes_are_one_warning_and_the_counts_survive(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write fail with EFBIG, like a full disk."""
    path = tmp_path / "full.json"
    proc = worker("hold", "--checkpoint", str(path), "--interval", "0.05", "--then", "exit",
                  "--fsize", stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["counts"]["done"] == 123
    assert err.count("cannot write its checkpoint") == 1
    assert "File too large" in err
    assert not path.exists()


def test_sigkill_half_way_then_restart_finishes_with_the_exact_count(tmp_path: Path) -> None:
    path = tmp_path / "resumable.json"
    log = tmp_path / "processed.log"
    args = ("resume", "--checkpoint", str(path), "--log", str(log), "--items", "200")
    proc = worker(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (path.exists() and read_checkpoint(path)["counts"]["done"] >= 100):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the worker never got half-way"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(path)
    assert killed_at["status"] == "running"
    assert 100 <= killed_at["counts"]["done"] < 200

    again = worker(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert json.loads(out.splitlines()[0])["resumed_at"] == killed_at["counts"]["done"]
    final = read_checkpoint(path)
    assert final["status"] == "succeeded"
    assert final["counts"] == {"done": 200, "failed": {}, "skipped": 0}
    processed = {int(line) for line in log.read_text().split()}
    assert processed == set(range(200))  # every item at least once


def test_sigterm_writes_the_last_counts_and_dies_by_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "held.json"
    proc = worker("hold", "--checkpoint", str(path), stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["ready"]
    assert read_checkpoint(path)["counts"]["done"] == 0  # the interval is long: only the first
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, err
    saved = read_checkpoint(path)
    assert saved["status"] == "interrupted"
    assert saved["counts"] == {"done": 123, "failed": {"TimeoutError": 2}, "skipped": 0}
    assert saved["last_success"] is None


@pytest.mark.parametrize("configure", ["before", "after"])
def test_sigterm_also_sends_the_last_otlp_export(tmp_path: Path, configure: str) -> None:
    """Whichever came first, configure() or the Backfill, SIGTERM exports the last counts."""
    with OtlpReceiver() as receiver:
        env = worker_env(
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=receiver.http_endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="600000",
        )
        args = ("hold", "--checkpoint", str(tmp_path / "cp.json"), "--configure", configure)
        proc = worker(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["ready"]
        assert receiver.points("jobmeter.backfill.items") == []
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM, err
        points = receiver.points("jobmeter.backfill.items")
        done = [p.value for p in points if p.attributes["jobmeter.backfill.outcome"] == "done"]
        assert done == [123]
        assert read_checkpoint(tmp_path / "cp.json")["status"] == "interrupted"


@pytest.mark.parametrize(
    ("then", "status", "code"), [("exit", "succeeded", 0), ("raise", "failed", 1)]
)
def test_interpreter_exit_closes_an_open_backfill(
    tmp_path: Path, then: str, status: str, code: int
) -> None:
    path = tmp_path / "exit.json"
    proc = worker("hold", "--checkpoint", str(path), "--then", then,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    saved = read_checkpoint(path)
    assert saved["status"] == status
    assert saved["counts"]["done"] == 123
    assert (saved["last_success"] is not None) == (status == "succeeded")


def test_no_periodic_write_lands_after_the_final_one(tmp_path: Path) -> None:
    """The background thread may wake while the backfill ends: the end's status stays."""
    path = tmp_path / "ordered.json"
    bf = Backfill("ordered", checkpoint=path, checkpoint_interval=1000, progress=False)
    bf.done(3)
    bf.close()
    checkpoint = bf._outputs.checkpoint
    assert checkpoint is not None
    assert checkpoint.write(bf._snapshot(), "running") is False  # a late periodic write
    saved = read_checkpoint(path)
    assert (saved["status"], saved["counts"]["done"]) == ("succeeded", 3)
