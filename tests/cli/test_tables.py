"""What the commands print: golden outputs at 80 and 160 columns and in a pipe.

Each command runs for real (``python -m jobmeter``) with stdout on a pseudo-terminal of
the given width, or on a pipe, over a store with exactly known figures
(tests/_support/golden_store.py). ``UPDATE_GOLDEN=1 pytest tests/cli`` rewrites the golden files;
review their diff before committing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _support.golden_store import make_store
from _support.terminal import run_at_terminal, strip_escapes

GOLDEN = Path(__file__).parent / "golden"
COMMANDS = {
    "runs": ["runs"],
    "report": ["report"],
    "compare": ["compare", "20261102T08", "nightly-etl"],
    "advise": ["advise", "--name", "nightly-etl"],
}
WIDTHS = (80, 160, None)  # None: a pipe
BOX = set("─│┃━┏┓┗┛┡┩╇╋")


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory: its ``runs`` holds three runs."""
    here = tmp_path_factory.mktemp("golden")
    make_store(here / "runs")
    return here


def _env() -> dict[str, str]:
    return {**os.environ, "TZ": "UTC", "NO_COLOR": "1", "OTEL_METRICS_EXPORTER": "none",
            "JOBMETER_PRICE_PER_KWH": "0.25", "JOBMETER_PRICE_PER_CPU_HOUR": "0.04",
            "JOBMETER_PRICE_PER_GB_HOUR": "0.005"}  # fmt: skip


def _command(*args: str) -> list[str]:
    """``python -m jobmeter ARGS`` over the store in ./runs (info reads no store)."""
    store = [] if args[0] == "info" else ["--dir", "runs"]
    return [sys.executable, "-m", "jobmeter", *args, *store]


def _piped(cwd: Path, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def _shown(cwd: Path, args: list[str], width: int | None) -> str:
    command = _command(*args)
    if width is None:
        done = _piped(cwd, command, _env())
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        os.chdir(cwd)  # run_at_terminal runs in the current directory
        code, out, err = run_at_terminal(command, width, _env())
    assert code == 0, err
    return "\n".join(line.rstrip() for line in strip_escapes(out).splitlines()) + "\n"


def _json(cwd: Path, args: list[str]) -> Any:
    done = _piped(cwd, [*_command(*args), "--json"], _env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("width", WIDTHS, ids=["80", "160", "pipe"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_output_matches_its_golden_file(
    store_dir: Path, name: str, width: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(store_dir)
    text = _shown(store_dir, COMMANDS[name], width)
    golden = GOLDEN / f"{name}-{width or 'pipe'}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden.name} differs; UPDATE_GOLDEN=1 rewrites it"
    lines = text.splitlines()
    if width is None:  # plain: no box drawing; one row per line
        assert not BOX & set(text)
    else:  # nothing wider than the terminal but a path, kept whole to copy
        assert all(len(line) <= width for line in lines if not line.startswith("run directory"))


def _figures(store_dir: Path, name: str) -> list[str]:
    """What each command must show at every width, from its --json."""
    data = _json(store_dir, COMMANDS[name])
    if name == "runs":
        return [row["id"] for row in data] + ["1.8 GiB", "300.0 MiB", "1.5 GiB", "765.6 s"]
    if name == "report":
        ops = {op["operation"]: op for op in data["operations"]}
        assert ops["transform"]["count"] == 7
        return ["765.62 s", "1.8 GiB", "12.0 GiB / 750.0 MiB", "5 / 23", "#aa0852a9b1de",
                "#1dd2c5037966", "529.4 ms", "75.6 ms", "1.99 s", "810.0 ms", "3.44 s",
                "1.86 s", "200000", "TimeoutError", f"runs/{data['id']}"]  # fmt: skip
    if name == "compare":
        assert data["figures"]["wall_seconds"]["change_percent"] == pytest.approx(25.0)
        return ["wall time", "612.50 s", "765.62 s", "+25.0 %", "+264.0 MiB", "+17.2 %",
                "3 ", "+25.0 %"]  # fmt: skip
    # p95 of 1536 and 1800 MiB is 1786.8 MiB; x 1.2 = 2144.2 MiB; up to 256 MiB steps: 2304 MiB.
    assert data["memory_bytes"]["request"] == 2304 * 2**20
    return ["1.7 GiB", "2.1 GiB", "2304 MiB", "2.00", "2.40", "2.5", "20261102T080000Z-000000"]


@pytest.mark.parametrize("width", WIDTHS, ids=["80", "160", "pipe"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_figure_is_shown_at_every_width(
    store_dir: Path, name: str, width: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns optional columns go (and are named); these figures stay whole."""
    monkeypatch.chdir(store_dir)
    text = _shown(store_dir, COMMANDS[name], width)
    for figure in _figures(store_dir, name):
        assert figure in text, f"{figure!r} missing at {width or 'pipe'}:\n{text}"


def test_a_narrow_terminal_names_the_columns_it_left_out(store_dir: Path) -> None:
    text = _shown(store_dir, ["report"], 80)
    assert "(left out at 80 columns: mean, p50, energy; a wider terminal or --json shows" in text
    wide = _shown(store_dir, ["report"], 160)
    assert "left out" not in wide
    assert "664.5 ms" in wide  # the mean, shown when it fits


def test_info_fits_and_shows_every_fact(store_dir: Path) -> None:
    facts = _json(store_dir, ["info"])
    for width in WIDTHS:
        text = _shown(store_dir, ["info"], width)
        flat = " ".join(text.split())
        for key, value in facts.items():
            assert key in text
            assert str(value) in flat, (key, value, width)
        if width:
            assert max(len(line) for line in text.splitlines()) <= width


def test_colour_only_at_a_terminal_and_never_with_no_color(store_dir: Path) -> None:
    """compare marks growth red at a terminal; NO_COLOR and a pipe give none."""
    args = _command(*COMMANDS["compare"])
    os.chdir(store_dir)
    env = {key: value for key, value in _env().items() if key != "NO_COLOR"}
    _, coloured, _ = run_at_terminal(args, 120, env)
    assert "\x1b[31m" in coloured  # red: wall time +25 %
    _, plain, _ = run_at_terminal(args, 120, {**env, "NO_COLOR": "1"})
    assert "\x1b[31m" not in plain
    assert "\x1b[32m" not in plain
    piped = _piped(store_dir, args, env)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout
