"""``instrument()``: hooks on a model and its children; ``Instrumented``, the handle."""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType

import torch
from opentelemetry.util.types import AttributeValue

from jobmeter.collector import MetricsCollector
from jobmeter.torch._hooks import ModuleHooks, Settings

_log = logging.getLogger("jobmeter")

#: The collector (instrumentation scope) of ``instrument()`` when none is given.
SCOPE = "jobmeter.torch"

# Each module is measured by one handle at a time: a later instrument() takes it over.
_owners: weakref.WeakKeyDictionary[torch.nn.Module, ModuleHooks] = weakref.WeakKeyDictionary()


class Instrumented:
    """The hooks ``instrument()`` put on a model: ``remove()`` takes them all off.

    Also a context manager that removes them at the end of the ``with`` block.

    Attributes:
        modules: the ``torch.module`` names measured, the model's first.
        operation: the ``operation.name`` of every block.
    """

    def __init__(self, hooks: list[ModuleHooks], operation: str) -> None:
        self._hooks = hooks
        self.operation = operation
        self.modules: tuple[str, ...] = tuple(h.name for h in hooks)

    def remove(self) -> None:
        """Take every hook off. Blocks started before (a backward under way) still end."""
        for hooks in self._hooks:
            hooks.remove()
        self._hooks = []

    @property
    def removed(self) -> bool:
        """Whether ``remove()`` was called (or every module was taken over by a later call)."""
        return not any(h.active for h in self._hooks)

    def __enter__(self) -> Instrumented:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: object, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self.removed else f"{len(self.modules)} modules"
        return f"Instrumented({self.operation!r}, {state})"


def instrument(
    model: torch.nn.Module,
    depth: int = 1,
    *,
    backward: bool = False,
    collector: MetricsCollector | None = None,
    name: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    synchronize: bool = False,
    resources: bool = False,
    gpu: bool = False,
) -> Instrumented:
    """Measure the forward (and backward) time of ``model`` and its children.

    Every call of a measured module is one ``measure()`` block:
    ``jobmeter.operation.duration`` with ``operation.name`` (``name``),
    ``torch.module`` (the module's name in ``model.named_modules()``; the
    model itself is its class name) and ``torch.phase`` (``forward``,
    ``backward``, or ``recompute`` for a forward run again in the backward by
    activation checkpointing). A forward that raises is recorded with
    ``error.type``. Instrumenting a module again moves it to the new handle,
    so nothing is counted twice.

    On CPU the times are the work's. On a GPU, PyTorch only queues the
    kernels: without ``synchronize`` the times are those of the host (Python
    and kernel launches); with it, every hook waits for the device, so the
    times are the device's work, and the model runs slower.

    Args:
        model: the model.
        depth: how many levels of named children to measure besides the
            model: 0 the model alone, 1 its children too, 2 their children.
        backward: also measure each call's backward, from the gradient of its
            outputs to that of its inputs (or the end of the backward pass for
            a module whose inputs need no gradient).
        collector: the collector to record with; by default
            ``MetricsCollector("jobmeter.torch")``.
        name: the ``operation.name``; the model's class name by default.
        attributes: more attributes for every block (low-cardinality).
        synchronize: wait for the GPU (``torch.cuda.synchronize()``) at each
            block's start and end; nothing without a GPU.
        resources: also record CPU time, disk I/O and memory per block, as
            ``measure(resources=True)`` (about 5 us more per block).
        gpu: also record the GPU memory the process holds at each block's end
            (``measure(gpu=True)``, a driver query per block); implies
            ``resources``.

    Returns:
        An :class:`Instrumented` handle; ``remove()`` takes the hooks off.

    Raises:
        TypeError, ValueError: an argument that cannot be used.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
        >>> handle = instrument(model)
        >>> handle.modules
        ('Sequential', '0', '1')
        >>> handle.remove()
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"depth must be an int >= 0, got {depth!r}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0 (0: the model alone), got {depth}")
    if collector is None:
        collector = MetricsCollector(SCOPE)
    elif not isinstance(collector, MetricsCollector):
        raise TypeError(f"collector must be a MetricsCollector, got {type(collector).__name__}")
    operation = _class_name(model) if name is None else name
    if not isinstance(operation, str) or not operation:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    # measure() checks the attributes: the model's own forward set, bound now, raises
    # here rather than in a hook.
    root = _class_name(model)
    collector.measure(
        operation, {**(attributes or {}), "torch.module": root, "torch.phase": "forward"}
    )
    settings = Settings(
        collector,
        operation,
        attributes or {},
        backward=bool(backward),
        resources=bool(resources or gpu),
        gpu=bool(gpu),
        sync=_synchronizer() if synchronize else None,
    )
    if not synchronize and _on_device(model):
        _log.info(
            "jobmeter.torch: %s runs on a GPU; its times are host times (kernel launches) "
            "unless instrument(synchronize=True)", operation,
        )  # fmt: skip
    hooks = []
    for module_name, module in _modules(model, depth):
        earlier = _owners.get(module)
        if earlier is not None:
            earlier.remove()
        hooks.append(ModuleHooks(module, module_name, settings))
        _owners[module] = hooks[-1]
    return Instrumented(hooks, operation)


def _modules(model: torch.nn.Module, depth: int) -> list[tuple[str, torch.nn.Module]]:
    """The model (named by its class) and its named children down to ``depth`` levels.

    A module registered under several names is measured once, under its
    shallowest name (the first, among names as deep).
    """
    found = [(_class_name(model), model)]
    seen = {id(model)}
    level = [("", model)]
    for _ in range(depth):
        below = []
        for prefix, parent in level:
            for child_name, child in parent.named_children():
                if child is None or id(child) in seen:
                    continue
                seen.add(id(child))
                below.append((f"{prefix}.{child_name}" if prefix else child_name, child))
        found += below
        level = below
    return found


def _class_name(model: torch.nn.Module) -> str:
    """The model's class name; for what ``torch.compile`` returned, the compiled model's."""
    if type(model).__name__ == "OptimizedModule":
        model = getattr(model, "_orig_mod", model)
    return type(model).__name__


def _synchronizer() -> Callable[[], None] | None:
    """The device's synchronize(), or None where every op is done when it returns (CPU)."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, ROCm, XPU, MPS
    if accelerator is not None and accelerator.is_available():
        sync: Callable[[], None] = accelerator.synchronize
        return sync
    if torch.cuda.is_available():
        return torch.cuda.synchronize
    return None


def _on_device(model: torch.nn.Module) -> bool:
    """Whether any parameter or buffer of the model lives off the CPU."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return any(tensor.device.type not in ("cpu", "meta") for tensor in tensors)
