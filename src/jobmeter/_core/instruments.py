"""Instruments, the jobmeter way: one set per meter, and the table form that defines them.

``PerMeter`` keeps the one set of a collector family's instruments for each
meter. The SDK keeps the first instrument of a name on a meter and drops a
second one's callbacks, so collectors of one name on one provider must share
one set, or their asynchronous points would be lost. Proxy meters (collectors
made before ``configure()``) are new objects at every ``get_meter()`` but bind
to one real meter later: those are keyed by name. The registry forgets its
sets' figures in a forked child and at ``jobmeter.testing.reset()``.

``DURATION_BUCKETS`` are the boundaries of every histogram of seconds, and
``make_key`` the identity of an attribute set (``typed_key`` the SDK's, which
tells ``True``, ``1`` and ``1.0`` apart). ``Instrument`` is one row of a
metric-definition table (name, kind, unit,
description: what docs/metrics.md lists); ``observe()`` creates the
asynchronous instrument a row describes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.util.types import AttributeValue

from jobmeter._core import fork, otel_private, reset

T = TypeVar("T")

Kind = Literal["counter", "up_down_counter", "gauge", "histogram"]
Callback = Callable[[CallbackOptions], Iterable[Observation]]
Attributes = Mapping[str, AttributeValue]
Key = frozenset[tuple[str, Any]]

# Seconds, from 100 us hot-loop blocks to day-long backfills: every histogram of
# seconds uses them. The SDK default (0 ... 10000) would put every block under
# 5 s into one bucket (opentelemetry-python #4527).
DURATION_BUCKETS: Final = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
)  # fmt: skip


def make_key(attributes: Attributes) -> Key:
    """A hashable identity of an attribute set; sequences become tuples."""
    try:
        return frozenset(attributes.items())
    except TypeError:
        return frozenset(
            (k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in attributes.items()
        )


def typed_key(attributes: Attributes) -> frozenset[tuple[Any, ...]]:
    """Like ``make_key``, but True, 1 and 1.0 are told apart, as the SDK's histograms do."""
    return frozenset(
        (k, type(v), tuple(v) if isinstance(v, list | tuple) else v) for k, v in attributes.items()
    )


class Instrument(NamedTuple):
    """One asynchronous instrument of a metric-definition table."""

    name: str
    kind: Kind
    unit: str
    description: str


#: ``hw.energy``, of GPUs (GPUCollector) and of CPU packages and DRAM (HostCollector): one
#: description, so that a scrape page shows them as one family.
HW_ENERGY: Final = Instrument(
    "hw.energy", "counter", "J",
    "Energy the component used: GPUs since their driver loaded (where they report it), CPU "
    "packages and DRAM (RAPL) since jobmeter first read them.",
)  # fmt: skip


def histogram(
    meter: Meter, instrument: Instrument, boundaries: Sequence[float] = DURATION_BUCKETS
) -> Histogram:
    """Create the histogram ``instrument`` describes (seconds get ``DURATION_BUCKETS``)."""
    return meter.create_histogram(
        instrument.name, unit=instrument.unit, description=instrument.description,
        explicit_bucket_boundaries_advisory=list(boundaries),
    )  # fmt: skip


def observe(meter: Meter, instrument: Instrument, callback: Callback) -> None:
    """Create the asynchronous ``instrument`` on ``meter``, read by ``callback`` at collection."""
    create = {
        "counter": meter.create_observable_counter,
        "up_down_counter": meter.create_observable_up_down_counter,
        "gauge": meter.create_observable_gauge,
    }[instrument.kind]
    create(instrument.name, [callback], unit=instrument.unit, description=instrument.description)


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
