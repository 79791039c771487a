"""``jobmeter run`` and ``jobmeter.Run``: measure a process tree or a block of a program."""

from jobmeter._core.facade import publish
from jobmeter._rundata.summary import RunResult
from jobmeter.run._command import RunOptions, run_command
from jobmeter.run._program import Run
from jobmeter.run._wrapper import execute

__all__ = ["Run", "RunOptions", "RunResult", "execute", "run_command"]

publish(globals())
