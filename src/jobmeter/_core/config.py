"""Reading jobmeter's settings from OTEL_* variables and keyword arguments.

Project settings use the JOBMETER_ prefix.

Every variable jobmeter reads is in the table below. Time settings follow the
OpenTelemetry specification and are milliseconds, including
OTEL_EXPORTER_OTLP_TIMEOUT, which the Python OTLP exporters read as seconds
(opentelemetry-python #5531): jobmeter converts before handing it over.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from jobmeter._core.errors import ConfigurationError

SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
SERVICE_NAME: Final = "OTEL_SERVICE_NAME"
RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_METRICS_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTLP_METRICS_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
OTLP_HEADERS: Final = "OTEL_EXPORTER_OTLP_HEADERS"
OTLP_METRICS_HEADERS: Final = "OTEL_EXPORTER_OTLP_METRICS_HEADERS"
OTLP_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"
OTLP_METRICS_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
OTLP_TEMPORALITY: Final = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
EXPORT_INTERVAL: Final = "OTEL_METRIC_EXPORT_INTERVAL"
EXPORT_TIMEOUT: Final = "OTEL_METRIC_EXPORT_TIMEOUT"
PROMETHEUS_HOST: Final = "OTEL_EXPORTER_PROMETHEUS_HOST"
PROMETHEUS_PORT: Final = "OTEL_EXPORTER_PROMETHEUS_PORT"
HOST_METRICS: Final = "JOBMETER_HOST_METRICS"
RUN_DIR: Final = "JOBMETER_RUN_DIR"
RUN_FLUSH_INTERVAL: Final = "JOBMETER_RUN_FLUSH_INTERVAL"
RUN: Final = "JOBMETER_RUN"  # set by jobmeter for the processes of a recorded run
PUSHGATEWAY_URL: Final = "JOBMETER_PUSHGATEWAY_URL"
PROMETHEUS_CERTFILE: Final = "JOBMETER_PROMETHEUS_CERTFILE"
PROMETHEUS_KEYFILE: Final = "JOBMETER_PROMETHEUS_KEYFILE"
PROMETHEUS_CLIENT_CAFILE: Final = "JOBMETER_PROMETHEUS_CLIENT_CAFILE"
PROMETHEUS_BASIC_AUTH: Final = "JOBMETER_PROMETHEUS_BASIC_AUTH"
PROMETHEUS_BASIC_AUTH_FILE: Final = "JOBMETER_PROMETHEUS_BASIC_AUTH_FILE"

EXPORTERS: Final = ("prometheus", "otlp", "console", "none")
# HostCollector's metric groups; the default set leaves per-CPU series out.
HOST_GROUPS: Final = (
    "cpu", "per_cpu", "memory", "disk", "network", "filesystem", "load", "process", "gpu",
)  # fmt: skip
DEFAULT_HOST_GROUPS: Final = frozenset(HOST_GROUPS) - {"per_cpu"}
PROTOCOLS: Final = ("grpc", "http/protobuf")
TEMPORALITIES: Final = ("cumulative", "delta", "lowmemory")

DEFAULT_EXPORTERS: Final = ("prometheus",)
DEFAULT_PROMETHEUS_HOST: Final = "localhost"
DEFAULT_PROMETHEUS_PORT: Final = 8000
DEFAULT_OTLP_GRPC_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_OTLP_HTTP_BASE: Final = "http://localhost:4318"
DEFAULT_OTLP_TIMEOUT_MS: Final = 10_000.0
DEFAULT_EXPORT_INTERVAL_MS: Final = 60_000.0
DEFAULT_EXPORT_TIMEOUT_MS: Final = 30_000.0


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; every time is in milliseconds."""

    disabled: bool = False
    service_name: str | None = None
    service_version: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    exporters: tuple[str, ...] = DEFAULT_EXPORTERS
    otlp_endpoint: str = DEFAULT_OTLP_GRPC_ENDPOINT
    otlp_protocol: str = "grpc"
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    otlp_timeout_ms: float = DEFAULT_OTLP_TIMEOUT_MS
    otlp_temporality: str = "cumulative"
    export_interval_ms: float = DEFAULT_EXPORT_INTERVAL_MS
    export_timeout_ms: float = DEFAULT_EXPORT_TIMEOUT_MS
    prometheus_host: str = DEFAULT_PROMETHEUS_HOST
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    prometheus_certfile: str | None = None
    prometheus_keyfile: str | None = None
    prometheus_client_cafile: str | None = None
    # (user, password); kept out of repr() so that logging the settings leaks no secret.
    prometheus_basic_auth: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def shutdown_budget_ms(self) -> float:
        """How long the final export at shutdown may take: the tighter of the two timeouts."""
        if "otlp" in self.exporters:
            return min(self.export_timeout_ms, self.otlp_timeout_ms)
        return self.export_timeout_ms


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # The specification treats an empty value as unset.
    value = environ.get(name, "").strip()
    return value or None


def parse_bool(setting: str, raw: str) -> bool:
    """Parse a boolean the way the OTel specification says: only "true" is true."""
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise ConfigurationError(setting, raw, "true, false")


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
    """Check that an OTLP endpoint is an http(s) URL with a host."""
    value = raw.strip()
    try:  # urlsplit itself raises on a broken IPv6 host ("http://[::1")
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise ConfigurationError(setting, raw, "a URL such as http://localhost:4317") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(setting, raw, "a URL such as http://localhost:4317")
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


def _check_prometheus_security(settings: Settings, names: Mapping[str, str]) -> None:
    # Across settings: these may come from the environment and keywords mixed.
    cert, key = settings.prometheus_certfile, settings.prometheus_keyfile
    if (cert is None) != (key is None):
        given, missing = ("prometheus_certfile", "prometheus_keyfile")[:: 1 if key is None else -1]
        unset = f"{_SECURITY_NAMES[missing]} (keyword {missing})"
        raise ConfigurationError(
            names[given], getattr(settings, given),
            f"set together with {unset}, or neither", f"{unset} is not set",
        )  # fmt: skip
    if settings.prometheus_client_cafile is not None and cert is None:
        raise ConfigurationError(
            names["prometheus_client_cafile"],
            settings.prometheus_client_cafile,
            f"a CA file, with {names['prometheus_certfile']} and {names['prometheus_keyfile']}",
            "client certificates need TLS, and no server certificate is set",
        )


_SECURITY_NAMES: Final = {
    "prometheus_certfile": PROMETHEUS_CERTFILE,
    "prometheus_keyfile": PROMETHEUS_KEYFILE,
    "prometheus_client_cafile": PROMETHEUS_CLIENT_CAFILE,
}


def _otlp_endpoint(environ: Mapping[str, str], protocol: str) -> str:
    specific = _env(environ, OTLP_METRICS_ENDPOINT)
    if specific is not None:
        return parse_endpoint(OTLP_METRICS_ENDPOINT, specific)
    base = _env(environ, OTLP_ENDPOINT)
    if base is not None:
        base = parse_endpoint(OTLP_ENDPOINT, base)
    if protocol == "grpc":
        return base or DEFAULT_OTLP_GRPC_ENDPOINT
    # For HTTP the generic variable is a base URL and the signal path is appended.
    return (base or DEFAULT_OTLP_HTTP_BASE).rstrip("/") + "/v1/metrics"


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every OTEL_* variable jobmeter honours; raise ConfigurationError on a bad value."""
    settings = _settings_from_env(os.environ if environ is None else environ)
    _check_prometheus_security(settings, _SECURITY_NAMES)
    return settings


def _settings_from_env(env: Mapping[str, str]) -> Settings:
    # Each value alone; settings that must agree are checked once keywords are applied too.
    values: dict[str, Any] = {}
    if (raw := _env(env, SDK_DISABLED)) is not None:
        values["disabled"] = parse_bool(SDK_DISABLED, raw)
    if (raw := _env(env, SERVICE_NAME)) is not None:
        values["service_name"] = raw
    if (raw := _env(env, RESOURCE_ATTRIBUTES)) is not None:
        values["resource_attributes"] = parse_key_values(RESOURCE_ATTRIBUTES, raw)
    if (raw := _env(env, METRICS_EXPORTER)) is not None:
        values["exporters"] = parse_exporters(METRICS_EXPORTER, raw)
    protocol = "grpc"
    for name in (OTLP_METRICS_PROTOCOL, OTLP_PROTOCOL):
        if (raw := _env(env, name)) is not None:
            protocol = parse_choice(name, raw, PROTOCOLS)
            break
    values["otlp_protocol"] = protocol
    values["otlp_endpoint"] = _otlp_endpoint(env, protocol)
    for name in (OTLP_METRICS_HEADERS, OTLP_HEADERS):
        if (raw := _env(env, name)) is not None:
            values["otlp_headers"] = parse_key_values(name, raw)
            break
    for name in (OTLP_METRICS_TIMEOUT, OTLP_TIMEOUT):
        if (raw := _env(env, name)) is not None:
            values["otlp_timeout_ms"] = parse_millis(name, raw)
            break
    if (raw := _env(env, OTLP_TEMPORALITY)) is not None:
        values["otlp_temporality"] = parse_choice(OTLP_TEMPORALITY, raw, TEMPORALITIES)
    if (raw := _env(env, EXPORT_INTERVAL)) is not None:
        values["export_interval_ms"] = parse_millis(EXPORT_INTERVAL, raw)
    if (raw := _env(env, EXPORT_TIMEOUT)) is not None:
        values["export_timeout_ms"] = parse_millis(EXPORT_TIMEOUT, raw)
    if (raw := _env(env, PROMETHEUS_HOST)) is not None:
        values["prometheus_host"] = raw
    if (raw := _env(env, PROMETHEUS_PORT)) is not None:
        values["prometheus_port"] = parse_port(PROMETHEUS_PORT, raw)
    for key, name in _SECURITY_NAMES.items():
        if (raw := _env(env, name)) is not None:
            values[key] = parse_file(name, raw)
    auth, auth_file = _env(env, PROMETHEUS_BASIC_AUTH), _env(env, PROMETHEUS_BASIC_AUTH_FILE)
    if auth is not None and auth_file is not None:
        raise ConfigurationError(
            PROMETHEUS_BASIC_AUTH_FILE, auth_file, f"either it or {PROMETHEUS_BASIC_AUTH}, not both"
        )
    if auth is not None:
        values["prometheus_basic_auth"] = parse_basic_auth(PROMETHEUS_BASIC_AUTH, auth)
    if auth_file is not None:
        values["prometheus_basic_auth"] = parse_basic_auth_file(
            PROMETHEUS_BASIC_AUTH_FILE, auth_file
        )
    return Settings(**values)


# Keyword arguments of configure(): name -> parser. Each validates like its variable.
_OVERRIDES: Final[dict[str, Any]] = {
    "disabled": lambda v: v if isinstance(v, bool) else parse_bool("disabled", str(v)),
    "service_name": str,
    "service_version": str,
    "resource_attributes": lambda v: parse_key_values("resource_attributes", v),
    "exporters": lambda v: parse_exporters("exporters", v),
    "otlp_endpoint": lambda v: parse_endpoint("otlp_endpoint", v),
    "otlp_protocol": lambda v: parse_choice("otlp_protocol", v, PROTOCOLS),
    "otlp_headers": lambda v: parse_key_values("otlp_headers", v),
    "otlp_timeout_ms": lambda v: parse_millis("otlp_timeout_ms", v),
    "otlp_temporality": lambda v: parse_choice("otlp_temporality", v, TEMPORALITIES),
    "export_interval_ms": lambda v: parse_millis("export_interval_ms", v),
    "export_timeout_ms": lambda v: parse_millis("export_timeout_ms", v),
    "prometheus_host": str,
    "prometheus_port": lambda v: parse_port("prometheus_port", v),
    "prometheus_certfile": lambda v: parse_file("prometheus_certfile", v),
    "prometheus_keyfile": lambda v: parse_file("prometheus_keyfile", v),
    "prometheus_client_cafile": lambda v: parse_file("prometheus_client_cafile", v),
    "prometheus_basic_auth": lambda v: parse_basic_auth("prometheus_basic_auth", v),
    "prometheus_basic_auth_file": lambda v: parse_basic_auth_file("prometheus_basic_auth_file", v),
}


def resolve(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, with keyword overrides on top."""
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise ConfigurationError(
            unknown[0],
            overrides[unknown[0]],
            ", ".join(sorted(_OVERRIDES)),
            "unknown keyword argument",
        )
    env = os.environ if environ is None else environ
    settings = _settings_from_env(env)
    changes = {k: _OVERRIDES[k](v) for k, v in overrides.items() if v is not None}
    if "otlp_protocol" in changes and "otlp_endpoint" not in changes:
        # The default endpoint depends on the protocol; recompute it.
        changes["otlp_endpoint"] = _otlp_endpoint(env, changes["otlp_protocol"])
    if "prometheus_basic_auth_file" in changes:
        if "prometheus_basic_auth" in changes:
            raise ConfigurationError(
                "prometheus_basic_auth_file", overrides["prometheus_basic_auth_file"],
                "either it or prometheus_basic_auth, not both",
            )  # fmt: skip
        changes["prometheus_basic_auth"] = changes.pop("prometheus_basic_auth_file")
    settings = replace(settings, **changes)
    names = {key: key if key in changes else name for key, name in _SECURITY_NAMES.items()}
    _check_prometheus_security(settings, names)
    return settings


def host_groups(
    overrides: Mapping[str, bool | None], environ: Mapping[str, str] | None = None
) -> frozenset[str]:
    """HostCollector's enabled groups: JOBMETER_HOST_METRICS (or the default), then keywords."""
    env = os.environ if environ is None else environ
    groups = set(DEFAULT_HOST_GROUPS)
    if (raw := _env(env, HOST_METRICS)) is not None:
        groups = set()
        for item in raw.split(","):
            name = item.strip().lower()
            if name not in HOST_GROUPS:
                raise ConfigurationError(
                    HOST_METRICS, raw, ", ".join(HOST_GROUPS) + " (comma-separated)",
                    f"unknown group {item.strip()!r}",
                )  # fmt: skip
            groups.add(name)
    for name, enabled in overrides.items():
        if name not in HOST_GROUPS:
            raise ConfigurationError(
                name, enabled, ", ".join(HOST_GROUPS), "unknown keyword argument"
            )
        if enabled is True:
            groups.add(name)
        elif enabled is False:
            groups.discard(name)
    return frozenset(groups)
