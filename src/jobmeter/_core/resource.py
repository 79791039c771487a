"""The OTel Resource jobmeter describes a process with.

Only identity, never the command line or the environment: process.command_args
and friends (the SDK's opt-in ProcessResourceDetector) are left out on purpose.
"""

from __future__ import annotations

import os
import platform
import sys
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry.sdk.resources import Resource

from jobmeter._core.config import Settings
from jobmeter._core.machine import machine_info
from jobmeter._version import __version__


def _default_service_name() -> str:
    # The specification's fallback: unknown_service:<process.executable.name>.
    return f"unknown_service:{os.path.basename(sys.executable) or 'python'}"


def _sdk_version() -> str:
    try:
        return version("opentelemetry-sdk")
    except PackageNotFoundError:
        return "unknown"


def process_identity() -> dict[str, Any]:
    """Attributes that differ in every process, a forked child too."""
    return {"process.pid": os.getpid(), "service.instance.id": str(uuid.uuid4())}


def build_resource(settings: Settings) -> Resource:
    """Resource for ``settings``: service, host, process and runtime, plus the user's."""
    given = dict(settings.resource_attributes)
    attributes: dict[str, Any] = {
        **machine_info(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
        "process.runtime.description": sys.version.replace("\n", " "),
        "process.executable.name": os.path.basename(sys.executable),
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": _sdk_version(),
        "telemetry.distro.name": "jobmeter",
        "telemetry.distro.version": __version__,
        **process_identity(),
    }
    attributes.update(given)
    # OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES.
    attributes["service.name"] = (
        settings.service_name or given.get("service.name") or _default_service_name()
    )
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    # Resource(), not Resource.create(): create() would merge OTEL_RESOURCE_ATTRIBUTES
    # back over a keyword override, and run opt-in detectors (the "process" one
    # exports the command line).
    return Resource(attributes)
