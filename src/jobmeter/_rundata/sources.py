"""How a source of records enters a run: registration, and joining the run a process was started in.

A process started by ``jobmeter run`` (or from inside a ``jobmeter.Run``) finds
the run's directory in ``JOBMETER_RUN`` and joins that run when its first
source registers: its operations land in the same run without code changes.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from jobmeter._core.environment import env_value, read
from jobmeter._core.parse import parse_seconds
from jobmeter._core.variables import RUN_FLUSH_INTERVAL
from jobmeter._rundata import routing
from jobmeter._rundata.recorder import DEFAULT_FLUSH_INTERVAL_S, Recorder

_log = logging.getLogger("jobmeter")

_lock = threading.Lock()
_join_checked = False


def register(source: routing.Source) -> None:
    """Make ``source`` known; it keeps records at once if a run records (joined, if need be)."""
    _join_from_environment()
    routing.register(source)


def flush_interval() -> float:
    """``JOBMETER_RUN_FLUSH_INTERVAL`` in seconds, else the default.

    A value that cannot be used is one warning and the default (an error in strict mode).
    """
    applies = f"the default applies ({DEFAULT_FLUSH_INTERVAL_S:g} s)"
    return read(RUN_FLUSH_INTERVAL, parse_seconds, DEFAULT_FLUSH_INTERVAL_S, applies)


def join_run(directory: str | os.PathLike[str]) -> Recorder | None:
    """Record this process's measurements into an existing run directory."""
    path = Path(directory)
    if not path.is_dir():
        _log.warning("jobmeter: %s=%s is not a directory; this process records no run",
                     routing.RUN_ENV, directory)  # fmt: skip
        return None
    if routing.active is not None:
        return None
    return Recorder(path, flush_interval()).start()


def _join_from_environment() -> None:
    """Join the run named by JOBMETER_RUN, once per process."""
    global _join_checked
    with _lock:
        if _join_checked:
            return
        _join_checked = True
        directory = env_value(routing.RUN_ENV)
        if not directory:
            return
        try:
            join_run(directory)
        except Exception as error:  # never break the job over its measurement
            _log.warning("jobmeter: cannot record into the run at %s: %s", directory, error)
