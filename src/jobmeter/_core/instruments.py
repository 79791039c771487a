"""Instruments, the jobmeter way: one set per meter, and the table form that defines them.

``PerMeter`` keeps the one set of a collector family's instruments for each
meter. The SDK keeps the first instrument of a name on a meter and drops a
second one's callbacks, so collectors of one name on one provider must share
one set, or their asynchronous points would be lost. Proxy meters (collectors
made before ``configure()``) are new objects at every ``get_meter()`` but bind
to one real meter later: those are keyed by name. The registry forgets its
sets' figures in a forked child and at ``jobmeter.testing.reset()``.

``Instrument`` is one row of a metric-definition table (name, kind, unit,
description: what docs/metrics.md lists); ``observe()`` creates the
asynchronous instrument a row describes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Final, Generic, Literal, NamedTuple, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from jobmeter._core import fork, otel_private, reset

T = TypeVar("T")

Kind = Literal["counter", "up_down_counter", "gauge"]
Callback = Callable[[CallbackOptions], Iterable[Observation]]


class Instrument(NamedTuple):
    """One asynchronous instrument of a metric-definition table."""

    name: str
    kind: Kind
    unit: str
    description: str


_CREATE: Final = {
    "counter": Meter.create_observable_counter,
    "up_down_counter": Meter.create_observable_up_down_counter,
    "gauge": Meter.create_observable_gauge,
}


def observe(meter: Meter, instrument: Instrument, callback: Callback) -> None:
    """Create ``instrument`` on ``meter``, read by ``callback`` at each collection."""
    _CREATE[instrument.kind](
        meter, instrument.name, [callback], unit=instrument.unit,
        description=instrument.description,
    )  # fmt: skip


class PerMeter(Generic[T]):
    """The one ``T`` of each meter, made by ``make(name, meter)`` on first use.

    Args:
        make: builds the instruments of one meter.
        after_fork: called on each ``T`` in a forked child, where the parent's
            figures are the parent's (and its locks may be held forever).
        forget: empties one ``T`` of its figures at reset, so that what one
            test recorded is not published to the next test's provider.
    """

    def __init__(
        self,
        make: Callable[[str, Meter], T],
        *,
        after_fork: Callable[[T], None] | None = None,
        forget: Callable[[T], None] | None = None,
    ) -> None:
        self._make = make
        self._after_fork = after_fork
        self._forget = forget
        self._by_meter: weakref.WeakKeyDictionary[Meter, T] = weakref.WeakKeyDictionary()
        self._by_proxy_name: dict[str, tuple[Meter, T]] = {}
        self._lock = threading.Lock()
        self._hooked = False

    def get(self, name: str, meter: Meter) -> T:
        """The ``T`` of ``meter`` (of ``name`` while ``meter`` is a proxy)."""
        with self._lock:
            if not self._hooked:  # on first use, never at import
                fork.on_fork_in_child_weak(self, "_after_fork_in_child")
                reset.on_reset(self._at_reset, reset.FIGURES)
                self._hooked = True
            if otel_private.is_proxy_meter(meter):
                entry = self._by_proxy_name.get(name)
                if entry is None:
                    entry = self._by_proxy_name[name] = (meter, self._make(name, meter))
                return entry[1]
            found = self._by_meter.get(meter)
            if found is None:
                # A proxy's instruments live on the real meter once a provider is set:
                # a second set there would register its callbacks again, and the SDK
                # keeps only the first (the new set's asynchronous points would be lost).
                entry = self._by_proxy_name.get(name)
                if entry is not None and otel_private.real_meter(entry[0]) is meter:
                    found = entry[1]
                else:
                    found = self._make(name, meter)
                self._by_meter[meter] = found
            return found

    def values(self) -> list[T]:
        """Every ``T`` made so far that is still in use."""
        with self._lock:
            return [*self._by_meter.values(), *(t for _, t in self._by_proxy_name.values())]

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at fork time
        if self._after_fork is not None:
            for found in self.values():
                self._after_fork(found)

    def _at_reset(self) -> None:
        # Sets of a real meter stay with it: the next provider's meters are new
        # objects and get sets of their own. Proxies bind to the next provider.
        if self._forget is not None:
            for found in self.values():
                self._forget(found)
