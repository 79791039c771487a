"""``jobmeter run`` without typer: its options read, the command run, its summary printed.

typer, click and pydantic take about 0.25 s to load and parse; ``jobmeter run
-- true`` should cost what the command costs. So ``main()`` hands run's
arguments to ``parse()`` first, which takes only the argument lists it reads
exactly as typer does (tests/cli compare the two on generated lists) and
returns None for anything else: ``--help``, a value typer would refuse, an
unknown option, short options run together (``-qi0.5``). typer then parses
those, with its help and its one-line usage errors. Both end in ``execute()``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jobmeter.run import RunResult


@dataclass(frozen=True)
class RunArguments:
    """What ``jobmeter run``'s command line says (typer's parameter names)."""

    command: list[str] = field(default_factory=list)
    interval: float = 1.0
    directory: str | None = None
    output: str | None = None
    capture: bool = True
    record_args: bool = False
    name: str | None = None
    kill_grace: float = 10.0
    metrics: bool = True
    comet: bool = False
    quiet: bool = False
    as_json: bool = False
    processes: int = 10


# Options with a value, and the smallest number accepted where it is one.
_VALUED: Final = {
    "--interval": "interval", "-i": "interval", "--dir": "directory", "--output": "output",
    "-o": "output", "--name": "name", "--kill-grace": "kill_grace", "--processes": "processes",
}  # fmt: skip
_MINIMUM: Final = {"interval": 0.05, "kill_grace": 0.0}
_COUNTS: Final = {"processes"}  # whole numbers, 0 or more
_FLAGS: Final = {
    "--capture": ("capture", True), "--no-capture": ("capture", False),
    "--record-args": ("record_args", True), "--metrics": ("metrics", True),
    "--no-metrics": ("metrics", False), "--comet": ("comet", True),
    "--quiet": ("quiet", True), "-q": ("quiet", True), "--json": ("as_json", True),
}  # fmt: skip


def parse(args: Sequence[str]) -> RunArguments | None:
    """Run's arguments (after ``run``), or None where typer must read them."""
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break  # the command's first word: the rest is its own
        name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _FLAGS and not equals:
            key, flag = _FLAGS[name]
            values[key] = flag
            i += 1
            continue
        if name not in _VALUED:
            return None  # --help, an unknown option, -qi0.5: typer's
        if not equals:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
        i += 1 if equals else 2
        key = _VALUED[name]
        if key in _COUNTS:
            try:
                count = int(value)  # as click's INT reads it: " 12 ", "+5" and "1_000" too
            except ValueError:
                return None
            if count < 0:
                return None
            values[key] = count
        elif key in _MINIMUM:
            try:
                number = float(value)
            except ValueError:
                return None
            if not math.isfinite(number) or number < _MINIMUM[key]:
                return None  # typer says what is accepted
            values[key] = number
        else:
            values[key] = value
    command = list(args[i:])
    return RunArguments(command, **values) if command else None


def execute(arguments: RunArguments) -> int:
    """Run the command as ``arguments`` say, print the summary, and return the exit status."""
    from jobmeter.run import RunOptions
    from jobmeter.run import execute as execute_run

    def print_summary(result: RunResult) -> None:
        from jobmeter._rundata.summary import NOT_STARTED

        if result.status == NOT_STARTED:
            return  # its one line is on stderr already; a table of zeros would say nothing
        if arguments.as_json:
            print(json.dumps(result.to_json(), indent=2, sort_keys=True), file=sys.stderr)
        elif not arguments.quiet:
            from jobmeter.cli._run_summary import print_table

            print_table(result)

    if arguments.output is not None:
        print("jobmeter: warning: run -o/--output is now --dir (the runs directory)",
              file=sys.stderr)  # fmt: skip
    options = RunOptions(
        interval=arguments.interval, output=arguments.directory or arguments.output,
        capture=arguments.capture, record_args=arguments.record_args, name=arguments.name,
        kill_grace=arguments.kill_grace, processes=arguments.processes,
    )  # fmt: skip
    result = execute_run(
        arguments.command, options, metrics=arguments.metrics, comet=arguments.comet,
        on_end=print_summary,
    )  # fmt: skip
    return result.exit_code
