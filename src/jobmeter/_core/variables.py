"""Every setting jobmeter reads, one row each: the one place that says all about it.

A row gives the environment variable, the ``configure()`` keyword, the
``Settings`` field it sets, its parser, and its cells in the Variables table of
docs/configuration.md. ``config`` reads the environment and the keywords
through the rows; variables read elsewhere (``JOBMETER_RUN_DIR``, ...) have no
field. After changing a row, rewrite the docs table with
``.venv/bin/python -m jobmeter._core.variables_table``.
"""

from __future__ import annotations

from typing import Final

# The hardware and price names are listed there; importers find them here too.
from jobmeter._core.hardware_settings import HARDWARE_ROWS
from jobmeter._core.parse import (
    parse_basic_auth,
    parse_basic_auth_file,
    parse_bool,
    parse_default_registry,
    parse_endpoint,
    parse_exporters,
    parse_file,
    parse_host_groups,
    parse_host_name,
    parse_key_values,
    parse_millis,
    parse_port,
    parse_protocol,
    parse_pushgateway_url,
    parse_seconds,
    parse_temporality,
    parse_text,
)
from jobmeter._core.setting import Variable

# The names, for the modules that read them (as opentelemetry.sdk.environment_variables
# lists the SDK's); each one's meaning is in its row below. Those of the hardware and
# prices rows (GPU metrics, energy, cost) are in hardware_settings, with their rows.
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
PROMETHEUS_CERTFILE: Final = "JOBMETER_PROMETHEUS_CERTFILE"
PROMETHEUS_KEYFILE: Final = "JOBMETER_PROMETHEUS_KEYFILE"
PROMETHEUS_CLIENT_CAFILE: Final = "JOBMETER_PROMETHEUS_CLIENT_CAFILE"
PROMETHEUS_BASIC_AUTH: Final = "JOBMETER_PROMETHEUS_BASIC_AUTH"
PROMETHEUS_BASIC_AUTH_FILE: Final = "JOBMETER_PROMETHEUS_BASIC_AUTH_FILE"
PROMETHEUS_DEFAULT_REGISTRY: Final = "JOBMETER_PROMETHEUS_DEFAULT_REGISTRY"
HOST_METRICS: Final = "JOBMETER_HOST_METRICS"
HOST_NAME: Final = "JOBMETER_HOST_NAME"
RUN_DIR: Final = "JOBMETER_RUN_DIR"
RUN_FLUSH_INTERVAL: Final = "JOBMETER_RUN_FLUSH_INTERVAL"
RUN: Final = "JOBMETER_RUN"
PUSHGATEWAY_URL: Final = "JOBMETER_PUSHGATEWAY_URL"
STRICT: Final = "JOBMETER_STRICT"
SHARED_ENDPOINT: Final = "JOBMETER_SHARED_ENDPOINT"


# In the order of the docs table. Hand-aligned: a table reads better that way.
# fmt: off
VARIABLES: Final = (
    Variable(SDK_DISABLED, "disabled", parse_bool,
        default="`false`",
        accepted="`true` or `false`; the keyword also takes a `bool`",
        meaning="`true`: `configure()` installs no MeterProvider, opens no port and starts no "
                "exporter; measured blocks still run, and record nothing."),
    Variable(STRICT, "strict", parse_bool,
        default="`false`",
        accepted="`true` or `false`; the keyword also takes a `bool`",
        meaning="`false`: a variable of this table that cannot be used is one warning naming it, "
                "its value and what is accepted, and its default applies; a busy Prometheus "
                "port moves to the next free one; a port or TLS file that cannot be used leaves "
                "the job without the endpoint. `true`: each of these is a `ConfigurationError`. "
                "Keyword arguments that cannot be used always raise."),
    Variable(SERVICE_NAME, "service_name", parse_text,
        default="`unknown_service:<name of the Python executable>`, such as "
                "`unknown_service:python`",
        accepted="any string",
        meaning="The `service.name` resource attribute. Wins over a `service.name` given in "
                "`OTEL_RESOURCE_ATTRIBUTES`."),
    Variable(None, "service_version", parse_text,
        default="none",
        accepted="any string",
        meaning="sets the `service.version` resource attribute."),
    Variable(RESOURCE_ATTRIBUTES, "resource_attributes", parse_key_values,
        default="none",
        accepted="`key1=value1,key2=value2`, keys and values percent-encoded; the keyword also "
                 "takes a mapping",
        meaning="Extra resource attributes describing this process, such as "
                "`team=data,deployment.environment=prod`."),
    Variable(METRICS_EXPORTER, "exporters", parse_exporters,
        default="`prometheus`",
        accepted="`prometheus`, `otlp`, `console`, `none`, comma-separated; `none` only alone; "
                 "the keyword also takes a sequence of names",
        meaning="Where metrics go. `prometheus` serves a scrape endpoint; `otlp` pushes to a "
                "collector; `console` prints to standard output; `none` sends nothing anywhere. "
                "Duplicates are ignored."),
    Variable(OTLP_ENDPOINT, "otlp_endpoint", parse_endpoint,
        keyword_note="(used as is, like the `_METRICS_` variable)",
        default="`http://localhost:4317` for `grpc`; `http://localhost:4318` for `http/protobuf`, "
                "where `/v1/metrics` is appended",
        accepted="an `http://` or `https://` URL with a host",
        meaning="Base URL of the OTLP receiver for all signals. For `http/protobuf` jobmeter "
                "appends `/v1/metrics`; for `grpc` it is used as is."),
    Variable(OTLP_METRICS_ENDPOINT, "otlp_endpoint", parse_endpoint,
        wins_over=OTLP_ENDPOINT,
        default="none (the generic variable, then the default, apply)",
        accepted="an `http://` or `https://` URL with a host",
        meaning="URL of the OTLP receiver for metrics, used exactly as given (nothing appended)."),
    Variable(OTLP_PROTOCOL, "otlp_protocol", parse_protocol,
        default="`grpc`",
        accepted="`grpc`, `http/protobuf`",
        meaning="OTLP transport for all signals."),
    Variable(OTLP_METRICS_PROTOCOL, "otlp_protocol", parse_protocol,
        wins_over=OTLP_PROTOCOL,
        default="none (the generic variable, then the default, apply)",
        accepted="`grpc`, `http/protobuf`",
        meaning="OTLP transport for metrics."),
    Variable(OTLP_HEADERS, "otlp_headers", parse_key_values,
        default="none",
        accepted="`key1=value1,key2=value2`, percent-encoded; the keyword also takes a mapping",
        meaning="Headers sent with every OTLP export, such as `authorization=Bearer%20TOKEN`."),
    Variable(OTLP_METRICS_HEADERS, "otlp_headers", parse_key_values,
        wins_over=OTLP_HEADERS,
        default="none",
        accepted="as `OTEL_EXPORTER_OTLP_HEADERS`",
        meaning="Headers sent with every OTLP metrics export; replaces the generic variable when "
                "set."),
    Variable(OTLP_TIMEOUT, "otlp_timeout_ms", parse_millis,
        default="`10000`",
        accepted="a number of milliseconds, more than 0",
        meaning="How long one OTLP export request may take. Milliseconds, as the specification "
                "says (see below)."),
    Variable(OTLP_METRICS_TIMEOUT, "otlp_timeout_ms", parse_millis,
        wins_over=OTLP_TIMEOUT,
        default="none (the generic variable, then the default, apply)",
        accepted="a number of milliseconds, more than 0",
        meaning="How long one OTLP metrics export request may take."),
    Variable(OTLP_TEMPORALITY, "otlp_temporality", parse_temporality,
        default="`cumulative`",
        accepted="`cumulative`, `delta`, `lowmemory`",
        meaning="Aggregation temporality the OTLP exporter asks for, per the specification's "
                "table. Applies to `otlp` only; Prometheus is always cumulative."),
    Variable(EXPORT_INTERVAL, "export_interval_ms", parse_millis,
        default="`60000`",
        accepted="a number of milliseconds, more than 0",
        meaning="Time between two exports of the push exporters (`otlp`, `console`)."),
    Variable(EXPORT_TIMEOUT, "export_timeout_ms", parse_millis,
        default="`30000`",
        accepted="a number of milliseconds, more than 0",
        meaning="How long one collection and export of a push exporter may take; also bounds the "
                "final export at shutdown."),
    Variable(PROMETHEUS_HOST, "prometheus_host", parse_text,
        default="`localhost`",
        accepted="a host name or IP address; `0.0.0.0` listens on every IPv4 interface",
        meaning="Address the Prometheus endpoint listens on."),
    Variable(PROMETHEUS_PORT, "prometheus_port", parse_port,
        default="`8000`",
        accepted="an integer from 0 to 65535; `0` lets the operating system pick a free port",
        meaning="Port the Prometheus endpoint listens on. `telemetry.prometheus_url` gives the "
                "URL actually bound."),
    Variable(PROMETHEUS_CERTFILE, "prometheus_certfile", parse_file,
        default="unset (plain HTTP)",
        accepted="the path of a readable PEM file: the server certificate, then its chain",
        meaning="With `JOBMETER_PROMETHEUS_KEYFILE`, the endpoint serves HTTPS only (TLS 1.2 or "
                "later) and `telemetry.prometheus_url` starts with `https://`. Set both or "
                "neither. A file that does not load leaves the job without the endpoint, with "
                "one warning naming this variable (never an endpoint without the TLS asked for)."),
    Variable(PROMETHEUS_KEYFILE, "prometheus_keyfile", parse_file,
        default="unset",
        accepted="the path of a readable PEM file: the certificate's unencrypted private key",
        meaning="The key of `JOBMETER_PROMETHEUS_CERTFILE`. A key that does not load or does not "
                "match the certificate leaves the job without the endpoint, with one warning."),
    Variable(PROMETHEUS_CLIENT_CAFILE, "prometheus_client_cafile", parse_file,
        default="unset (no client certificate asked)",
        accepted="the path of a readable PEM file of CA certificates; needs the two variables "
                 "above",
        meaning="Mutual TLS: the endpoint then accepts only clients presenting a certificate "
                "signed by one of these CAs."),
    Variable(PROMETHEUS_BASIC_AUTH, "prometheus_basic_auth", parse_basic_auth,
        default="unset (no authentication)",
        accepted="`user:password`: a non-empty user name without `:`, the first `:`, then a "
                 "non-empty password (which may hold `:`); the keyword also takes a `(user, "
                 "password)` pair",
        meaning="HTTP basic authentication on the endpoint: a request without these credentials "
                "gets `401` with `WWW-Authenticate: Basic`. Error messages never show the "
                "password. Prefer `JOBMETER_PROMETHEUS_BASIC_AUTH_FILE`, which keeps the secret "
                "out of the environment, and TLS, without which the password crosses the network "
                "in clear (jobmeter warns when the host is not loopback)."),
    Variable(PROMETHEUS_BASIC_AUTH_FILE, "prometheus_basic_auth_file", parse_basic_auth_file,
        sets="prometheus_basic_auth",
        default="unset",
        accepted="the path of a readable UTF-8 file whose first line is `user:password`",
        meaning="As `JOBMETER_PROMETHEUS_BASIC_AUTH`, read from a file (a Kubernetes or Docker "
                "secret). Setting both, or a file that cannot be read, leaves the job without the "
                "endpoint, with one warning."),
    Variable(PROMETHEUS_DEFAULT_REGISTRY, "prometheus_default_registry", parse_default_registry,
        default="`true`",
        accepted="`true`, `false` or `all`; the keyword also takes a `bool`",
        meaning="What the Prometheus endpoint serves, after jobmeter's metrics, of "
                "prometheus_client's default registry (`prometheus_client.REGISTRY`): `true` the "
                "program's own metrics on it, `all` also prometheus_client's `process_*`, "
                "`python_gc_*` and `python_info`, `false` nothing. A family that takes a name of "
                "one of jobmeter's is left out, with one warning (strict: the scrape answers "
                "500) ([metrics.md](metrics.md#the-default-prometheus_client-registry))."),
    Variable(HOST_METRICS, None, parse_host_groups,
        keyword_note="the group keywords of `HostCollector` (`cpu=`, `per_cpu=`, ...)",
        default="`cpu,memory,disk,network,filesystem,load,process,gpu,energy`",
        accepted="a comma-separated subset of `cpu`, `per_cpu`, `memory`, `disk`, `network`, "
                 "`filesystem`, `load`, `process`, `gpu`, `energy`",
        meaning="The metric groups `HostCollector` and `start_host_metrics()` turn on. Keywords "
                "switch single groups on or off on top of it. An unknown name is one warning and "
                "the default applies; an unknown keyword raises."),
    *HARDWARE_ROWS,
    Variable(HOST_NAME, None, parse_host_name,
        default="`plain`",
        accepted="`plain`, `hash` or `omit`",
        meaning="The machine's name as jobmeter shows it, alike in the `host.name` resource "
                "attribute, run.json's `host` and the Pushgateway's `instance` label. `hash`: "
                "`host-` and 16 hex digits of its SHA-256, the same on every run of the machine "
                "(a pseudonym: a name that can be guessed can be checked against it). `omit`: "
                "no name at all (no `instance` label either). A bad value is one warning and "
                "`plain` applies."),
    Variable(RUN_DIR, None, parse_text,
        keyword_note="`--dir` of `jobmeter run` and the store commands, `RunOptions(output=...)`, "
                     "`Run(directory=...)`",
        default="`./.jobmeter/runs`",
        accepted="a directory path",
        meaning="Where `jobmeter run` and `jobmeter.Run` write one directory per run (run.json, "
                "usage.jsonl, the records, stdout.log, stderr.log)."),
    Variable(RUN_FLUSH_INTERVAL, None, parse_seconds,
        default="`5`",
        accepted="a number of seconds, more than 0",
        meaning="How often a recorded run appends what `measure()`, DuckDB and backfills measured "
                "to its directory ([run-store.md](run-store.md#what-a-run-records)). A crash "
                "loses at most this much."),
    Variable(RUN, None, parse_text,
        keyword_note="none (set by jobmeter)",
        default="unset",
        accepted="the path of a run directory",
        meaning="Set by `jobmeter run` for its command and by `jobmeter.Run` for the subprocesses "
                "started inside it: a process that finds it records its operations into that "
                "run, without code changes. Not meant to be set by hand."),
    Variable(SHARED_ENDPOINT, None, parse_text,
        keyword_note="none (set by jobmeter)",
        default="unset",
        accepted="the path of the directory of a shared endpoint",
        meaning="Set by `jobmeter run` for its command: a process that calls `configure()` with "
                "the same Prometheus address and protection as the wrapper joins the wrapper's "
                "endpoint instead of opening a port ([run.md](run.md#one-endpoint-per-job)). Not "
                "meant to be set by hand."),
    Variable(PUSHGATEWAY_URL, None, parse_pushgateway_url,
        default="unset (no push)",
        accepted="a Pushgateway URL such as `http://pushgateway:9091`",
        meaning="When set, `jobmeter run` pushes its final figures there at the end, and each "
                "`Backfill` pushes its progress periodically and at the end (POST, grouped by "
                "job name and host). A gateway that cannot be reached is a warning; the run's "
                "exit status is the command's."),
)
# fmt: on

ENVIRONMENT: Final = {row.name: row for row in VARIABLES if row.name is not None}
KEYWORDS: Final = {row.keyword: row for row in VARIABLES if row.keyword is not None}
