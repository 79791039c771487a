"""``jobmeter run``'s life: telemetry up, the command measured with live metrics, the final push,
telemetry down, and Comet last.

The CLI parses the options and prints; everything a run does in between is here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from jobmeter._core.errors import ConfigurationError
from jobmeter._rundata.summary import RunResult
from jobmeter.run import _comet
from jobmeter.run._command import RunOptions, run_command

if TYPE_CHECKING:
    from jobmeter._core.sdk import Telemetry


def _configure_quietly() -> Telemetry:
    """configure() from the environment; a busy port must not stop the command from running."""
    from jobmeter._core.sdk import configure

    try:
        return configure()
    except ConfigurationError as error:
        print(f"jobmeter: {error}; running without a metrics endpoint", file=sys.stderr)
        return configure(exporters="none")


def execute(
    argv: Sequence[str],
    options: RunOptions,
    *,
    metrics: bool = True,
    comet: bool = False,
    on_end: Callable[[RunResult], None] | None = None,
) -> RunResult:
    """Run ``argv`` as ``jobmeter run`` does, and return what it cost.

    Args:
        argv: the command and its arguments.
        options: how the command runs and is recorded.
        metrics: publish the run's figures while it runs through the OTEL_*
            exporters; False opens no endpoint of the wrapper's own.
        comet: log the run to Comet when it ends (bounded; a failure is a warning).
        on_end: called with the result once telemetry is down, before Comet
            (the CLI prints the summary there).
    """
    # Here, not at import: `import jobmeter.run` loads no OpenTelemetry SDK.
    from jobmeter._core.sdk import configure
    from jobmeter.run._live import RunCollector, push_result

    telemetry = _configure_quietly() if metrics else configure(exporters="none")
    job = options.name or os.path.basename(argv[0])
    live = RunCollector(attributes={"jobmeter.run.name": job})
    result = run_command(argv, options, on_sample=live.update)
    push_result(job, result)
    telemetry.shutdown()
    if on_end is not None:
        on_end(result)
    if comet:
        _comet.log_at_end(result.directory, {})
    return result
