"""jobmeter.torch.instrument(): a block per call, nested times that add up, hooks that come off."""

from __future__ import annotations

import copy
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from _torch_models import DURATION, Net, blocks, modules_seen
from torch import nn

import jobmeter
import jobmeter.torch
from jobmeter.testing import InMemoryMetrics, in_memory

FORWARD_NAMES = {
    0: {"Net"},
    1: {"Net", "embed", "block", "head"},
    2: {"Net", "embed", "block", "head", "block.inner", "block.out"},
    3: {"Net", "embed", "block", "head", "block.inner", "block.out", "block.inner.0",
        "block.inner.1"},
}  # fmt: skip


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_depth_gives_exactly_the_expected_modules(recorded: InMemoryMetrics, depth: int) -> None:
    """depth counts levels of named children below the model, which is named by its class."""
    model = Net()
    handle = jobmeter.torch.instrument(model, depth=depth)
    assert set(handle.modules) == FORWARD_NAMES[depth]
    assert handle.modules[0] == "Net"
    model(torch.randn(4, 8))
    assert modules_seen(recorded) == FORWARD_NAMES[depth]
    (point, *_) = recorded.points(DURATION, {"torch.module": "Net"})
    assert dict(point.attributes or {}) == {
        "operation.name": "Net",
        "torch.module": "Net",
        "torch.phase": "forward",
    }


@pytest.fixture
def recorded() -> Iterator[InMemoryMetrics]:
    with in_memory(service_name="tests") as metrics:
        yield metrics


def test_one_forward_block_per_call_and_children_within_parents(
    recorded: InMemoryMetrics,
) -> None:
    """Counts are the calls; a child's total is within its parent's, and the children's sum too."""
    model = Net()
    jobmeter.torch.instrument(model, depth=3)
    x = torch.randn(32, 8)
    for _ in range(7):
        model(x)
    totals = {name: blocks(recorded, name) for name in FORWARD_NAMES[3]}
    assert {name: count for name, (count, _) in totals.items()} == dict.fromkeys(totals, 7)
    tree = {
        "Net": ["embed", "block", "head"],
        "block": ["block.inner", "block.out"],
        "block.inner": ["block.inner.0", "block.inner.1"],
    }
    for parent, children in tree.items():
        assert sum(totals[c][1] for c in children) <= totals[parent][1]
        assert all(0 < totals[c][1] <= totals[parent][1] for c in children)


def test_model_total_is_within_the_wall_time_and_most_of_it() -> None:
    """Measured with perf_counter around the calls: the model's total is at most that, and most."""
    with in_memory() as recorded:
        model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
        jobmeter.torch.instrument(model)
        x = torch.randn(512, 256)
        model(x)  # warm up outside the wall time
        warm = blocks(recorded, "Sequential")
        began = time.perf_counter()
        for _ in range(20):
            model(x)
        wall = time.perf_counter() - began
        count, total = blocks(recorded, "Sequential")
    measured = total - warm[1]
    assert count - warm[0] == 20
    assert measured <= wall
    assert measured >= 0.5 * wall  # the loop is nothing but the forward


def test_backward_is_one_block_per_backward_pass(recorded: InMemoryMetrics) -> None:
    """Each module's backward counts once per backward; children's backward within the model's."""
    model = Net()
    jobmeter.torch.instrument(model, depth=1, backward=True)
    x = torch.randn(16, 8)
    for _ in range(5):
        model(x).sum().backward()
    out = model(x).sum()
    out.backward(retain_graph=True)
    out.backward()  # a second pass over the same graph is a second backward
    names = FORWARD_NAMES[1]
    backward = {name: blocks(recorded, name, "backward") for name in names}
    assert {name: count for name, (count, _) in backward.items()} == dict.fromkeys(names, 7)
    assert {name: blocks(recorded, name)[0] for name in names} == dict.fromkeys(names, 6)
    children = ("embed", "block", "head")
    assert sum(backward[c][1] for c in children) <= backward["Net"][1]
    assert all(backward[c][1] > 0 for c in children)


def test_backward_of_a_model_with_in_place_ops_and_tuple_outputs(recorded: InMemoryMetrics) -> None:
    """ReLU(inplace=True) still works (full backward hooks would raise) and tuples are hooked."""

    class Split(nn.Module):
        def forward(self, x: Any) -> Any:
            return x[:, :4] * 2, x[:, 4:] * 3

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.act = nn.ReLU(inplace=True)
            self.split = Split()

        def forward(self, x: Any) -> Any:
            a, b = self.split(self.act(self.lin(x)))
            return a.sum() + b.sum()

    model = Model()
    jobmeter.torch.instrument(model, backward=True)
    for _ in range(3):
        model(torch.randn(2, 8)).backward()
    assert model.lin.weight.grad is not None
    for name in ("Model", "lin", "act", "split"):
        assert blocks(recorded, name, "backward")[0] == 3, name


def test_keyword_inputs_and_dict_outputs_are_followed_into_the_backward(
    recorded: InMemoryMetrics,
) -> None:
    """A child called with keywords that returns a dict (as transformers' modules do)."""

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, *, hidden: Any, scale: float) -> dict[str, Any]:
            return {"hidden": self.lin(hidden) * scale, "steps": 1}

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(8, 8)
            self.encoder = Encoder()

        def forward(self, x: Any) -> Any:
            return self.encoder(hidden=self.embed(x), scale=2.0)["hidden"].sum()

    model = Model()
    jobmeter.torch.instrument(model, depth=2, backward=True)
    for _ in range(3):
        model(torch.randn(2, 8)).backward()
    for name in ("Model", "embed", "encoder", "encoder.lin"):
        assert blocks(recorded, name, "backward")[0] == 3, name
    encoder, lin = (
        blocks(recorded, "encoder", "backward"),
        blocks(recorded, "encoder.lin", "backward"),
    )
    assert lin[1] <= encoder[1]


def test_no_backward_blocks_unless_asked_nor_under_no_grad(recorded: InMemoryMetrics) -> None:
    model = Net()
    handle = jobmeter.torch.instrument(model, backward=True)
    with torch.no_grad():
        model(torch.randn(2, 8))
    model.eval()
    with torch.inference_mode():
        model(torch.randn(2, 8))
    assert blocks(recorded, "Net")[0] == 2
    assert blocks(recorded, "Net", "backward")[0] == 0
    handle.remove()
    jobmeter.torch.instrument(model)  # backward=False
    model.train()
    model(torch.randn(2, 8)).sum().backward()
    assert blocks(recorded, "Net")[0] == 3
    assert blocks(recorded, "Net", "backward")[0] == 0


def test_remove_stops_recording(recorded: InMemoryMetrics) -> None:
    model = Net()
    handle = jobmeter.torch.instrument(model, depth=2, backward=True)
    model(torch.randn(2, 8)).sum().backward()
    before = {name: blocks(recorded, name) for name in FORWARD_NAMES[2]}
    pending = model(torch.randn(2, 8)).sum()  # its backward would start after remove()
    handle.remove()
    assert handle.removed
    pending.backward()
    for _ in range(3):
        model(torch.randn(2, 8)).sum().backward()
    after = {name: blocks(recorded, name) for name in FORWARD_NAMES[2]}
    assert {n: c for n, (c, _) in after.items()} == {n: c + 1 for n, (c, _) in before.items()}
    assert blocks(recorded, "Net", "backward")[0] == 1
    for module in model.modules():
        assert not module._forward_pre_hooks
        assert not module._forward_hooks


def test_a_forward_that_raises_is_recorded_with_error_type(recorded: InMemoryMetrics) -> None:
    """The failing module and its parents record error.type; the hooks stay paired."""
    model = Net()
    jobmeter.torch.instrument(model, depth=2)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 5))  # wrong width: embed raises
    (point,) = recorded.points(DURATION, {"torch.module": "embed", "error.type": "RuntimeError"})
    assert point.count == 1  # type: ignore[union-attr]
    assert blocks(recorded, "Net", failed=True)[0] == 1
    assert blocks(recorded, "block", failed=True)[0] == 0  # never ran
    for _ in range(2):
        model(torch.randn(2, 8))
    assert {n: blocks(recorded, n)[0] for n in FORWARD_NAMES[2]} == dict.fromkeys(
        FORWARD_NAMES[2], 2
    )
    busy = recorded.points("jobmeter.operation.active", {"torch.module": "Net"})
    assert recorded.value("jobmeter.operation.active", {"torch.module": "Net"}) == 0
    assert busy  # the series exists: the value is read, not missing


def test_a_forward_that_raises_inside_a_handled_exception(recorded: InMemoryMetrics) -> None:
    """A forward called from an except block is a success unless it raises itself."""
    model = Net()
    jobmeter.torch.instrument(model)
    try:
        raise KeyError("outer")
    except KeyError:
        model(torch.randn(2, 8))
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 3))
    assert blocks(recorded, "Net")[0] == 1
    assert blocks(recorded, "Net", failed=True)[0] == 1


def test_instrumenting_twice_does_not_double_count(recorded: InMemoryMetrics) -> None:
    model = Net()
    first = jobmeter.torch.instrument(model, depth=1)
    second = jobmeter.torch.instrument(model, depth=2)
    inner = jobmeter.torch.instrument(model.block, depth=0, name="block")
    assert first.removed
    assert not second.removed
    model(torch.randn(2, 8))
    counts = {n: blocks(recorded, n)[0] for n in (*FORWARD_NAMES[2], "Block")}
    assert counts == {**dict.fromkeys(FORWARD_NAMES[2], 1), "block": 0, "Block": 1}
    inner.remove()
    second.remove()
    assert len(model._forward_pre_hooks) == len(model.block._forward_pre_hooks) == 0


def test_reentrant_modules_count_each_call(recorded: InMemoryMetrics) -> None:
    """A module called twice in one forward, and one that calls itself, are one block per call."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x: Any) -> Any:
            return self.lin(self.lin(x))

    class Recursive(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x: Any, depth: int = 3) -> Any:
            return self.lin(x) if depth == 0 else self(self.lin(x), depth - 1)

    shared, recursive = Shared(), Recursive()
    jobmeter.torch.instrument(shared, backward=True)
    jobmeter.torch.instrument(recursive, backward=True)
    shared(torch.randn(2, 8)).sum().backward()
    recursive(torch.randn(2, 8)).sum().backward()
    lin_blocks = recorded.points(DURATION, {"operation.name": "Shared", "torch.module": "lin"})
    assert {str((p.attributes or {})["torch.phase"]): p.count for p in lin_blocks} == {  # type: ignore[union-attr]
        "forward": 2,
        "backward": 2,
    }
    counts = {
        str((p.attributes or {})["torch.module"])
        + "/"
        + str((p.attributes or {})["torch.phase"]): p.count  # type: ignore[union-attr]
        for p in recorded.points(DURATION, {"operation.name": "Recursive"})
    }
    assert counts == {
        "Recursive/forward": 4, "Recursive/backward": 4, "lin/forward": 4, "lin/backward": 4
    }  # fmt: skip


def test_activation_checkpointing_is_a_recompute_not_a_second_forward(
    recorded: InMemoryMetrics,
) -> None:
    from torch.utils.checkpoint import checkpoint

    class Checkpointed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(8, 8), nn.ReLU())

        def forward(self, x: Any) -> Any:
            return checkpoint(self.block, x, use_reentrant=False)

    model = Checkpointed()
    jobmeter.torch.instrument(model, backward=True)
    x = torch.randn(2, 8, requires_grad=True)
    for _ in range(2):
        model(x).sum().backward()
    assert blocks(recorded, "block")[0] == 2
    assert blocks(recorded, "block", "recompute")[0] == 2
    assert blocks(recorded, "block", "backward")[0] == 2


def test_threads_calling_one_model_pair_their_own_calls(recorded: InMemoryMetrics) -> None:
    model = Net()
    jobmeter.torch.instrument(model, depth=2)
    x = torch.randn(4, 8)

    def work() -> None:
        with torch.no_grad():
            for _ in range(50):
                model(x)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {n: blocks(recorded, n)[0] for n in FORWARD_NAMES[2]} == dict.fromkeys(
        FORWARD_NAMES[2], 200
    )
    assert all(blocks(recorded, n, failed=True)[0] == 0 for n in FORWARD_NAMES[2])


def test_copies_of_an_instrumented_model_save_and_are_not_measured(
    recorded: InMemoryMetrics,
) -> None:
    """deepcopy (an EMA model) and torch.save of the whole model work; the copy records nothing."""
    model = Net()
    jobmeter.torch.instrument(model, backward=True)
    out = model(torch.randn(2, 8))
    twin = copy.deepcopy(model)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    torch.save(out, io.BytesIO())  # an output carries the gradient hook's attribute
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    twin(torch.randn(2, 8))
    loaded(torch.randn(2, 8)).sum().backward()
    assert blocks(recorded, "Net")[0] == 1
    assert blocks(recorded, "Net", "backward")[0] == 0


def test_collector_name_and_attributes_are_used(recorded: InMemoryMetrics) -> None:
    ops = jobmeter.MetricsCollector("train", attributes={"team": "ml"})
    model = Net()
    handle = jobmeter.torch.instrument(
        model, depth=0, collector=ops, name="classifier", attributes={"model": "net"},
        resources=True,
    )  # fmt: skip
    assert handle.operation == "classifier"
    assert repr(handle) == "Instrumented('classifier', 1 modules)"
    model(torch.randn(2, 8))
    (point,) = recorded.points(DURATION, {"operation.name": "classifier"})
    assert dict(point.attributes or {}) == {
        "team": "ml", "model": "net", "operation.name": "classifier",
        "torch.module": "Net", "torch.phase": "forward",
    }  # fmt: skip
    assert recorded.points("jobmeter.operation.cpu.time", {"torch.module": "Net"})


def test_synchronize_waits_for_the_device_at_each_block_end(
    recorded: InMemoryMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the driver boundary: with a GPU, each block's start and end wait for the device."""
    calls: list[str] = []
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "synchronize", lambda *a: calls.append("sync"))
    model = Net()
    jobmeter.torch.instrument(model, depth=1, synchronize=True, backward=True)
    model(torch.randn(2, 8)).sum().backward()
    assert len(calls) == 2 * 4 * 2  # start and end, 4 modules, forward and backward
    calls.clear()
    jobmeter.torch.instrument(model, depth=1)  # without synchronize
    model(torch.randn(2, 8))
    assert calls == []


def test_bad_arguments_raise(recorded: InMemoryMetrics) -> None:
    model = Net()
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        jobmeter.torch.instrument(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth must be >= 0"):
        jobmeter.torch.instrument(model, depth=-1)
    with pytest.raises(TypeError, match="depth must be an int"):
        jobmeter.torch.instrument(model, depth=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="collector"):
        jobmeter.torch.instrument(model, collector="etl")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="attributes"):
        jobmeter.torch.instrument(model, attributes={"model": None})
    assert not model._forward_pre_hooks


def test_with_block_removes_the_hooks(recorded: InMemoryMetrics) -> None:
    model = Net()
    with jobmeter.torch.instrument(model) as handle:
        model(torch.randn(2, 8))
    model(torch.randn(2, 8))
    assert handle.removed
    assert blocks(recorded, "Net")[0] == 1


def test_compiled_models_are_measured_whole_and_hooks_skip_inside(
    recorded: InMemoryMetrics,
) -> None:
    """Hooks traced by torch.compile do nothing; the compiled model itself is one block a call."""
    inside = Net()
    jobmeter.torch.instrument(inside, backward=True)
    compiled_inside = torch.compile(inside, backend="eager")
    whole = torch.compile(Net(), backend="eager")
    assert isinstance(whole, nn.Module)  # an OptimizedModule
    handle = jobmeter.torch.instrument(whole, depth=0, name="whole", backward=True)
    assert handle.modules == ("Net",)
    for _ in range(2):
        compiled_inside(torch.randn(2, 8)).sum().backward()
        whole(torch.randn(2, 8)).sum().backward()
    assert recorded.count(DURATION, {"operation.name": "Net"}) == 0
    assert blocks(recorded, "Net")[0] == 2
    assert blocks(recorded, "Net", "backward")[0] == 2


def test_module_examples_run(recorded: InMemoryMetrics) -> None:
    import doctest

    failures, tried = doctest.testmod(jobmeter.torch, optionflags=doctest.ELLIPSIS)
    assert tried >= 3
    assert failures == 0


def test_gpu_implies_resources_and_records_no_gpu_figure_without_one(
    recorded: InMemoryMetrics,
) -> None:
    model = Net()
    jobmeter.torch.instrument(model, depth=0, gpu=True)
    model(torch.randn(2, 8))
    assert blocks(recorded, "Net")[0] == 1
    assert recorded.points("jobmeter.operation.cpu.time", {"torch.module": "Net"})
    assert not recorded.points("jobmeter.operation.gpu.memory.usage")


def test_a_collector_that_fails_is_one_warning_and_the_model_runs(
    recorded: InMemoryMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Telemetry never breaks the model: a user's collector whose measure() raises."""

    class Broken(jobmeter.MetricsCollector):
        calls = 0

        def measure(self, *args: Any, **kwargs: Any) -> jobmeter.Measurement:
            Broken.calls += 1
            if Broken.calls > 1:  # the first is instrument() checking the attributes
                raise RuntimeError("collector down")
            return super().measure(*args, **kwargs)

    model = Net()
    jobmeter.torch.instrument(model, collector=Broken("broken"), backward=True)
    with caplog.at_level("WARNING", logger="jobmeter"):
        for _ in range(3):
            model(torch.randn(2, 8)).sum().backward()
    assert model.head.weight.grad is not None
    faults = [r for r in caplog.records if "jobmeter.torch: the" in r.getMessage()]
    assert [r.getMessage().split(" hook")[0] for r in faults] == ["jobmeter.torch: the forward"]
    assert "collector down" in faults[0].getMessage()
