"""One set of instruments per meter, shared by the collectors of one name.

Creating an asynchronous instrument twice on one meter would register its
callbacks twice, so collectors of the same name share one set. Proxy meters
(collectors made before ``configure()``) are new objects at every
``get_meter()`` but bind to one real meter later: those are keyed by name.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from opentelemetry.metrics import Meter

from jobmeter._core import fork
from jobmeter._core.otel_private import is_proxy_meter

T = TypeVar("T")


class PerMeter(Generic[T]):
    """The one ``T`` of each meter, made by ``make`` on first use."""

    def __init__(
        self, make: Callable[[Meter], T], after_fork: Callable[[T], None] | None = None
    ) -> None:
        self._make = make
        self._after_fork = after_fork
        self._by_meter: weakref.WeakKeyDictionary[Meter, T] = weakref.WeakKeyDictionary()
        self._by_proxy_name: dict[str, tuple[Meter, T]] = {}
        self._lock = threading.Lock()
        self._hooked = False

    def get(self, name: str, meter: Meter) -> T:
        """The ``T`` of ``meter`` (of ``name`` while ``meter`` is a proxy)."""
        with self._lock:
            if not self._hooked:  # on first use, never at import
                fork.on_fork_in_child_weak(self, "_after_fork_in_child")
                self._hooked = True
            if is_proxy_meter(meter):
                entry = self._by_proxy_name.get(name)
                if entry is None:
                    entry = self._by_proxy_name[name] = (meter, self._make(meter))
                return entry[1]
            found = self._by_meter.get(meter)
            if found is None:
                # A proxy's instruments live on the real meter once a provider is set:
                # a second set there would register its callbacks again, and the SDK
                # keeps only the first (the new set's asynchronous points would be lost).
                entry = self._by_proxy_name.get(name)
                if entry is not None and getattr(entry[0], "_real_meter", None) is meter:
                    found = entry[1]
                else:
                    found = self._make(meter)
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
