"""``Measurement`` and ``MetricsCollector``."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from time import perf_counter
from types import MappingProxyType, TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast

from opentelemetry import metrics
from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.util.types import AttributeValue

from jobmeter._core import fork, nvml, probes
from jobmeter._rundata import routing
from jobmeter._version import __version__
from jobmeter.collector._totals import Attributes, OperationStore, make_key, store_for

P = ParamSpec("P")
R = TypeVar("R")

_getrusage = probes.getrusage
_RUSAGE_SELF = probes.RUSAGE_SELF
_rss_bytes = probes.rss_bytes
_BLOCK = probes.BLOCK_SIZE
_SPAN_MIN_S = routing.SPAN_MIN_S


def error_type(exc_type: type[BaseException]) -> str:
    """The ``error.type`` of an exception: its class name, module-qualified unless builtin."""
    module = exc_type.__module__
    if module == "builtins":
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


class Measurement:
    """A measured block: a context manager, and a decorator of sync and async functions.

    Returned by :meth:`MetricsCollector.measure`. As a decorator each call is
    measured on its own, so decorated functions may run concurrently and
    recursively. As a ``with`` block, the object may be nested in itself but
    should not be entered from two threads at once: call ``measure()`` again.
    """

    __slots__ = ("_attributes", "_gpu", "_key", "_resources", "_stack", "_store")

    def __init__(
        self,
        store: OperationStore,
        attributes: dict[str, AttributeValue],
        resources: bool,
        gpu: bool = False,
    ) -> None:
        self._store = store
        self._attributes = attributes
        self._key = make_key(attributes)
        self._resources = resources
        self._gpu = gpu
        self._stack: list[tuple[Any, ...]] = []

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        """The attributes every point of this block carries (without ``error.type``)."""
        return MappingProxyType(self._attributes)

    def __enter__(self) -> Measurement:
        self._store.started(self._key, self._attributes)
        if self._resources:
            ru = _getrusage(_RUSAGE_SELF)
            rss = _rss_bytes()
            self._stack.append(
                (fork.generation, ru.ru_utime, ru.ru_stime, ru.ru_inblock, ru.ru_oublock, rss,
                 perf_counter())
            )  # fmt: skip
        else:
            self._stack.append((fork.generation, perf_counter()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = perf_counter()
        start = self._stack.pop()
        store = self._store
        if start[0] != fork.generation:
            # Started in the parent, ended in a forked child: the parent owns it.
            return
        key = started_key = self._key
        attributes = started_attributes = self._attributes
        duration = end - start[-1]
        failure = None
        if exc_type is not None and exc_type is not GeneratorExit:
            failure = error_type(exc_type)
            attributes = {**attributes, "error.type": failure}
            key = make_key(attributes)
            routing.failure(store.name, str(attributes["operation.name"]), failure)
        if duration >= _SPAN_MIN_S:  # long enough to be drawn on a run's plot
            routing.span(store.name, str(attributes["operation.name"]), duration, failure)
        store.duration.record(duration, attributes)
        if len(start) == 2:
            store.ended(started_key, started_attributes, key, attributes, duration)
            return
        ru = _getrusage(_RUSAGE_SELF)
        rss = _rss_bytes()
        usage = (
            max(ru.ru_utime - start[1], 0.0),
            max(ru.ru_stime - start[2], 0.0),
            max(ru.ru_inblock - start[3], 0) * _BLOCK,
            max(ru.ru_oublock - start[4], 0) * _BLOCK,
            rss,
            rss - start[5],
        )
        store.ended_with_resources(
            started_key, started_attributes, key, attributes, usage, duration
        )
        if self._gpu:
            used = nvml.nvml().process_memory((os.getpid(),))
            if used is not None:
                store.set_gpu_memory(key, attributes, used)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func`` so that every call is measured.

        Coroutine functions are measured until they return; generator and
        async generator functions from the first item until they are exhausted
        or closed (a consumer that stops early is not an error).
        """
        store, attributes = self._store, self._attributes
        resources, gpu = self._resources, self._gpu
        if inspect.isgeneratorfunction(func):
            gen_func: Callable[P, Generator[Any, Any, Any]] = func

            @functools.wraps(func)
            def measured_gen(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
                with Measurement(store, attributes, resources, gpu):
                    return (yield from gen_func(*args, **kwargs))

            return cast(Callable[P, R], measured_gen)
        if inspect.isasyncgenfunction(func):
            agen_func: Callable[P, AsyncGenerator[Any, Any]] = func

            @functools.wraps(func)
            async def measured_agen(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
                with Measurement(store, attributes, resources, gpu):
                    async for item in agen_func(*args, **kwargs):
                        yield item

            return cast(Callable[P, R], measured_agen)
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def measured_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with Measurement(store, attributes, resources, gpu):
                    return await async_func(*args, **kwargs)

            return cast(Callable[P, R], measured_async)

        @functools.wraps(func)
        def measured(*args: P.args, **kwargs: P.kwargs) -> R:
            with Measurement(store, attributes, resources, gpu):
                return func(*args, **kwargs)

        return measured


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
        global_provider = metrics.get_meter_provider()
        if meter_provider is global_provider:
            meter_provider = None
        provider = global_provider if meter_provider is None else meter_provider
        self.meter: Meter = provider.get_meter(name, __version__)
        self._store = store_for(name, self.meter, meter_provider)

    def measure(
        self,
        operation: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        resources: bool = True,
        gpu: bool = False,
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
                ends (``jobmeter.operation.gpu.memory.usage``); nothing without
                an NVIDIA GPU. Costs an NVML query per block.

        Returns:
            A :class:`Measurement`, usable as ``with`` block or decorator.
        """
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"operation must be a non-empty string, got {operation!r}")
        merged: dict[str, AttributeValue] = {**self.attributes}
        if attributes:
            if type(attributes) is dict:
                # The common case: one type check per item, the full check only on a miss.
                for key, value in attributes.items():
                    if type(key) is not str or not key or type(value) not in _PLAIN:
                        _check_attribute("attributes", key, value)
                merged.update(attributes)
            else:
                merged.update(_checked_attributes("attributes", attributes))
        merged["operation.name"] = operation
        return Measurement(self._store, merged, resources, gpu and resources)

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


_PLAIN: Final = frozenset((str, bool, int, float))
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


__all__ = ["Attributes", "Measurement", "MetricsCollector", "error_type"]
