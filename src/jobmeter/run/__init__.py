"""``jobmeter run`` and ``jobmeter.Run``: measure a process tree or a block of a program."""

from jobmeter.run._context import Run
from jobmeter.run._runner import RunOptions, RunResult, run_command

__all__ = ["Run", "RunOptions", "RunResult", "run_command"]
