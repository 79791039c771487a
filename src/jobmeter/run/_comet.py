"""The end of a run that asked for Comet (``Run(comet=...)``, ``jobmeter run --comet``).

The run is logged with ``jobmeter.cometml.log_run``, bounded in time, and a
failure is one warning: the run is over and recorded, and Comet must not fail
it. Nothing here imports comet_ml: it loads only when such a run ends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from jobmeter._core import waits

_log = logging.getLogger("jobmeter")
#: The keys ``Run(comet={...})`` accepts: keyword arguments of ``cometml.log_run``.
KEYS: Final = ("offline", "project_name", "workspace")


def options(comet: object) -> dict[str, Any] | None:
    """``Run(comet=...)`` checked: None for off, else log_run's keyword arguments.

    Raises:
        ValueError: comet is not a bool or a mapping of the accepted keys.
    """
    if comet is False or comet is None:
        return None
    if comet is True:
        return {}
    if isinstance(comet, Mapping):
        unknown = sorted(str(key) for key in comet if key not in KEYS)
        if unknown:
            raise ValueError(f"comet: unknown key(s) {unknown}; accepted: {', '.join(KEYS)}")
        return dict(comet)
    raise ValueError(f"comet must be True, False or a mapping with keys {', '.join(KEYS)}; "
                     f"got {comet!r}")  # fmt: skip


#: Seconds the end of a run waits for Comet (an unreachable Comet retries for half a minute).
TIMEOUT_S: Final = 15.0


def log_at_end(directory: Path, settings: Mapping[str, Any], timeout: float = TIMEOUT_S) -> bool:
    """Log the finished run in ``directory`` to Comet, waiting at most ``timeout`` seconds.

    A failure or a Comet that does not answer in time is one warning; the run
    stays in the store, to be logged later with ``jobmeter.cometml.log_run``.
    Returns whether it was logged.
    """

    def log() -> None:
        from jobmeter import cometml

        cometml.log_run(directory, **settings)

    outcome = waits.bounded(log, timeout, "jobmeter-comet")
    if not outcome.finished:
        _log.warning("jobmeter: Comet did not finish logging run %s within %.0f s; the job goes "
                     "on (log it later: jobmeter.cometml.log_run(%r))", directory.name, timeout,
                     directory.name)  # fmt: skip
        return False
    if outcome.error is not None:
        _log.warning("jobmeter: could not log run %s to Comet: %s", directory.name, outcome.error)
        return False
    return True
