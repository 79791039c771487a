"""``Measurement``: a measured block, as a ``with`` block or a decorator; ``error_type()``."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from time import perf_counter
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry.util.types import AttributeValue

from jobmeter import _energy
from jobmeter._core import fork, gpus, probes
from jobmeter._rundata import routing
from jobmeter.collector import _peak
from jobmeter.collector._series import FOLD_AT, NO_PEAK, Bound

P = ParamSpec("P")
R = TypeVar("R")

_getrusage = probes.getrusage
_RUSAGE_SELF = probes.RUSAGE_SELF
_rss_bytes = probes.rss_bytes
_BLOCK = probes.BLOCK_SIZE
_SPAN_MIN_S = routing.SPAN_MIN_S
_FOLD_AT = FOLD_AT
_NO_PEAK = NO_PEAK
_KIB = 1024
_difference = _energy.difference


class _Energy:
    """The process's energy meter, fetched on the first block that reads it."""

    meter: _energy.EnergyMeter | None = None

    @classmethod
    def read(cls, gpu: bool, fresh: bool) -> _energy.Reading | None:
        """A reading for a block; None when there is nothing to meter (the common case)."""
        meter = cls.meter
        if meter is None:
            meter = cls.meter = _energy.meter()
        if not (meter.rapl_available() or gpu):
            return None
        reading = meter.read(gpu=gpu, fresh=fresh)
        return None if reading == _NOTHING else reading


_NOTHING: _energy.Reading = (None, None, None)


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

    __slots__ = ("_bound", "_energy", "_gpu", "_peak", "_resources", "_stack")

    def __init__(
        self,
        bound: Bound,
        resources: bool,
        gpu: bool = False,
        peak_memory: bool | None = None,
        energy: bool = True,
    ) -> None:
        self._bound = bound
        self._resources = resources
        self._gpu = gpu
        self._peak = peak_memory  # None: while a run records
        self._energy = energy
        self._stack: list[tuple[Any, ...]] = []

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        """The attributes every point of this block carries (without ``error.type``)."""
        return MappingProxyType(self._bound.attributes)

    def __enter__(self) -> Measurement:
        bound = self._bound
        owner = bound.owner
        if bound.epoch is not owner.epoch:  # the figures were forgotten (fork, reset)
            bound = self._bound = owner.rebind(bound)
        next(bound.series.entered)
        if self._resources:
            peak = self._peak
            if peak or (peak is None and owner.recording):
                window = _peak.open_window()
                ru, rss = window.usage, window.rss
            else:
                window, ru, rss = None, _getrusage(_RUSAGE_SELF), _rss_bytes()
            gpu = self._gpu
            energy = _Energy.read(gpu, False) if self._energy else None
            self._stack.append(
                (fork.generation, bound, ru.ru_utime, ru.ru_stime, ru.ru_inblock, ru.ru_oublock,
                 rss, window, energy, perf_counter())
            )  # fmt: skip
        else:
            self._stack.append((fork.generation, bound, perf_counter()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = perf_counter()
        start = self._stack.pop()
        if start[0] != fork.generation:
            # Started in the parent, ended in a forked child: the parent owns it.
            return
        bound: Bound = start[1]
        next(bound.series.exited)
        duration = end - start[-1]
        owner = bound.owner
        if bound.epoch is not owner.epoch:  # forgotten while the block ran
            bound = owner.rebind(bound)
        failure = None
        if exc_type is not None and exc_type is not GeneratorExit:
            failure = error_type(exc_type)
            bound = bound.failed(failure)
            routing.failure(owner.name, bound.operation, failure)
        if duration >= _SPAN_MIN_S:  # long enough to be drawn on a run's plot
            routing.span(owner.name, bound.operation, duration, failure)
        bound.record(duration)
        series = bound.series
        if len(start) == 3:
            durations = series.durations
            if durations is not None:  # a run records
                durations.append(duration)
            return
        ru = _getrusage(_RUSAGE_SELF)
        rss = _rss_bytes()
        window = start[7]
        energy = start[8]
        if energy is not None:
            end_energy = _Energy.read(self._gpu, True)
            energy = None if end_energy is None else _difference(energy, end_energy)
        blocks = series.blocks
        blocks.append((
            duration,
            max(ru.ru_utime - start[2], 0.0),
            max(ru.ru_stime - start[3], 0.0),
            max(ru.ru_inblock - start[4], 0) * _BLOCK,
            max(ru.ru_oublock - start[5], 0) * _BLOCK,
            rss,
            rss - start[6],
            _NO_PEAK if window is None else _peak.close_window(window, rss, ru.ru_maxrss * _KIB),
            energy,
        ))  # fmt: skip
        if len(blocks) >= _FOLD_AT:
            owner.fold(series)
        if self._gpu:
            used = gpus.process_memory((os.getpid(),))
            if used is not None:
                series.gpu_memory = used

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func`` so that every call is measured.

        Coroutine functions are measured until they return; generator and
        async generator functions from the first item until they are exhausted
        or closed (a consumer that stops early is not an error).
        """
        bound, resources, gpu, peak = self._bound, self._resources, self._gpu, self._peak
        energy = self._energy
        if inspect.isgeneratorfunction(func):
            gen_func: Callable[P, Generator[Any, Any, Any]] = func

            @functools.wraps(func)
            def measured_gen(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
                with Measurement(bound, resources, gpu, peak, energy):
                    return (yield from gen_func(*args, **kwargs))

            return cast(Callable[P, R], measured_gen)
        if inspect.isasyncgenfunction(func):
            agen_func: Callable[P, AsyncGenerator[Any, Any]] = func

            @functools.wraps(func)
            async def measured_agen(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
                with Measurement(bound, resources, gpu, peak, energy):
                    async for item in agen_func(*args, **kwargs):
                        yield item

            return cast(Callable[P, R], measured_agen)
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def measured_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with Measurement(bound, resources, gpu, peak, energy):
                    return await async_func(*args, **kwargs)

            return cast(Callable[P, R], measured_async)

        @functools.wraps(func)
        def measured(*args: P.args, **kwargs: P.kwargs) -> R:
            with Measurement(bound, resources, gpu, peak, energy):
                return func(*args, **kwargs)

        return measured
