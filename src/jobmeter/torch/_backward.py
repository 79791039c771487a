"""The backward of one forward call, timed on the autograd graph.

A forward with gradients hooks the autograd node of its outputs (the block
starts when their gradient is ready) and of its inputs (it ends when theirs
is). A module whose inputs need no gradient (the first layer, the model itself
fed with data) ends when the backward pass ends: its last work is its
parameters' gradients, and autograd tells no earlier moment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, Final, Protocol

import torch
from torch.autograd.graph import register_multi_grad_hook
from torch.utils._pytree import tree_leaves

from jobmeter.collector import Measurement
from jobmeter.torch._common import fault, inert

_Tensor = torch.Tensor
_graph_task = torch._C._current_graph_task_id
_CONTAINERS: Final = (list, tuple, dict)


class Owner(Protocol):
    """What a backward needs of its module's hooks (``_hooks.ModuleHooks``)."""

    active: bool

    def measure(self, phase: str) -> Measurement: ...
    def start(self, measurement: Measurement) -> Measurement: ...
    def synchronize(self) -> None: ...


class Backward:
    """The backward of one forward call: started by its outputs' gradients, ended by its inputs'."""

    __slots__ = ("_hooks", "_inputs_hooked", "_measurement", "_task")

    def __init__(self, hooks: Owner) -> None:
        self._hooks = hooks
        self._measurement: Measurement | None = None
        self._inputs_hooked = False
        self._task = -1  # the backward pass this call's block last ended in

    def hook_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Before the forward: end when the gradients of the inputs are ready."""
        tensors = needing_grad(args)
        if kwargs:
            tensors += needing_grad(kwargs.values())
        # A leaf keeps its hooks for good (a hook per forward would pile up on a parameter
        # passed in); those end at the end of the backward pass instead.
        if not tensors or any(t.grad_fn is None for t in tensors):
            return
        if len(tensors) == 1:
            on_grad(tensors[0], self.end)
        else:  # "all": autograd knows which of them get a gradient in this pass
            register_multi_grad_hook(tensors, self.end)
        self._inputs_hooked = True

    def hook_outputs(self, output: Any) -> None:
        """After the forward: start when the gradient of an output is ready."""
        if isinstance(output, _Tensor):
            if output.requires_grad and output.grad_fn is not None:
                on_grad(output, self.start)
            return
        for tensor in needing_grad((output,)):
            if tensor.grad_fn is not None:
                on_grad(tensor, self.start)  # the first output's gradient starts it

    def start(self, *_: Any) -> None:
        """An output's gradient is ready: this call's backward begins."""
        try:
            task = _graph_task()
            if self._measurement is not None or task == self._task or not self._hooks.active:
                return
            if not self._inputs_hooked:
                _PassEnd.add(task, self)
            hooks = self._hooks
            self._measurement = hooks.start(hooks.measure("backward"))
        except Exception as exc:
            fault("backward", exc)

    def end(self, *_: Any) -> None:
        """The inputs' gradients are ready (or the backward pass ended): the block ends."""
        measurement, self._measurement = self._measurement, None
        if measurement is None:
            return  # no gradient reached the outputs, or the start was skipped
        try:
            self._task = _graph_task()
            self._hooks.synchronize()
            measurement.__exit__(None, None, None)
        except Exception as exc:
            fault("backward", exc)


class _PassEnd:
    """The blocks that end with a backward pass, ended the last started first.

    A model started its backward before its first child did, so it ends after it.
    """

    pending: ClassVar[dict[int, list[Backward]]] = {}

    @classmethod
    def add(cls, task: int, backward: Backward) -> None:
        waiting = cls.pending.get(task)
        if waiting is None:
            # Queued before the block starts, so that a block is never left open by it.
            torch.autograd.Variable._execution_engine.queue_callback(
                functools.partial(cls.end, task)
            )
            waiting = cls.pending[task] = []
        waiting.append(backward)

    @classmethod
    def end(cls, task: int) -> None:
        for backward in reversed(cls.pending.pop(task, ())):
            backward.end()


class _GradHook:
    """One tensor hook for every block waiting on one gradient; the last registered runs first.

    Modules that share a tensor nest: a model's output is its last child's, and
    the model hooks it after the child, but starts its backward before it; a
    child's input is its parent's, hooked by the child after the parent, and the
    child ends first.
    """

    __slots__ = ("calls", "grad_fn")

    def __init__(self, grad_fn: Any) -> None:
        self.grad_fn = grad_fn
        self.calls: list[Callable[[], None]] = []

    def __call__(self, grad_outputs: Any) -> None:
        for call in reversed(self.calls):
            call()

    def __reduce__(self) -> tuple[Any, ...]:
        return (inert, ())  # torch.save of a tensor keeps its attributes


_ATTR: Final = "_jobmeter_grad_hook"


def on_grad(tensor: torch.Tensor, call: Callable[[], None]) -> None:
    """Call ``call`` when the gradient of ``tensor`` is ready, in this or a later backward.

    The hook is a pre-hook of the node that made the tensor (``tensor.grad_fn``),
    which runs when the gradients of its outputs are ready, as a tensor hook
    does, at less cost. An in-place op gives the tensor a new node; what was
    hooked before stays with the old one, as tensor hooks do.
    """
    hook = getattr(tensor, _ATTR, None)
    node = tensor.grad_fn
    if not isinstance(hook, _GradHook) or hook.grad_fn is not node:  # None, or loaded inert
        hook = _GradHook(node)
        node.register_prehook(hook)  # type: ignore[union-attr]  # callers check grad_fn
        setattr(tensor, _ATTR, hook)
    hook.calls.append(call)


def needing_grad(values: Any) -> list[torch.Tensor]:
    """The tensors among ``values`` (and in their lists, tuples and dicts) that need a gradient."""
    found = []
    for value in values:
        if isinstance(value, _Tensor):
            if value.requires_grad:
                found.append(value)
        elif isinstance(value, _CONTAINERS):
            found += [t for t in tree_leaves(value) if isinstance(t, _Tensor) and t.requires_grad]
    return found
