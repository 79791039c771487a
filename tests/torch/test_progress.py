"""jobmeter.torch.epochs(): a training loop's batches as one Backfill, read from the metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import jobmeter
import jobmeter.torch
from jobmeter.testing import InMemoryMetrics, in_memory

ITEMS = "jobmeter.backfill.items"
NAME = "jobmeter.backfill.name"


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory(service_name="tests") as metrics:
        yield metrics


def loader(samples: int = 10, batch_size: int = 4) -> DataLoader[tuple[torch.Tensor, ...]]:
    data = TensorDataset(torch.randn(samples, 3), torch.randn(samples, 1))
    return DataLoader(data, batch_size=batch_size)


def test_batches_of_every_epoch_count_and_set_the_total(recorded: InMemoryMetrics) -> None:
    """3 epochs of 10 samples in batches of 4: 9 batches done, of 9 planned, progress 1."""
    batches = loader()
    seen = []
    with jobmeter.torch.epochs(3, jobmeter.Backfill("train", progress=False)) as training:
        for epoch in training:
            for x, _y in training.batches(batches):
                seen.append((epoch, x.shape[0]))
            assert training.epoch == epoch
    assert seen == [(e, n) for e in range(3) for n in (4, 4, 2)]
    bf = training.backfill
    assert bf.closed
    assert bf.counts["done"] == 9
    assert recorded.value(ITEMS, {NAME: "train", "jobmeter.backfill.outcome": "done"}) == 9
    assert recorded.value("jobmeter.backfill.items.planned", {NAME: "train"}) == 9
    assert recorded.value("jobmeter.backfill.progress", {NAME: "train"}) == 1.0


def test_running_out_of_epochs_ends_the_backfill(recorded: InMemoryMetrics) -> None:
    training = jobmeter.torch.epochs(["warmup", "main"], jobmeter.Backfill("runs", progress=False))
    for _epoch in training:
        for _batch in training.batches(loader(8, 4)):
            pass
        assert not training.backfill.closed
    assert training.backfill.closed
    assert recorded.value(ITEMS, {NAME: "runs", "jobmeter.backfill.outcome": "done"}) == 4
    assert training.backfill.total == 4


def test_a_failing_batch_counts_failed_and_break_counts_nothing(recorded: InMemoryMetrics) -> None:
    """As Backfill.track(): the batch left by break is not counted, the one that raised fails."""
    bf = jobmeter.Backfill("faults", progress=False)
    training = jobmeter.torch.epochs(2, bf)
    with pytest.raises(ValueError, match="bad batch"):  # noqa: PT012 - the loop is the subject
        for epoch in training:
            for index, _batch in enumerate(training.batches(loader(12, 4))):
                if epoch == 0 and index == 2:
                    break
                if epoch == 1 and index == 1:
                    raise ValueError("bad batch")
    assert bf.counts["done"] == 3
    for _batch in training.batches(loader(4, 4)):  # the program goes on: the failure counts
        pass
    assert bf.counts["done"] == 4
    assert recorded.value(ITEMS, {NAME: "faults", "jobmeter.backfill.outcome": "failed"}) == 1


def test_a_loader_without_length_leaves_the_total_unknown(recorded: InMemoryMetrics) -> None:
    class Stream(IterableDataset[int]):
        def __iter__(self) -> Iterator[int]:
            return iter(range(5))

    with jobmeter.torch.epochs(2, jobmeter.Backfill("stream", progress=False)) as training:
        for _ in training:
            for _ in training.batches(DataLoader(Stream(), batch_size=2)):
                pass
    assert training.backfill.total is None
    assert training.backfill.counts["done"] == 6


def test_a_name_makes_a_backfill_of_batches(recorded: InMemoryMetrics) -> None:
    training = jobmeter.torch.epochs(1, "fit")
    for _ in training:
        for _ in training.batches(loader(4, 2)):
            pass
    assert training.backfill.name == "fit"
    assert training.backfill.unit == "batch"
    assert recorded.value(ITEMS, {NAME: "fit", "jobmeter.backfill.outcome": "done"}) == 2


@pytest.mark.parametrize(
    ("epochs", "error"), [(-1, ValueError), (True, TypeError), (2.5, TypeError)]
)
def test_bad_epochs_raise(epochs: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="epochs"):
        jobmeter.torch.epochs(epochs)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="backfill"):
        jobmeter.torch.epochs(2, backfill=3)  # type: ignore[call-overload]
