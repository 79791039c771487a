"""``jobmeter run``'s life: telemetry up, the command measured with live metrics, the final push,
telemetry down, and Comet last.

The CLI parses the options and prints; everything a run does in between is here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from jobmeter._core import pushgateway
from jobmeter._core.environment import env_value
from jobmeter._core.variables import SERVICE_NAME
from jobmeter._rundata.summary import RunResult
from jobmeter.run import _comet
from jobmeter.run._command import RunOptions, run_command


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
    # Here, not at import: `import jobmeter.run` loads no OpenTelemetry SDK.
    from jobmeter._core.sdk import configure, configure_host
    from jobmeter.run._live import RunCollector, push_result

    named = _service_name(options)
    service: dict[str, Any] = {"service_name": named[SERVICE_NAME]} if named else {}
    # The command's processes that call configure() join this endpoint: one port per run.
    telemetry = configure_host(**service) if metrics else configure(exporters="none", **service)
    if telemetry.settings.strict:
        pushgateway.gateway_url()  # strict: a URL that cannot be used stops the run at once
    job = options.name or os.path.basename(argv[0])
    live = RunCollector(attributes={"jobmeter.run.name": job})
    environment = {**named, **telemetry.shared_environment, **options.environment}
    options = replace(options, environment=environment)
    result = run_command(argv, options, on_sample=live.update)
    push_result(job, result)
    telemetry.shutdown()
    if on_end is not None:
        on_end(result)
    if comet:
        _comet.log_at_end(result.directory, {})
    return result
