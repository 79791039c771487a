"""Failed items in one process: when a failure counts, the positions kept, track_failed()."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.backfill import read_checkpoint
from jobmeter.backfill import Backfill
from jobmeter.testing import InMemoryMetrics, in_memory

NAME = "jobmeter.backfill.name"
OUTCOME = "jobmeter.backfill.outcome"
RETRIED = "jobmeter.backfill.items.retried"


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory() as found:
        yield found


def test_an_exception_that_ends_the_backfill_leaves_its_item_uncounted(tmp_path: Path) -> None:
    path = tmp_path / "ended.json"
    bf = Backfill("ended", checkpoint=path, progress=False)

    def run() -> None:
        with bf:
            for i in bf.track(range(10)):
                if i == 4:
                    raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        run()
    saved = read_checkpoint(path)
    assert saved["status"] == "failed"
    assert saved["counts"] == {"done": 4, "failed": {}, "skipped": 0}
    assert saved["failed_items"] == {}
    assert (bf.completed, bf.failed_items()) == (4, [])
    assert list(bf.track(range(3))) == [0, 1, 2]  # after the end, nothing held to count
    assert bf.counts["failed"] == {}

    resumed = Backfill("ended", checkpoint=path, progress=False)
    assert (resumed.completed, resumed.failed_items()) == (4, [])
    redone = list(resumed.track(range(resumed.completed, 10)))
    assert redone == [4, 5, 6, 7, 8, 9]
    assert resumed.counts["done"] == 10


@pytest.mark.parametrize("exception", [ValueError, KeyboardInterrupt, SystemExit])
def test_an_item_counts_failed_once_the_thread_starts_another_loop(
    exception: type[BaseException],
) -> None:
    """Even SystemExit or Ctrl-C: caught, and the program went on with the backfill."""
    bf = Backfill("hours", progress=False)
    for day in range(3):
        try:
            for hour in bf.track(range(4)):
                if (day, hour) == (1, 2):
                    raise exception()
        except exception:
            assert bf.counts["failed"] == {}  # not yet: the program may be ending
    assert bf.counts["done"] == 4 + 2 + 4
    assert bf.counts["failed"] == {"_OTHER": 1}
    assert bf.failed_items() == [4 + 2]  # day 1's loop started at completed=4
    assert bf.completed == 11


def test_inner_failures_count_when_the_enclosing_tracked_loop_goes_on() -> None:
    bf = Backfill("nested", progress=False)
    failed_seen = []
    for day in bf.track(range(3), start=100):
        failed_seen.append(sum(bf.counts["failed"].values()))
        try:
            for hour in bf.track(range(3), start=10 * day):
                if hour == 1 and day < 2:
                    raise KeyError(hour)
        except KeyError:
            pass
    assert failed_seen == [0, 1, 2]  # each counted when the outer loop asked for its next day
    assert bf.failed_items() == [1, 11]
    assert bf.counts["done"] == 1 + 1 + 3 + 3  # hours 0, 10, 20-22 and the three days


def test_break_after_an_inner_failure_counts_it_and_propagation_holds_both() -> None:
    bf = Backfill("both", progress=False)
    for _ in bf.track(range(5), start=100):
        try:
            for _ in bf.track(range(3), start=0):
                raise ValueError
        except ValueError:
            pass
        break  # the program goes on: the inner item 0 counts failed; day 100 is not counted
    assert (bf.failed_items(), bf.counts["done"]) == ([0], 0)

    def run() -> None:
        for _ in bf.track(range(5), start=200):
            for _ in bf.track(range(3), start=300):
                raise ValueError("inner")

    with pytest.raises(ValueError, match="inner"):
        run()
    assert bf.failed_items() == [0]  # both items left by the exception are held
    list(bf.track([]))
    assert bf.failed_items() == [0, 200, 300]
    assert bf.counts["failed"] == {"_OTHER": 3}


def test_a_failure_held_by_a_thread_that_ended_is_never_counted() -> None:
    bf = Backfill("threads", progress=False)

    def work() -> None:
        try:
            for i in bf.track(range(3)):
                if i == 1:
                    raise ValueError
        except ValueError:
            pass  # and the thread ends: its loop never went on

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    list(bf.track([]))  # another thread's new loop does not count it
    assert bf.counts["failed"] == {}
    assert bf.counts["done"] == 1


def test_failures_in_the_body_keep_their_position_and_others_have_none() -> None:
    bf = Backfill("positions", progress=False)
    bf.failed(error_type="OutsideError")  # no item: no position
    for i in bf.track(range(bf.completed, 6)):
        if i in (2, 4):
            bf.failed(error_type=KeyError)
    assert bf.failed_items() == [2, 4]
    assert bf.counts["failed"] == {"OutsideError": 1, "KeyError": 2}
    with pytest.raises(ValueError, match="start must be >= 0"):
        bf.track(range(3), start=-1)


def test_the_first_thousand_positions_are_kept_and_the_rest_counted(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    with Backfill("many", checkpoint=path, progress=False) as bf:
        for _ in bf.track(range(1005), timed=False):
            bf.failed(error_type="E")
    saved = read_checkpoint(path)
    assert saved["failed_items"] == {"E": list(range(1000))}
    assert saved["failed_items_not_kept"] == 5
    assert saved["counts"]["failed"] == {"E": 1005}
    resumed = Backfill("many", checkpoint=path, progress=False)
    assert resumed.failed_items() == list(range(1000))
    assert resumed.counts["failed_items_not_kept"] == 5


def test_track_failed_counts_new_outcomes_apart_and_shrinks_the_list(
    tmp_path: Path, recorded: InMemoryMetrics
) -> None:
    path = tmp_path / "again.json"
    items = list("abcdefgh")
    bf = Backfill("again", checkpoint=path, progress=False)
    for x in bf.track(items):
        if x in "bdf":
            bf.failed(error_type="ValueError")
    assert bf.failed_items() == [1, 3, 5]
    assert recorded.points(RETRIED) == []  # no series until a failed item is retried
    with pytest.raises(ValueError, match="failed item 5 is past its end"):
        bf.track_failed(items[:5])

    seen = []
    for x in bf.track_failed(items):
        seen.append(x)
        if x == "d":
            bf.skipped()
        elif x == "f":
            bf.failed(error_type="KeyError")
    assert seen == ["b", "d", "f"]
    assert bf.failed_items() == [5]
    assert bf.counts["retried"] == {"done": 1, "failed": 1, "skipped": 1}
    assert (bf.counts["done"], bf.counts["skipped"]) == (5, 0)  # first outcomes unchanged
    assert bf.counts["failed"] == {"ValueError": 3}
    assert (bf.completed, bf.progress) == (8, 1.0)  # the resume position did not move
    for outcome, n in (("done", 1), ("failed", 1), ("skipped", 1)):
        assert recorded.value(RETRIED, {NAME: "again", OUTCOME: outcome}) == n
    assert recorded.value("jobmeter.backfill.items", {NAME: "again", OUTCOME: "done"}) == 5

    def crash_in_retry() -> None:
        for _ in bf.track_failed(items):
            raise OSError("still down")

    with pytest.raises(OSError, match="still down"):
        crash_in_retry()
    assert bf.counts["retried"]["failed"] == 1  # held
    list(bf.track([]))
    assert bf.counts["retried"]["failed"] == 2
    bf.close()
    saved = read_checkpoint(path)
    assert saved["failed_items"] == {"_OTHER": [5]}
    assert saved["retried"] == {"done": 1, "failed": 2, "skipped": 1}
    assert saved["counts"] == {"done": 5, "failed": {"ValueError": 3}, "skipped": 0}
