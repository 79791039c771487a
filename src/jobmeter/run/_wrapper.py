"""``jobmeter run``'s life: the command started and measured, its figures published, Comet last.

The CLI parses the options and prints; everything a run does in between is
here. What the command needs of the wrapper's telemetry is made before it
starts, and the OpenTelemetry SDK once it runs (``_telemetry``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace

from jobmeter._core.environment import env_value
from jobmeter._core.variables import SERVICE_NAME
from jobmeter._rundata.summary import RunResult
from jobmeter.run._command import RunOptions, run_command
from jobmeter.run._telemetry import WrapperTelemetry


def _service_name(options: RunOptions) -> dict[str, str]:
    """OTEL_SERVICE_NAME for the command and the wrapper: the run's name, unless already set."""
    if options.name is None or env_value(SERVICE_NAME) is not None:
        return {}
    return {SERVICE_NAME: options.name}


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
            exporters, on an endpoint the command's processes share when they
            call configure(); False opens no endpoint of the wrapper's own.
        comet: log the run to Comet when it ends (bounded; a failure is a warning).
        on_end: called with the result once telemetry is down, before Comet
            (the CLI prints the summary there).
    """
    named = _service_name(options)
    service = {"service_name": named[SERVICE_NAME]} if named else {}
    job = options.name or os.path.basename(argv[0])
    # Before the command starts: the settings (warned about once, strict errors now)
    # and the endpoint's port and directory, which the command's processes join.
    telemetry = WrapperTelemetry(metrics, service, {"jobmeter.run.name": job})
    environment = {**named, **telemetry.environment, **options.environment}
    options = replace(options, environment=environment)
    result = run_command(argv, options, on_sample=telemetry.on_sample)
    telemetry.finish(job, result)
    if on_end is not None:
        on_end(result)
    if comet:
        from jobmeter.run import _comet

        _comet.log_at_end(result.directory, {})
    return result
