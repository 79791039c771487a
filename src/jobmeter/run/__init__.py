"""``jobmeter run``: measure a whole process tree, as a command and as a Python API."""

from jobmeter.run._runner import RunOptions, RunResult, run_command

__all__ = ["RunOptions", "RunResult", "run_command"]
