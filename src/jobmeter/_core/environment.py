"""Reading the environment, and what a value that cannot be used does: warn, or raise when strict.

The OpenTelemetry specification asks SDKs not to fail over their configuration:
an environment value that cannot be used is one warning naming the variable,
the value and what is accepted, and the default applies. ``JOBMETER_STRICT=true``
(or ``configure(strict=True)``) makes it a ``ConfigurationError`` instead, for
CI and for users who want to fail fast. Wrong arguments in code are not
environment values: they always raise, at their call.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

from jobmeter._core import reset
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.parse import parse_bool
from jobmeter._core.variables import STRICT

_log = logging.getLogger("jobmeter")

T = TypeVar("T")

_lock = threading.Lock()
# (setting, value, consequence) already warned about: one warning each per process.
_warned: set[tuple[str, str, str]] = set()


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value; None when it is unset, empty or blank (unset, as the spec says)."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def strict_mode(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``JOBMETER_STRICT`` asks for errors; a value that is not a boolean warns."""
    return read(STRICT, parse_bool, False, "strict mode stays off", environ=environ, strict=False)


def read(
    name: str,
    parse: Callable[[str, str], T],
    default: T,
    consequence: str,
    *,
    environ: Mapping[str, str] | None = None,
    strict: bool | None = None,
) -> T:
    """The variable parsed, or ``default`` when unset or (with a warning, see reject()) unusable."""
    raw = env_value(name, environ)
    if raw is None:
        return default
    try:
        return parse(name, raw)
    except ConfigurationError as error:
        reject(error, consequence, strict=strict)
        return default


def reject(error: ConfigurationError, consequence: str, *, strict: bool | None = None) -> None:
    """A setting that cannot be used: raise ``error`` when strict, else warn once and go on.

    Args:
        error: what is wrong, naming the setting, the value and what is accepted.
        consequence: what happens instead, such as "the default applies (8000)".
        strict: strict mode as already resolved; None reads ``JOBMETER_STRICT``.
    """
    if strict if strict is not None else strict_mode():
        raise error
    key = (error.setting, repr(error.value), consequence)
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    _log.warning("jobmeter: %s; %s", error, consequence)


def _forget_warnings() -> None:
    with _lock:
        _warned.clear()


reset.on_reset(_forget_warnings, reset.TELEMETRY)
