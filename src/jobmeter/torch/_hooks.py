"""The hooks of one instrumented module: a block per forward call (backward: ``_backward``).

A forward is timed from the module's forward pre-hook to its forward hook
(``always_call=True``, so a forward that raises is closed too). Calls of one
module pair up per thread, last in first out, so recursion and repeated calls
in one forward are each one block.

A backward is timed on the autograd graph (``_backward``), as
``torch.distributed._tools.mod_tracker.ModTracker`` does, not with
``register_full_backward_hook``: that wraps the module's inputs and outputs in
an autograd function whose outputs cannot be modified in place
(``nn.ReLU(inplace=True)`` then raises), so it would change what the user's
model may do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from threading import get_ident
from typing import Any

import torch
from opentelemetry.util.types import AttributeValue

from jobmeter.collector import Measurement, MetricsCollector
from jobmeter.torch._backward import Backward
from jobmeter.torch._common import fault, inert

_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
_graph_task = torch._C._current_graph_task_id


class Settings:
    """What every module of one ``instrument()`` call records with."""

    __slots__ = ("attributes", "backward", "collector", "gpu", "operation", "resources", "sync")

    def __init__(
        self,
        collector: MetricsCollector,
        operation: str,
        attributes: Mapping[str, AttributeValue],
        *,
        backward: bool,
        resources: bool,
        gpu: bool,
        sync: Callable[[], None] | None,
    ) -> None:
        self.collector = collector
        self.operation = operation
        self.attributes = dict(attributes)
        self.backward = backward
        self.resources = resources
        self.gpu = gpu
        self.sync = sync


class ModuleHooks:
    """The hooks of one module, and the calls of it now open."""

    def __init__(self, module: torch.nn.Module, name: str, settings: Settings) -> None:
        self.name = name
        self.active = True
        self.settings = settings
        base = {**settings.attributes, "torch.module": name}
        self._attributes = {
            phase: {**base, "torch.phase": phase} for phase in ("forward", "backward", "recompute")
        }
        # Open forward calls per thread: (measurement, exception being handled at the start,
        # the call's backward or None).
        self._open: dict[int, list[tuple[Measurement, BaseException | None, Backward | None]]] = {}
        # A forward's Measurement per (thread, phase), nested calls on its own stack: no
        # measure() look-up per call. A backward takes its own per call (see Backward).
        self._forward: dict[tuple[int, str], Measurement] = {}
        self._handles = [
            module.register_forward_pre_hook(_Pre(self), prepend=True, with_kwargs=True),
            module.register_forward_hook(_Post(self), prepend=True, always_call=True),
        ]

    def measure(self, phase: str) -> Measurement:
        """A new ``Measurement`` of ``phase`` (not started)."""
        settings = self.settings
        return settings.collector.measure(
            settings.operation,
            self._attributes[phase],
            resources=settings.resources,
            gpu=settings.gpu,
        )

    def start(self, measurement: Measurement) -> Measurement:
        """Start ``measurement`` now, after synchronizing with the device if asked."""
        self.synchronize()
        measurement.__enter__()
        return measurement

    def synchronize(self) -> None:
        """Wait for the device, if ``instrument(synchronize=True)`` found one."""
        sync = self.settings.sync
        if sync is not None:
            sync()

    def enter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The forward pre-hook: open a block for this call."""
        if not self.active or _is_compiling():
            return
        in_backward = _graph_task() != -1  # activation checkpointing runs the forward again
        backward = None
        if self.settings.backward and _grad_enabled() and not in_backward:
            backward = Backward(self)
            backward.hook_inputs(args, kwargs)
        thread = get_ident()
        key = (thread, "recompute" if in_backward else "forward")
        measurement = self._forward.get(key)
        if measurement is None:
            measurement = self._forward[key] = self.measure(key[1])
        entry = (self.start(measurement), sys.exception(), backward)
        try:
            self._open[thread].append(entry)
        except KeyError:
            self._open[thread] = [entry]

    def exit(self, output: Any) -> None:
        """The forward hook: close this call's block, and hook its backward."""
        if _is_compiling():
            return
        stack = self._open.get(get_ident())
        if not stack:
            return  # our pre-hook did not run: a hook before it raised, or removed meanwhile
        measurement, outer, backward = stack.pop()
        exc = sys.exception()
        if exc is not None and exc is not outer and not _stops_recompute(exc):
            # Called by always_call: the forward raised.
            measurement.__exit__(type(exc), exc, exc.__traceback__)
            return
        self.synchronize()
        measurement.__exit__(None, None, None)
        if backward is not None:
            backward.hook_outputs(output)

    def remove(self) -> None:
        """Take this module's hooks off; a backward already started still ends."""
        self.active = False
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _stops_recompute(exc: BaseException) -> bool:
    """Whether ``exc`` is how checkpointing ends a recompute that has what it needs: no failure."""
    kind = type(exc)
    return (
        kind.__name__ == "_StopRecomputationError" and kind.__module__ == "torch.utils.checkpoint"
    )


class _Pre:
    """The forward pre-hook. A pickled or copied model gets an inert one (see ``_common.Inert``)."""

    __slots__ = ("hooks",)

    def __init__(self, hooks: ModuleHooks) -> None:
        self.hooks = hooks

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.hooks.enter(args, kwargs)
        except Exception as exc:
            fault("forward", exc)

    def __reduce__(self) -> tuple[Any, ...]:
        return (inert, ())


class _Post:
    """The forward hook, also called when the forward raised (``always_call``)."""

    __slots__ = ("hooks",)

    def __init__(self, hooks: ModuleHooks) -> None:
        self.hooks = hooks

    def __call__(self, module: Any, args: Any, output: Any) -> None:
        try:
            self.hooks.exit(output)
        except Exception as exc:
            fault("forward", exc)

    def __reduce__(self) -> tuple[Any, ...]:
        return (inert, ())
