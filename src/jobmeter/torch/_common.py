"""What the hooks of ``jobmeter.torch`` share: reporting their own faults, inert copies."""

from __future__ import annotations

import logging
from typing import Any

_log = logging.getLogger("jobmeter")
_reported: set[str] = set()


def fault(where: str, exc: BaseException) -> None:
    """Our own failure inside a hook: one warning per kind, never an error in the user's model."""
    if where in _reported:
        return
    _reported.add(where)
    _log.warning(
        "jobmeter.torch: the %s hook failed (%s: %s); the model runs on, without that figure",
        where, type(exc).__name__, exc,
    )  # fmt: skip


class Inert:
    """What a hook becomes in a copy of the model (``torch.save``, ``copy.deepcopy``): nothing.

    The copy is a model of its own; instrument it to measure it. Pickling the live
    hooks would pickle the collector, which holds locks and cannot be pickled.
    """

    __slots__ = ()

    def __call__(self, *args: Any) -> None:
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (inert, ())


def inert() -> Inert:
    """An inert hook (what ``__reduce__`` of a live one returns)."""
    return Inert()
