"""The value parsers of jobmeter's settings, and the values they accept.

Each parser takes the setting's name (the environment variable or the keyword
argument, for the error message) and the raw value, and returns the parsed
value or raises ConfigurationError naming the setting, the value and what is
accepted. Environment values arrive stripped; keyword values as given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from jobmeter._core.errors import ConfigurationError

Parser = Callable[[str, Any], Any]

EXPORTERS: Final = ("prometheus", "otlp", "console", "none")
PROTOCOLS: Final = ("grpc", "http/protobuf")
TEMPORALITIES: Final = ("cumulative", "delta", "lowmemory")
# HostCollector's metric groups.
HOST_GROUPS: Final = (
    "cpu", "per_cpu", "memory", "disk", "network", "filesystem", "load", "process", "gpu",
    "energy",
)  # fmt: skip
# GPUCollector's metrics, by what they measure (JOBMETER_GPU_METRICS).
GPU_METRIC_NAMES: Final = ("memory", "utilization", "power", "energy", "temperature")


def parse_text(setting: str, raw: Any) -> str:
    """Any string, kept as given."""
    return str(raw)


def parse_bool(setting: str, raw: str | bool) -> bool:
    """Parse a boolean the way the OTel specification says: only "true" is true."""
    if isinstance(raw, bool):  # a keyword argument
        return raw
    text = str(raw)
    value = text.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise ConfigurationError(setting, text, "true, false")


def parse_exporters(setting: str, raw: str | Sequence[str]) -> tuple[str, ...]:
    """Parse a comma-separated exporter list such as ``prometheus,otlp``."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names: list[str] = []
    for item in items:
        name = item.strip().lower()
        if name not in EXPORTERS:
            raise ConfigurationError(
                setting,
                raw,
                ", ".join(EXPORTERS) + " (comma-separated)",
                f"unknown exporter {item!r}",
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigurationError(setting, raw, ", ".join(EXPORTERS) + " (comma-separated)")
    if "none" in names and len(names) > 1:
        raise ConfigurationError(
            setting, raw, "'none' alone, or a list of the others", "'none' cannot be combined"
        )
    return tuple(names)


def parse_host_groups(setting: str, raw: str) -> frozenset[str]:
    """Parse a comma-separated subset of HostCollector's groups such as ``cpu,memory``."""
    groups: set[str] = set()
    for item in raw.split(","):
        name = item.strip().lower()
        if name not in HOST_GROUPS:
            raise ConfigurationError(
                setting, raw, ", ".join(HOST_GROUPS) + " (comma-separated)",
                f"unknown group {item.strip()!r}",
            )  # fmt: skip
        groups.add(name)
    return frozenset(groups)


def parse_gpu_metrics(setting: str, raw: str | Iterable[str]) -> frozenset[str]:
    """Parse GPU metric names such as ``memory,power`` (the keyword: any iterable of names)."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    chosen: set[str] = set()
    for item in items:
        name = str(item).strip().lower()
        if name not in GPU_METRIC_NAMES:
            raise ConfigurationError(
                setting, raw if isinstance(raw, str) else items,
                ", ".join(GPU_METRIC_NAMES) + " (comma-separated)",
                f"unknown GPU metric {str(item).strip()!r}",
            )  # fmt: skip
        chosen.add(name)
    return frozenset(chosen)


def parse_millis(setting: str, raw: str | float) -> float:
    """Parse a duration in milliseconds: a finite number above zero."""
    return _positive(setting, raw, "a number of milliseconds, more than 0")


def parse_seconds(setting: str, raw: str | float) -> float:
    """Parse a duration in seconds: a finite number above zero."""
    return _positive(setting, raw, "a number of seconds, more than 0")


def _positive(setting: str, raw: str | float, accepted: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(setting, raw, accepted)
    return value


def parse_price(setting: str, raw: str | float) -> float:
    """A price: a finite number, 0 or more."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if isinstance(raw, bool) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(setting, raw, "a number, 0 or more")
    return value


def parse_port(setting: str, raw: str | int) -> int:
    """Parse a TCP port; 0 asks the operating system for a free one."""
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigurationError(
            setting, raw, "an integer port from 0 to 65535 (0 picks a free one)"
        )
    return port


def parse_choice(setting: str, raw: str, choices: Sequence[str]) -> str:
    """Parse one value out of a fixed, case-insensitive list."""
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigurationError(setting, raw, ", ".join(choices))
    return value


HOST_NAME_MODES: Final = ("plain", "hash", "omit")
#: What the endpoint serves of prometheus_client's default registry (``default_registry``).
DEFAULT_REGISTRY_MODES: Final = ("true", "false", "all")


def parse_default_registry(setting: str, raw: str | bool) -> str:
    """``true``, ``false`` or ``all``; a keyword may also be a bool."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return parse_choice(setting, str(raw), DEFAULT_REGISTRY_MODES)


def parse_host_name(setting: str, raw: str) -> str:
    """How the host name is shown: ``plain``, ``hash`` or ``omit``."""
    return parse_choice(setting, raw, HOST_NAME_MODES)


def parse_protocol(setting: str, raw: str) -> str:
    """Parse an OTLP protocol: ``grpc`` or ``http/protobuf``."""
    return parse_choice(setting, raw, PROTOCOLS)


def parse_temporality(setting: str, raw: str) -> str:
    """Parse an OTLP temporality preference: ``cumulative``, ``delta`` or ``lowmemory``."""
    return parse_choice(setting, raw, TEMPORALITIES)


def parse_key_values(setting: str, raw: str | Mapping[str, Any]) -> dict[str, str]:
    """Parse ``key1=value1,key2=value2`` with percent-encoded values (W3C Baggage style)."""
    if not isinstance(raw, str):
        return {str(k): str(v) for k, v in raw.items()}
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(
                setting,
                raw,
                "comma-separated key=value pairs, values percent-encoded",
                f"{item.strip()!r} is not key=value",
            )
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def parse_endpoint(setting: str, raw: str) -> str:
    """Check that an OTLP endpoint is an http(s) URL with a host and a valid port."""
    return _http_url(setting, raw, "http://localhost:4317", check_port=True)


def parse_pushgateway_url(setting: str, raw: str) -> str:
    """Check that a Pushgateway URL is an http(s) URL with a host (the port is not checked)."""
    return _http_url(setting, raw, "http://pushgateway:9091", check_port=False)


def _http_url(setting: str, raw: str, example: str, *, check_port: bool) -> str:
    value = raw.strip()
    accepted = f"a URL such as {example}"
    try:  # urlsplit itself raises on a broken IPv6 host ("http://[::1")
        parts = urlsplit(value)
        if check_port:
            _ = parts.port
    except ValueError:
        raise ConfigurationError(setting, raw, accepted) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(setting, raw, accepted)
    return value


def parse_file(setting: str, raw: str) -> str:
    """Check that a path names a readable regular file; return it unchanged."""
    path = str(raw).strip()
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigurationError(setting, raw, "the path of a readable file", "no such file")
    return path


_BASIC_AUTH_FORM: Final = "user:password (a user name without ':', then a non-empty password)"


def parse_basic_auth(setting: str, raw: str | Sequence[str]) -> tuple[str, str]:
    """Parse ``user:password`` (or a (user, password) pair); errors never show the password."""
    if isinstance(raw, str):
        user, sep, password = raw.partition(":")
    else:
        pair = list(raw)
        user, password = (str(pair[0]), str(pair[1])) if len(pair) == 2 else ("", "")
        sep = ":"
    if not sep or not user or not password or ":" in user:
        masked = f"{user}:***" if sep else "***"
        raise ConfigurationError(setting, masked, _BASIC_AUTH_FORM)
    return user, password


def parse_basic_auth_file(setting: str, raw: str) -> tuple[str, str]:
    """Read ``user:password`` from the first line of a file (a secret kept out of the env)."""
    path = parse_file(setting, raw)
    try:
        with open(path, encoding="utf-8") as file:
            line = file.readline().rstrip("\r\n")
    except (OSError, UnicodeError) as error:
        raise ConfigurationError(setting, raw, "a readable UTF-8 file", str(error)) from None
    try:
        return parse_basic_auth(setting, line)
    except ConfigurationError:
        raise ConfigurationError(
            setting, raw, f"a file whose first line is {_BASIC_AUTH_FORM}"
        ) from None
