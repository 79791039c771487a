"""Reading jobmeter's settings from OTEL_* variables and keyword arguments.

Project settings use the JOBMETER_ prefix. Every variable and keyword, with its
parser and its documentation, is a row of ``variables.VARIABLES``; this module
reads them and handles what rows cannot say alone: signal-specific variables
winning over generic ones, the OTLP endpoint's protocol-dependent default,
settings that exclude or need each other.

An environment value that cannot be used is a warning and its default (a
``ConfigurationError`` in strict mode, see ``environment``); a keyword argument
that cannot be used is a programming error and always raises. A Prometheus
security setting that cannot be used stops the endpoint from starting rather
than serve it without the protection asked for.

Time settings follow the OpenTelemetry specification and are milliseconds,
including OTEL_EXPORTER_OTLP_TIMEOUT, which the Python OTLP exporters read as
seconds (opentelemetry-python #5531): jobmeter converts before handing it over.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from jobmeter._core.environment import env_value, read, reject, strict_mode
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.hardware_settings import GPU_METRICS
from jobmeter._core.parse import (
    GPU_METRIC_NAMES,
    HOST_GROUPS,
    Parser,
    parse_endpoint,
    parse_gpu_metrics,
    parse_host_groups,
)
from jobmeter._core.variables import (
    HOST_METRICS,
    KEYWORDS,
    OTLP_ENDPOINT,
    OTLP_METRICS_ENDPOINT,
    PROMETHEUS_BASIC_AUTH,
    PROMETHEUS_BASIC_AUTH_FILE,
    PROMETHEUS_CERTFILE,
    PROMETHEUS_CLIENT_CAFILE,
    PROMETHEUS_KEYFILE,
    STRICT,
    VARIABLES,
)

# The default set leaves per-CPU series out.
DEFAULT_HOST_GROUPS: Final = frozenset(HOST_GROUPS) - {"per_cpu"}
DEFAULT_EXPORTERS: Final = ("prometheus",)
DEFAULT_PROMETHEUS_HOST: Final = "localhost"
DEFAULT_PROMETHEUS_PORT: Final = 8000
DEFAULT_OTLP_PROTOCOL: Final = "grpc"
DEFAULT_OTLP_GRPC_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_OTLP_HTTP_BASE: Final = "http://localhost:4318"
DEFAULT_OTLP_TIMEOUT_MS: Final = 10_000.0
DEFAULT_EXPORT_INTERVAL_MS: Final = 60_000.0
DEFAULT_EXPORT_TIMEOUT_MS: Final = 30_000.0


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; every time is in milliseconds."""

    disabled: bool = False
    strict: bool = False
    service_name: str | None = None
    service_version: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    exporters: tuple[str, ...] = DEFAULT_EXPORTERS
    otlp_endpoint: str = DEFAULT_OTLP_GRPC_ENDPOINT
    otlp_protocol: str = DEFAULT_OTLP_PROTOCOL
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
    prometheus_default_registry: str = "true"  # "true", "false" or "all" (default_registry)
    price_per_kwh: float | None = None
    price_per_cpu_hour: float | None = None
    price_per_gpu_hour: float | None = None
    price_per_gb_hour: float | None = None
    currency: str = "USD"
    # (user, password); kept out of repr() so that logging the settings leaks no secret.
    prometheus_basic_auth: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def shutdown_budget_ms(self) -> float:
        """How long the final export at shutdown may take: the tighter of the two timeouts."""
        if "otlp" in self.exporters:
            return min(self.export_timeout_ms, self.otlp_timeout_ms)
        return self.export_timeout_ms


def _read_order() -> dict[str, list[tuple[str, Parser]]]:
    # Settings field -> its variables, a signal-specific one before the generic one.
    order: dict[str, list[tuple[str, Parser]]] = {}
    for row in VARIABLES:
        if row.name is not None and row.field is not None and row.name != STRICT:
            sources = order.setdefault(row.field, [])
            sources.insert(0 if row.wins_over else len(sources), (row.name, row.parse))
    return order


_FROM_ENV: Final = _read_order()
# configure()'s keyword -> the Settings field it sets.
_FIELD_OF: Final = {keyword: row.sets or keyword for keyword, row in KEYWORDS.items()}
_SECURITY_NAMES: Final = {
    "prometheus_certfile": PROMETHEUS_CERTFILE,
    "prometheus_keyfile": PROMETHEUS_KEYFILE,
    "prometheus_client_cafile": PROMETHEUS_CLIENT_CAFILE,
}


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every OTEL_* and JOBMETER_* variable jobmeter honours.

    A value that cannot be used is one warning and its default, or a
    ConfigurationError in strict mode.
    """
    return resolve({}, environ)


# The settings that protect the endpoint: one that cannot be used stops it instead of
# leaving it open.
_PROTECTION: Final = frozenset(
    {"prometheus_certfile", "prometheus_keyfile", "prometheus_client_cafile",
     "prometheus_basic_auth"}
)  # fmt: skip
# A variable that cannot be used: what applies instead.
_IGNORED = "it is ignored and the default applies"
_NO_ENDPOINT = "the Prometheus endpoint is not started"


def _settings_from_env(env: Mapping[str, str], strict: bool) -> Settings:
    # Each value alone; settings that must agree are checked once keywords are applied too.
    values: dict[str, Any] = {"strict": strict}
    unprotected = False  # a protection asked for cannot be had: no endpoint at all
    for setting, sources in _FROM_ENV.items():
        if setting == "otlp_endpoint":
            continue  # read with the protocol, which its default depends on
        if setting == "prometheus_basic_auth" and not _one_basic_auth(env, strict):
            unprotected = True
            continue
        for name, parse in sources:
            if (raw := env_value(name, env)) is None:
                continue
            try:
                values[setting] = parse(name, raw)
                break
            except ConfigurationError as error:  # the next source, or the default, applies
                protection = setting in _PROTECTION
                unprotected = unprotected or protection
                reject(error, _NO_ENDPOINT if protection else _IGNORED, strict=strict)
        if setting == "otlp_protocol":
            protocol = values.get(setting, DEFAULT_OTLP_PROTOCOL)
            values["otlp_endpoint"] = _otlp_endpoint(env, protocol, strict)
    if unprotected:
        values["exporters"] = _without_prometheus(values.get("exporters", DEFAULT_EXPORTERS))
        for setting in _PROTECTION:
            values.pop(setting, None)
    return Settings(**values)


def _without_prometheus(exporters: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in exporters if name != "prometheus") or ("none",)


def _one_basic_auth(env: Mapping[str, str], strict: bool) -> bool:
    auth, auth_file = (
        env_value(PROMETHEUS_BASIC_AUTH, env),
        env_value(PROMETHEUS_BASIC_AUTH_FILE, env),
    )
    if auth is not None and auth_file is not None:
        error = ConfigurationError(
            PROMETHEUS_BASIC_AUTH_FILE, auth_file, f"either it or {PROMETHEUS_BASIC_AUTH}, not both"
        )
        reject(error, _NO_ENDPOINT, strict=strict)
        return False
    return True


def _otlp_endpoint(environ: Mapping[str, str], protocol: str, strict: bool) -> str:
    specific = read(
        OTLP_METRICS_ENDPOINT, parse_endpoint, None, _IGNORED, environ=environ, strict=strict
    )
    if specific is not None:
        return specific
    base = read(OTLP_ENDPOINT, parse_endpoint, None, _IGNORED, environ=environ, strict=strict)
    if protocol == "grpc":
        return base or DEFAULT_OTLP_GRPC_ENDPOINT
    # For HTTP the generic variable is a base URL and the signal path is appended.
    return (base or DEFAULT_OTLP_HTTP_BASE).rstrip("/") + "/v1/metrics"


def resolve(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, with keyword overrides on top."""
    unknown = sorted(set(overrides) - set(KEYWORDS))
    if unknown:
        raise ConfigurationError(
            unknown[0],
            overrides[unknown[0]],
            ", ".join(sorted(KEYWORDS)),
            "unknown keyword argument",
        )
    env = os.environ if environ is None else environ
    # Each keyword is parsed like its variable, and named in the errors.
    given = {k: KEYWORDS[k].parse(k, v) for k, v in overrides.items() if v is not None}
    strict = given["strict"] if "strict" in given else strict_mode(env)
    settings = _settings_from_env(env, strict)
    if "prometheus_basic_auth_file" in given and "prometheus_basic_auth" in given:
        raise ConfigurationError(
            "prometheus_basic_auth_file", overrides["prometheus_basic_auth_file"],
            "either it or prometheus_basic_auth, not both",
        )  # fmt: skip
    changes = {_FIELD_OF[k]: value for k, value in given.items()}
    if "otlp_protocol" in changes and "otlp_endpoint" not in changes:
        # The default endpoint depends on the protocol; recompute it.
        changes["otlp_endpoint"] = _otlp_endpoint(env, changes["otlp_protocol"], strict)
    settings = replace(settings, **changes)
    names = {key: key if key in changes else name for key, name in _SECURITY_NAMES.items()}
    if "prometheus" not in settings.exporters:
        return settings
    try:
        _check_prometheus_security(settings, names)
    except ConfigurationError as error:
        if error.setting in KEYWORDS:  # a keyword took part: a programming error
            raise
        reject(error, _NO_ENDPOINT, strict=strict)
        unset: dict[str, Any] = dict.fromkeys(_PROTECTION)
        return replace(settings, exporters=_without_prometheus(settings.exporters), **unset)
    return settings


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


def host_groups(
    overrides: Mapping[str, bool | None], environ: Mapping[str, str] | None = None
) -> frozenset[str]:
    """HostCollector's enabled groups: JOBMETER_HOST_METRICS (or the default), then keywords.

    A variable that cannot be used warns and the default applies (an error in
    strict mode); an unknown keyword always raises.
    """
    strict = strict_mode(environ)
    chosen = read(HOST_METRICS, parse_host_groups, DEFAULT_HOST_GROUPS, _IGNORED,
                  environ=environ, strict=strict)  # fmt: skip
    groups = set(chosen)
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


def gpu_metrics(
    chosen: Iterable[str] | None, environ: Mapping[str, str] | None = None
) -> frozenset[str]:
    """GPUCollector's metrics: the keyword's names, else JOBMETER_GPU_METRICS, else all five.

    A variable that cannot be used warns and the default applies (an error in
    strict mode); a keyword with an unknown name always raises.
    """
    if chosen is not None:
        return frozenset(parse_gpu_metrics("metrics", chosen))
    strict = strict_mode(environ)
    return read(GPU_METRICS, parse_gpu_metrics, frozenset(GPU_METRIC_NAMES), _IGNORED,
                environ=environ, strict=strict)  # fmt: skip
