"""`jobmeter plot`: a real run's directory drawn as a PNG, and the figure's panels checked."""

from __future__ import annotations

import builtins
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from jobmeter.store._plot.render import (
    MISSING_MATPLOTLIB,
    PlotDependencyError,
    load_run,
    plot_run,
    render,
)

MIB = 1024 * 1024

# 0.6 s of CPU, then 200 MiB allocated in steps and held, then 16 MiB written and fsynced.
_WORKLOAD = textwrap.dedent(
    """
    import os, sys, time
    start = time.process_time()
    while time.process_time() - start < 0.6:
        sum(range(10_000))
    blocks = []
    for _ in range(5):
        blocks.append(bytearray(40 * 1024 * 1024))
        time.sleep(0.1)
    with open(sys.argv[1], "wb") as out:
        out.write(os.urandom(16 * 1024 * 1024)); out.flush(); os.fsync(out.fileno())
    time.sleep(0.2)
    """
)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `run_command` run, in a process of its own (it makes itself a subreaper)."""
    tmp = tmp_path_factory.mktemp("plot")
    driver = textwrap.dedent(
        f"""
        import json, sys
        from jobmeter.run import RunOptions, run_command
        result = run_command(
            [sys.executable, "-c", {_WORKLOAD!r}, {str(tmp / "out.bin")!r}],
            RunOptions(interval=0.1, output={str(tmp / "runs")!r}, capture=False, name="plotted"),
        )
        print(json.dumps(result.to_json()))
        """
    )
    env = {**os.environ, "OTEL_METRICS_EXPORTER": "none"}
    done = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["exit_code"] == 0
    return Path(summary["directory"])


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _samples(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]


def _ydata(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def _xdata(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]


def _panels(figure: Figure) -> list[Axes]:
    return list(figure.axes)


def _peak_annotations(ax: Axes) -> list[Any]:
    return [text for text in ax.texts if text.get_gid() == "peak"]


def _operation_patches(ax: Axes) -> int:
    return sum(1 for patch in ax.patches if patch.get_gid() == "operation")


def _synthetic_run(directory: Path, samples: list[dict[str, Any]], start: float = 1.7e9) -> Path:
    directory.mkdir(parents=True)
    record = {
        "id": "20261123T204501Z-3f9a1c",
        "name": "synthetic",
        "status": "succeeded",
        "start": start,
        "end": start + 3.0,
        "summary": {"wall_seconds": 3.0, "read_bytes": 0, "written_bytes": 0},
    }
    (directory / "run.json").write_text(json.dumps(record))
    with (directory / "usage.jsonl").open("w") as out:
        for sample in samples:
            out.write(json.dumps(sample) + "\n")
    return directory


def _sample(t: float, **values: float | None) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "t": t,
        "processes": 1,
        "rss": 100 * MIB,
        "pss": 90 * MIB,
        "hwm": 100 * MIB,
        "cpu_user": 0.0,
        "cpu_system": 0.0,
        "cpu_user_total": 0.0,
        "cpu_system_total": 0.0,
        "cpu_utilization": 0.5,
        "read_bytes": 0,
        "write_bytes": 0,
        "threads": 1,
        "open_files": 3,
        "gpu_memory": None,
    }
    sample.update(values)
    return sample


def test_a_real_run_is_plotted_as_a_1200_by_900_png(real_run: Path, tmp_path: Path) -> None:
    output = plot_run(real_run, tmp_path / "run.png")
    assert output == tmp_path / "run.png"
    assert _png_size(output) == (1200, 900)
    assert output.stat().st_size > 20_000  # lines, fills, labels: not an empty canvas


def test_the_figure_has_cpu_memory_and_io_panels_with_units(real_run: Path) -> None:
    run = load_run(real_run)
    figure = render(run)
    cpu, memory, io = _panels(figure)  # no GPU panel without gpu_memory
    assert cpu.get_ylabel() == "CPU (CPUs busy)"
    assert memory.get_ylabel() == "Memory (MiB)"  # ~200 MiB: MiB, not bytes or GiB
    assert io.get_ylabel() == "Disk I/O (MiB/s)"
    assert io.get_xlabel() == "seconds since start"
    # The axes share time: all panels show the same range, starting at the run's start.
    assert cpu.get_xlim() == memory.get_xlim() == io.get_xlim()
    assert cpu.get_xlim()[0] == 0.0
    samples = _samples(real_run)
    (peak,) = _peak_annotations(cpu)
    assert peak.xy[1] == max(s["cpu_utilization"] for s in samples)
    assert peak.get_text() == f"peak {max(s['cpu_utilization'] for s in samples):.2f} CPUs"
    (memory_peak,) = _peak_annotations(memory)
    assert memory_peak.xy[1] == pytest.approx(max(s["pss"] for s in samples) / MIB)
    assert memory_peak.xy[1] >= 150  # the 200 MiB held were seen
    # Disk rates are never negative, although the live counters drop when the process ends.
    (read_line, write_line) = io.get_lines()
    rates = _ydata(read_line) + _ydata(write_line)
    assert min(rates) >= 0
    assert max(_ydata(write_line)) > 0  # the 16 MiB written show
    title = figure.get_suptitle()
    assert "plotted" in title
    assert run.record["id"] in title
    assert "succeeded" in title
    assert "wall time" in title


def test_a_truncated_last_line_still_plots_with_one_warning(
    real_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _copy(real_run, tmp_path)
    with (run / "usage.jsonl").open("a") as out:
        out.write('{"t": 1795474524.5, "processes": 1, "rs')  # the wrapper was killed mid-write
    with caplog.at_level(logging.WARNING, logger="jobmeter"):
        output = plot_run(run, tmp_path / "truncated.png")
    assert _png_size(output) == (1200, 900)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 1 unreadable line" in warnings[0].getMessage()


def test_a_run_without_samples_is_a_clear_error(real_run: Path, tmp_path: Path) -> None:
    run = _copy(real_run, tmp_path)
    (run / "usage.jsonl").write_text("")
    with pytest.raises(ValueError, match="has no samples"):
        plot_run(run, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_operation_spans_are_shaded_on_every_panel(real_run: Path, tmp_path: Path) -> None:
    run = _copy(real_run, tmp_path)
    start = float(json.loads((run / "run.json").read_text())["start"])
    operations = [
        {"name": "load", "start": 0.1, "end": 0.5},  # seconds since start
        {"name": "transform", "start": start + 0.6, "end": start + 1.1},  # Unix seconds
        {"name": "write", "start": 1.2, "end": 1.4},
    ]
    (run / "operations.jsonl").write_text("".join(json.dumps(op) + "\n" for op in operations))
    data = load_run(run)
    assert [(op.name, round(op.start, 6)) for op in data.operations] == [
        ("load", 0.1),
        ("transform", 0.6),
        ("write", 1.2),
    ]
    figure = render(data)
    strip, *panels = _panels(figure)  # a strip of labelled bars above the three panels
    assert [ax.get_ylabel() for ax in panels] == [
        "CPU (CPUs busy)",
        "Memory (MiB)",
        "Disk I/O (MiB/s)",
    ]
    for ax in panels:
        assert _operation_patches(ax) == 3
    bars = [p for p in strip.patches if p.get_gid() == "operation-bar"]
    assert len(bars) == 3
    labels = [t.get_text().strip() for t in strip.texts if t.get_gid() == "operation-label"]
    assert labels == ["load", "transform", "write"]
    assert strip.get_xlim() == panels[0].get_xlim()
    assert _png_size(plot_run(run, tmp_path / "spans.png")) == (1200, 900)


def _lane_run(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A 30 s run whose lane has a long span, a span nested in it, and many short ones."""
    start = 1.7e9
    run = _synthetic_run(tmp_path / "lane", [_sample(start + i) for i in range(31)], start)
    operations: list[dict[str, Any]] = [
        {"name": "backfill_all_partitions_of_orders", "start": 0.0, "end": 18.0},
        {"name": "fetch", "start": 18.0, "end": 18.25},
        {"name": "load", "start": 18.25, "end": 18.5},
        # On the long span's row (3 rows), starting where the long span's label is.
        {"name": "nested_phase_inside_the_backfill", "start": 0.3, "end": 12.0},
    ]
    names = ["fetch", "load", "transform", "transform", "fetch_customer_records", "load_to_dw"]
    for i in range(24):  # back to back, 0.25 s each: far too short for their names
        begin = 18.5 + i * 0.25
        operations.append({"name": names[i % len(names)], "start": begin, "end": begin + 0.25})
    # Room for a few characters of this name, not for all of it.
    operations.append({"name": "transform_customer_dimension_tables", "start": 25, "end": 27.5})
    (run / "operations.jsonl").write_text("".join(json.dumps(op) + "\n" for op in operations))
    return run, operations


def test_lane_labels_never_overlap_and_stay_inside_their_spans(tmp_path: Path) -> None:
    run, operations = _lane_run(tmp_path)
    figure = render(load_run(run))
    strip = figure.axes[0]
    figure.canvas.draw()  # the layout and extents the PNG gets
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    bars = [p for p in strip.patches if isinstance(p, Rectangle) and p.get_gid() == "operation-bar"]
    assert len(bars) == len(operations)  # every span is drawn, labelled or not
    labels = [t for t in strip.texts if t.get_gid() == "operation-label"]
    assert 0 < len(labels) < len(operations)
    boxes = [label.get_window_extent(renderer) for label in labels]
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other), (box, other)
    by_start = {float(op["start"]): op for op in operations}
    shown: dict[str, str] = {}
    for label, box in zip(labels, boxes, strict=True):
        x, row = label.get_position()
        (bar,) = [b for b in bars if b.get_x() == pytest.approx(x) and _bar_row(b) == row]
        span = bar.get_window_extent(renderer)
        assert span.x0 <= box.x0 < box.x1 <= span.x1, (label.get_text(), box, span)
        name = str(by_start[float(x)]["name"])
        text = label.get_text()
        assert text == name or (text.endswith("\u2026") and name.startswith(text[:-1])), text
        shown[name] = text
    # The longest span keeps its whole name; the one nested under it is left out.
    assert shown["backfill_all_partitions_of_orders"] == "backfill_all_partitions_of_orders"
    assert "nested_phase_inside_the_backfill" not in shown
    # Too short for the whole name, long enough for a prefix and an ellipsis.
    shortened = shown.get("transform_customer_dimension_tables", "")
    assert shortened.startswith("tra")
    assert shortened.endswith("\u2026")
    # The PNG gets the same figure.
    assert _png_size(plot_run(run, tmp_path / "lane.png")) == (1200, 900)


def _bar_row(bar: Rectangle) -> float:
    return float(bar.get_y() + bar.get_height() / 2)


def test_without_operations_file_there_are_no_spans(real_run: Path) -> None:
    figure = render(load_run(real_run))
    assert all(_operation_patches(ax) == 0 for ax in _panels(figure))


def test_gpu_panel_only_when_a_sample_has_gpu_memory(tmp_path: Path) -> None:
    start = 1.7e9
    with_gpu = _synthetic_run(
        tmp_path / "gpu",
        [_sample(start + i * 0.5, gpu_memory=(i * 3 * 2**30 if i else None)) for i in range(6)],
        start,
    )
    figure = render(load_run(with_gpu))
    panels = _panels(figure)
    assert len(panels) == 4
    assert panels[3].get_ylabel() == "GPU memory (GiB)"
    (peak,) = _peak_annotations(panels[3])
    assert peak.xy[1] == pytest.approx(15.0)  # 5 * 3 GiB
    without = _synthetic_run(tmp_path / "cpu", [_sample(start + i * 0.5) for i in range(6)], start)
    assert len(_panels(render(load_run(without)))) == 3


def test_times_already_relative_and_a_unit_from_the_data(tmp_path: Path) -> None:
    samples = [_sample(i * 0.5, rss=3 * 2**30, pss=int(2.5 * 2**30)) for i in range(5)]
    run = _synthetic_run(tmp_path / "rel", samples)
    figure = render(load_run(run))
    memory = figure.axes[1]
    assert memory.get_ylabel() == "Memory (GiB)"
    xs = _xdata(memory.get_lines()[0])
    assert xs == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_html_page_embeds_the_png_and_the_summary(real_run: Path, tmp_path: Path) -> None:
    output = plot_run(real_run, tmp_path / "page.png", html=True)
    page = (tmp_path / "page.html").read_text()
    assert "data:image/png;base64," in page
    assert "peak_memory_bytes" in page
    assert "wall_seconds" in page
    assert output.exists()


def test_an_output_directory_gets_the_run_id(real_run: Path, tmp_path: Path) -> None:
    output = plot_run(real_run, tmp_path)
    assert output == tmp_path / f"{real_run.name}.png"
    assert output.is_file()


def test_plots_from_threads_at_once(real_run: Path, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def plot(index: int) -> None:
        try:
            plot_run(real_run, tmp_path / f"thread-{index}.png")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=plot, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(_png_size(tmp_path / f"thread-{i}.png") == (1200, 900) for i in range(4))


def test_missing_matplotlib_is_a_clear_error(
    real_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(PlotDependencyError) as raised:
        plot_run(real_run, tmp_path / "none.png")
    assert str(raised.value) == MISSING_MATPLOTLIB
    assert str(raised.value) == "jobmeter plot needs matplotlib: pip install 'jobmeter[plot]'"
    assert isinstance(raised.value, ImportError)


def test_cli_plots_the_latest_run_and_names_an_unknown_one(real_run: Path, tmp_path: Path) -> None:
    """`jobmeter plot --latest -o DIR` writes <run id>.png; an unknown run is exit 2."""
    from typer.testing import CliRunner

    from jobmeter.cli import app

    runner = CliRunner()
    root = str(real_run.parent)
    done = runner.invoke(app, ["plot", "--latest", "--dir", root, "-o", str(tmp_path), "--html"])
    assert done.exit_code == 0, done.output
    png = tmp_path / f"{real_run.name}.png"
    assert _png_size(png) == (1200, 900)
    assert png.with_suffix(".html").is_file()
    missing = runner.invoke(app, ["plot", "no-such-run", "--dir", root, "-o", str(tmp_path)])
    assert missing.exit_code == 2


def _listed(pid: int, name: str, rss: int) -> dict[str, Any]:
    return {"pid": pid, "name": name, "rss": rss, "pss": rss, "hwm": rss, "cpu_percent": 0.0,
            "cpu_seconds": 0.0}  # fmt: skip


def test_rss_by_process_panel_draws_the_heaviest_with_gaps(tmp_path: Path) -> None:
    """Several processes listed: one line each, the heaviest first, NaN where a sample lacks it."""
    start = 1.7e9
    samples = []
    for i in range(6):
        listed = [_listed(10, "python3", (100 + 10 * i) * MIB)]
        if 1 <= i <= 3:  # a worker that lives three samples
            listed.append(_listed(11, "sort", 300 * MIB))
        listed += [_listed(20 + k, f"w{k}", (k + 1) * MIB) for k in range(6)]  # light ones
        samples.append({**_sample(start + i * 0.5), "top_processes": listed})
    figure = render(load_run(_synthetic_run(tmp_path / "procs", samples, start)))
    _, _, processes, io = _panels(figure)  # between memory and disk I/O
    assert processes.get_ylabel() == "RSS by process (MiB)"
    lines = [line for line in processes.get_lines() if line.get_gid() == "process"]
    assert [line.get_label() for line in lines] == [
        "sort 11 (peak 300 MiB)", "python3 10 (peak 150 MiB)", "w5 25 (peak 6 MiB)",
        "w4 24 (peak 5 MiB)", "w3 23 (peak 4 MiB)",
    ]  # fmt: skip
    sort = _ydata(lines[0])
    assert [np.isnan(value) for value in sort] == [True, False, False, False, True, True]
    assert sort[1:4] == [300.0, 300.0, 300.0]
    assert _ydata(lines[1]) == [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]
    assert io.get_ylabel() == "Disk I/O (B/s)"  # below it, as before


def test_one_process_listed_has_no_process_panel(tmp_path: Path) -> None:
    """One pid (its name may change at exec): its RSS is the memory panel's, no panel of its own."""
    start = 1.7e9
    samples = [{**_sample(start + i * 0.5),
                "top_processes": [_listed(10, "sh" if i == 0 else "python3", 100 * MIB)]}
               for i in range(4)]  # fmt: skip
    figure = render(load_run(_synthetic_run(tmp_path / "one", samples, start)))
    assert [ax.get_ylabel() for ax in _panels(figure)] == [
        "CPU (CPUs busy)", "Memory (MiB)", "Disk I/O (B/s)",
    ]  # fmt: skip
