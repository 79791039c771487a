"""``jobmeter run`` and ``jobmeter.Run``: measure a process tree or a block of a program."""

from jobmeter.run._command import RunOptions, RunResult, run_command
from jobmeter.run._program import Run

__all__ = ["Run", "RunOptions", "RunResult", "run_command"]
