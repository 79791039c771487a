"""``jobmeter run`` and ``jobmeter.Run``: measure a process tree or a block of a program.

``Run`` loads on first use: ``jobmeter run`` starts its command without it.
"""

from typing import TYPE_CHECKING, Any

from jobmeter._core.facade import publish
from jobmeter._rundata.summary import RunResult
from jobmeter.run._command import RunOptions, run_command
from jobmeter.run._wrapper import execute

if TYPE_CHECKING:
    from jobmeter.run._program import Run

__all__ = ["Run", "RunOptions", "RunResult", "execute", "run_command"]

publish(globals())


def __getattr__(name: str) -> Any:
    if name == "Run":
        from jobmeter.run._program import Run

        Run.__module__ = __name__
        globals()["Run"] = Run
        return Run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
