"""``epochs()``: a training loop's batches counted as one ``Backfill``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar, overload

from jobmeter.backfill import Backfill

T = TypeVar("T")
B = TypeVar("B")


class Epochs(Generic[T]):
    """The epochs of a training loop; their batches count in :attr:`backfill`.

    Returned by :func:`epochs`. Iterate over it for the epochs and over
    :meth:`batches` for each epoch's batches. The backfill ends when the
    epochs run out, at the end of a ``with`` block, or at :meth:`close`.

    Attributes:
        backfill: the :class:`jobmeter.Backfill` counting the batches.
        epoch: the epoch in progress (None before the first).
    """

    def __init__(self, items: Iterable[T], count: int | None, backfill: Backfill) -> None:
        self._items = items
        self._count = count
        self.backfill = backfill
        self.epoch: T | None = None

    def __iter__(self) -> Iterator[T]:
        for epoch in self._items:
            self.epoch = epoch
            yield epoch
        self.backfill.close()

    def batches(self, loader: Iterable[B]) -> Iterable[B]:
        """Iterate over ``loader`` (a ``DataLoader``), counting each batch when its body ends.

        The first loader with ``len()`` sets the backfill's total to the
        number of epochs times its length, when both are known and no total
        was set: progress and ETA are then the whole training's. A batch
        whose body raises counts as failed; ``break`` counts nothing.
        """
        backfill = self.backfill
        if backfill.total is None and self._count is not None:
            try:
                length = len(loader)  # type: ignore[arg-type]
            except TypeError:  # an IterableDataset's loader: no total
                length = None
            if length is not None:
                backfill.set_total(backfill.completed + self._count * length)
        return backfill.track(loader)

    def close(self, *, success: bool = True) -> None:
        """End the backfill (as ``Backfill.close()``)."""
        self.backfill.close(success=success)

    def __enter__(self) -> Epochs[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: object, tb: TracebackType | None
    ) -> None:
        self.backfill.__exit__(exc_type, exc, tb)


@overload
def epochs(epochs: int, backfill: Backfill | str = ...) -> Epochs[int]: ...
@overload
def epochs(epochs: Iterable[T], backfill: Backfill | str = ...) -> Epochs[T]: ...
def epochs(
    epochs: int | Iterable[T], backfill: Backfill | str = "train"
) -> Epochs[int] | Epochs[T]:
    """The epochs of a training loop, with progress, rate and ETA in batches.

    ```python
    with jobmeter.torch.epochs(10) as training:
        for epoch in training:
            for x, y in training.batches(loader):
                ...
    ```

    Args:
        epochs: the number of epochs (``range(epochs)``), or the epochs themselves.
        backfill: the backfill's name, for ``Backfill(name, unit="batch")``;
            or a :class:`jobmeter.Backfill` of your own (checkpoint,
            Pushgateway, attributes).

    Returns:
        An :class:`Epochs` to iterate over.

    Raises:
        TypeError, ValueError: ``epochs`` is neither a count nor an iterable,
            or the name cannot be a backfill's.
    """
    if isinstance(backfill, str):
        backfill = Backfill(backfill, unit="batch")
    elif not isinstance(backfill, Backfill):
        raise TypeError(f"backfill must be a name or a Backfill, got {type(backfill).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int | Iterable):
        raise TypeError(
            f"epochs must be a number of epochs or an iterable of them, got {type(epochs).__name__}"
        )
    if isinstance(epochs, int):
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        return Epochs(range(epochs), epochs, backfill)
    try:
        count: int | None = len(epochs)  # type: ignore[arg-type]
    except TypeError:  # a generator of epochs
        count = None
    return Epochs(epochs, count, backfill)
