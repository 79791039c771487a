"""``MetricsCollector``: the base of every collector, and ``measure()``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.util.types import AttributeValue

from jobmeter._version import __version__
from jobmeter.collector._measure import Measurement
from jobmeter.collector._series import Bound
from jobmeter.collector._totals import totals_for


class MetricsCollector:
    """The base of every jobmeter collector: a Meter plus ``measure()``.

    A collector's name is its OpenTelemetry instrumentation scope (the Meter's
    name). Subclasses add their own instruments with ``self.meter.create_*``.

    Args:
        name: the collector's name, used as the Meter (instrumentation scope) name.
        attributes: attributes added to every point ``measure()`` records.
        meter_provider: where the instruments live; defaults to the global
            MeterProvider (the one ``jobmeter.configure()`` installs).

    Example:
        >>> ops = MetricsCollector("etl")
        >>> with ops.measure("load", {"table": "orders"}):
        ...     pass
    """

    def __init__(
        self,
        name: str,
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"collector name must be a non-empty string, got {name!r}")
        self.name = name
        self.attributes: Mapping[str, AttributeValue] = MappingProxyType(
            _checked_attributes("attributes", attributes)
        )
        provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
        self.meter: Meter = provider.get_meter(name, __version__)
        self._totals = totals_for(name, self.meter)
        # (operation, *attribute items) -> (its Bound, the value types unless all str).
        self._bound: dict[Any, tuple[Bound, tuple[type, ...] | None]] = {}
        self._epoch = self._totals.epoch

    def measure(
        self,
        operation: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        resources: bool = True,
        gpu: bool = False,
        peak_memory: bool | None = None,
        energy: bool = True,
    ) -> Measurement:
        """Measure a block of work, as a ``with`` block or a decorator.

        Records ``jobmeter.operation.duration`` and, with ``resources=True``,
        the process's CPU time, disk I/O and memory during the block. Points
        carry ``operation.name``, the collector's and the given attributes, and
        ``error.type`` if the block raises; the exception propagates unchanged.

        Args:
            operation: the operation's name, a low-cardinality string.
            attributes: extra attributes for this operation; not modified.
            resources: False records duration only, for hot loops.
            gpu: also record the GPU memory this process holds when the block
                ends (``jobmeter.operation.gpu.memory.usage``) and the energy of
                the GPUs it may use; nothing without a GPU. Costs a few driver
                queries (NVML or amdsmi) per block.
            peak_memory: also record the process's peak RSS while the block ran
                (``jobmeter.operation.memory.peak``), from the kernel's high-water
                mark, which it resets. None (the default) takes it while a run
                records (``jobmeter.Run``, ``jobmeter run``); True always; False
                never. Needs ``resources=True``. Costs about 3 us per block.
            energy: also record the machine's energy while the block ran
                (``jobmeter.operation.energy`` by ``hw.type``: ``cpu`` and
                ``dram`` from RAPL, ``gpu`` with ``gpu=True``), where the
                counters can be read; nothing elsewhere. Needs
                ``resources=True``. ``JOBMETER_ENERGY=false`` turns it off for
                every block.

        Returns:
            A :class:`Measurement`, usable as ``with`` block or decorator.
        """
        if peak_memory and not resources:
            raise ValueError("peak_memory=True needs resources=True")
        totals = self._totals
        if self._epoch is not totals.epoch:  # the figures were forgotten (fork, reset)
            self._bound, self._epoch = {}, totals.epoch
        # The set as given, bound on first use: no validation, merging or hashing of
        # the merged dict on later blocks. Unhashable values (lists) bind every time.
        try:
            key: Any = (operation, *attributes.items()) if attributes else operation
            found = self._bound.get(key)
        except (AttributeError, TypeError):
            key, found = None, None
        if found is None or (found[1] is not None and found[1] != _types(attributes)):
            bound = self._bind(operation, attributes, key)
        else:
            bound = found[0]
        return Measurement(bound, resources, gpu and resources, peak_memory, energy and resources)

    def _bind(
        self, operation: str, attributes: Mapping[str, AttributeValue] | None, key: Any
    ) -> Bound:
        """Validate and merge the attributes, bind them, and remember the binding under ``key``."""
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"operation must be a non-empty string, got {operation!r}")
        merged: dict[str, AttributeValue] = {**self.attributes}
        if attributes:
            merged.update(_checked_attributes("attributes", attributes))
        merged["operation.name"] = operation
        bound = self._totals.bind(merged)
        if key is not None and bound.kept:
            if len(self._bound) >= _BOUND_KEPT:
                self._bound = {}  # the same sets in ever new orders: start over
            # Values equal to a str are str; 1 == True == 1.0 need their types compared.
            types = _types(attributes)
            self._bound[key] = (bound, None if all(t is str for t in types) else types)
        return bound

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _checked_attributes(
    setting: str, attributes: Mapping[str, AttributeValue] | None
) -> dict[str, AttributeValue]:
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(
            f"{setting} must be a mapping of str to str, bool, int, float or a sequence of "
            f"those, got {type(attributes).__name__}"
        )
    checked = dict(attributes)
    for key, value in checked.items():
        _check_attribute(setting, key, value)
    return checked


#: Bindings a collector remembers; past it (unbounded values), it starts over.
_BOUND_KEPT: Final = 4096


def _types(attributes: Mapping[str, AttributeValue] | None) -> tuple[type, ...]:
    return tuple(map(type, attributes.values())) if attributes else ()


_SCALAR: Final = (str, bool, int, float)
_ACCEPTED: Final = "str, bool, int, float, or a list or tuple of one of those types"


def _check_attribute(setting: str, key: object, value: object) -> None:
    """Refuse, with a clear TypeError or ValueError, what OpenTelemetry would mishandle.

    Left to the SDK, a non-string key or an object is rewritten on every collection
    with a warning each time, an empty key is dropped, None and bytes reach the
    exposition as ``None`` and ``b'...'``, and a dict or set fails deep inside with
    "unhashable type".
    """
    if not isinstance(key, str):
        raise TypeError(f"{setting}: keys must be str, got {type(key).__name__} key {_short(key)}")
    if not key:
        raise ValueError(f"{setting}: keys must be non-empty; the SDK drops an empty key")
    if isinstance(value, _SCALAR):
        return
    if isinstance(value, list | tuple):
        kinds = {type(item) for item in value}
        if all(isinstance(item, _SCALAR) for item in value) and len(kinds) <= 1:
            return
        raise TypeError(
            f"{setting}: {key!r} must be {_ACCEPTED}; got a {type(value).__name__} of "
            + ", ".join(sorted(kind.__name__ for kind in kinds))
        )
    raise TypeError(f"{setting}: {key!r} must be {_ACCEPTED}; got {type(value).__name__}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
