"""The exceptions of jobmeter's public API."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """A configuration value is invalid.

    The message names the setting (environment variable or keyword argument),
    the value given and the values that are accepted.

    Attributes:
        setting: the environment variable or keyword argument that was wrong.
        value: the value that was given.
    """

    def __init__(self, setting: str, value: object, accepted: str, detail: str = "") -> None:
        self.setting = setting
        self.value = value
        self.accepted = accepted
        reason = f": {detail}" if detail else ""
        super().__init__(f"{setting}={value!r} is invalid{reason}; accepted: {accepted}")


# Tracebacks and error.type name the public path: jobmeter.ConfigurationError.
ConfigurationError.__module__ = "jobmeter"
