"""``jobmeter run``'s own parser reads every argument list it takes exactly as typer does.

``jobmeter.cli.main`` parses run's arguments without typer, so that the command
starts before typer loads (``_run_command.parse``); anything it does not take
goes to typer. Generated argument lists are given to both: where the parser
takes one, typer must take it too, with the same values; where typer refuses
one, the parser must have handed it on. The forms users write are all taken,
and a real ``jobmeter run`` through ``main`` loads neither typer nor the SDK
before its command starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from jobmeter.cli import app
from jobmeter.cli._run_command import RunArguments, parse

RUN = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]


def typer_reads(args: list[str]) -> RunArguments | None:
    """What typer makes of run's arguments, or None when it refuses them (or shows help)."""
    try:
        context = RUN.make_context("run", list(args))
    except (typer.Exit, Exception):
        return None
    params: dict[str, Any] = dict(context.params)
    params["command"] = list(params["command"] or ())
    return RunArguments(**params)


TOKENS = st.sampled_from([
    "--interval", "-i", "--dir", "--output", "-o", "--name", "--kill-grace",
    "--capture", "--no-capture", "--record-args", "--metrics", "--no-metrics", "--comet",
    "--quiet", "-q", "--json", "--help", "-h", "--bogus", "-qi0.5", "-i0.5",
    "--interval=0.5", "--interval=0.01", "--kill-grace=0", "--kill-grace=-1", "--name=x",
    "--dir=", "--quiet=1", "--", "-", "0.5", "0.05", "0.049", "1e-1", "nan", "inf", "abc",
    "true", "python", "-u", "x.py", "--dir", "/tmp/runs", "--processes", "--processes=0",
    "--processes=-1", "--processes=1.5", "--processes= 3 ", "3", "+2", "1_000",
])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(TOKENS, max_size=7))
def test_what_the_parser_takes_typer_reads_the_same(args: list[str]) -> None:
    ours = parse(args)
    theirs = typer_reads(args)
    if ours is not None:
        assert theirs == ours, args
    if theirs is None:
        assert ours is None, args


FORMS = {
    "run -- true": RunArguments(["true"]),
    "run true": RunArguments(["true"]),
    "run -q --interval 0.5 -- python -u x.py": RunArguments(
        ["python", "-u", "x.py"], interval=0.5, quiet=True
    ),
    "run --interval=0.05 --dir /tmp/r --name nightly -- sh -c 'exit 3'": RunArguments(
        ["sh", "-c", "'exit", "3'"], interval=0.05, directory="/tmp/r", name="nightly"
    ),
    "run -i 2 --no-capture --record-args --no-metrics --json --kill-grace 0 -- a": RunArguments(
        ["a"],
        interval=2.0,
        capture=False,
        record_args=True,
        metrics=False,
        as_json=True,
        kill_grace=0.0,
    ),
    "run --comet -o old -- a -- b": RunArguments(["a", "--", "b"], comet=True, output="old"),
    "run --processes 3 --record-args -- a": RunArguments(["a"], processes=3, record_args=True),
    "run --processes=0 -- a": RunArguments(["a"], processes=0),
    "run -- --help": RunArguments(["--help"]),
}


@pytest.mark.parametrize("form", FORMS)
def test_the_forms_users_write_are_taken_without_typer(form: str) -> None:
    args = form.split()[1:]
    assert parse(args) == FORMS[form]
    assert typer_reads(args) == FORMS[form]


@pytest.mark.parametrize("args", [
    [], ["--help"], ["-i0.01", "--", "true"], ["--interval", "0.01", "--", "true"],
    ["--bogus", "--", "true"], ["--"], ["-q"], ["--kill-grace", "-1", "true"],
    ["--interval", "nan", "true"], ["--processes", "-1", "true"], ["--processes", "2.5", "true"],
])  # fmt: skip
def test_help_and_what_typer_refuses_go_to_typer(args: list[str]) -> None:
    assert parse(args) is None


HEAVY = ("typer", "click", "rich", "pydantic", "duckdb", "opentelemetry.sdk", "prometheus_client")

# The real entry point, with the spawn of the command wrapped to note what was loaded then.
LOADED_AT_SPAWN = """
import json, sys
report, heavy, runs = sys.argv[1], tuple(json.loads(sys.argv[2])), sys.argv[3]
import jobmeter.run._command as command
real = command._spawn
def spawn(*args, **kwargs):
    open(report, "w").write(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
    return real(*args, **kwargs)
command._spawn = spawn
sys.argv = ["jobmeter", "run", "-q", "--dir", runs, "--", "true"]
from jobmeter.cli import main
main()
"""


@pytest.mark.parametrize("metrics", ["prometheus", "none"])
def test_a_run_loads_no_typer_rich_or_sdk_before_its_command(tmp_path: Path, metrics: str) -> None:
    report = tmp_path / "loaded.json"
    env = {**os.environ, "OTEL_METRICS_EXPORTER": metrics, "OTEL_EXPORTER_PROMETHEUS_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-c", LOADED_AT_SPAWN, str(report), json.dumps(HEAVY),
         str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(report.read_text()) == []
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("succeeded", 0)


def test_run_arguments_name_every_option_of_the_typer_command() -> None:
    names = {p.name for p in RUN.params}
    assert names == {f.name for f in dataclasses.fields(RunArguments)}
