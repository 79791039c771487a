"""Every OTEL_* variable jobmeter honours: good values are read, bad ones named clearly."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

import jobmeter
from jobmeter._core.config import Settings, resolve, settings_from_env
from jobmeter._core.variables import ENVIRONMENT

STRICT = {"JOBMETER_STRICT": "true"}
BAD_VALUES = pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("OTEL_SDK_DISABLED", "yes", "accepted: true, false"),
        ("OTEL_METRICS_EXPORTER", "zipkin", "accepted: prometheus, otlp, console, none"),
        ("OTEL_METRICS_EXPORTER", "otlp,none", "'none' cannot be combined"),
        ("OTEL_METRICS_EXPORTER", ",", "accepted: prometheus, otlp, console, none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "a URL such as http://localhost:4317"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "ftp://x", "a URL such as"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://host:notaport", "a URL such as"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "accepted: grpc, http/protobuf"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "udp", "accepted: grpc, http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", "'api-key' is not key=value"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "=v", "is not key=value"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "a number of milliseconds, more than 0"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-1", "a number of milliseconds"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes",
         "accepted: cumulative, delta, lowmemory"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "often", "a number of milliseconds, more than 0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "more than 0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "nan", "a number of milliseconds"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "inf", "a number of milliseconds, more than 0"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0", "a number of milliseconds, more than 0"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "http", "an integer port from 0 to 65535"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "an integer port from 0 to 65535"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team:data", "'team:data' is not key=value"),
    ],
)  # fmt: skip


def test_defaults_without_environment() -> None:
    """No variable set: Prometheus on localhost:8000, spec defaults for the rest."""
    settings = settings_from_env({})
    assert settings == Settings()
    assert settings.exporters == ("prometheus",)
    assert (settings.prometheus_host, settings.prometheus_port) == ("localhost", 8000)
    assert settings.otlp_endpoint == "http://localhost:4317"
    assert settings.otlp_timeout_ms == 10_000
    assert settings.export_interval_ms == 60_000
    assert settings.export_timeout_ms == 30_000
    assert settings.otlp_temporality == "cumulative"


@pytest.mark.parametrize(
    ("environ", "field", "expected"),
    [
        ({"OTEL_SDK_DISABLED": "true"}, "disabled", True),
        ({"OTEL_SDK_DISABLED": "FALSE"}, "disabled", False),
        ({"OTEL_SERVICE_NAME": "orders-etl"}, "service_name", "orders-etl"),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "team=data, deployment.environment=prod%20eu"},
            "resource_attributes",
            {"team": "data", "deployment.environment": "prod eu"},
        ),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, "exporters", ("otlp",)),
        ({"OTEL_METRICS_EXPORTER": "prometheus, OTLP,console"}, "exporters",
         ("prometheus", "otlp", "console")),
        ({"OTEL_METRICS_EXPORTER": "none"}, "exporters", ("none",)),
        ({"OTEL_METRICS_EXPORTER": "otlp,otlp"}, "exporters", ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, "otlp_endpoint",
         "http://collector:4317"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/",
          "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         "otlp_endpoint", "https://collector:4318/v1/metrics"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "otlp_endpoint",
         "http://localhost:4318/v1/metrics"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
          "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://specific:9999/custom",
          "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         "otlp_endpoint", "http://specific:9999/custom"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp_protocol", "grpc"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
          "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}, "otlp_protocol",
         "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%3Dt,x-tenant=a"}, "otlp_headers",
         {"api-key": "s3cr=t", "x-tenant": "a"}),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "b=2"},
         "otlp_headers", {"b": "2"}),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}, "otlp_timeout_ms", 2500.0),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "700"},
         "otlp_timeout_ms", 700.0),
        ({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta"}, "otlp_temporality",
         "delta"),
        ({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "lowmemory"},
         "otlp_temporality", "lowmemory"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "1500"}, "export_interval_ms", 1500.0),
        ({"OTEL_METRIC_EXPORT_TIMEOUT": "4000"}, "export_timeout_ms", 4000.0),
        ({"OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0"}, "prometheus_host", "0.0.0.0"),
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "9464"}, "prometheus_port", 9464),
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "0"}, "prometheus_port", 0),
        ({"OTEL_METRICS_EXPORTER": ""}, "exporters", ("prometheus",)),  # empty = unset
    ],
)  # fmt: skip
def test_good_values_are_read(environ: dict[str, str], field: str, expected: object) -> None:
    assert getattr(settings_from_env(environ), field) == expected


@BAD_VALUES
def test_bad_values_warn_once_and_the_default_applies(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    accepted: str,
) -> None:
    """A bad value never stops the job: one warning naming it and the choices, then the default."""
    monkeypatch.setenv(variable, value)
    field = ENVIRONMENT[variable].field
    assert field is not None
    assert getattr(settings_from_env(), field) == getattr(Settings(), field)
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert not telemetry.is_shutdown
    warnings = [r.getMessage() for r in caplog.records if variable in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"{variable}={value!r} is invalid" in warnings[0]
    assert accepted in warnings[0]
    assert "the default applies" in warnings[0]


@pytest.mark.parametrize("how", ["environment", "keyword"])
@BAD_VALUES
def test_bad_values_raise_in_strict_mode(
    monkeypatch: pytest.MonkeyPatch, how: str, variable: str, value: str, accepted: str
) -> None:
    """JOBMETER_STRICT=true or strict=True: the same bad value fails configure() itself."""
    monkeypatch.setenv(variable, value)
    if how == "environment":
        monkeypatch.setenv("JOBMETER_STRICT", "true")
    keywords: dict[str, Any] = {"strict": True} if how == "keyword" else {}
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        jobmeter.configure(**keywords)
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r} is invalid")
    assert accepted in message
    assert raised.value.setting == variable
    assert raised.value.value == value


def test_a_bad_strict_value_warns_and_strict_mode_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JOBMETER_STRICT", "yes")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "often")
    assert settings_from_env().export_interval_ms == 60_000
    messages = [r.getMessage() for r in caplog.records]
    assert any("JOBMETER_STRICT='yes' is invalid" in m and "strict mode stays off" in m
               for m in messages)  # fmt: skip
    assert any("OTEL_METRIC_EXPORT_INTERVAL='often'" in m for m in messages)


def test_keyword_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    settings = resolve({"exporters": ["console"], "service_name": "from-kwarg",
                        "otlp_protocol": "http/protobuf"})  # fmt: skip
    assert settings.exporters == ("console",)
    assert settings.service_name == "from-kwarg"
    # The default endpoint follows the protocol that was chosen by keyword.
    assert settings.otlp_endpoint == "http://localhost:4318/v1/metrics"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prometheus_port": "eighty"}, "prometheus_port='eighty' is invalid"),
        ({"exporters": "jaeger"}, "exporters='jaeger' is invalid"),
        ({"export_interval_ms": -5}, "export_interval_ms=-5 is invalid"),
        ({"prometheus_prot": 1}, "prometheus_prot=1 is invalid: unknown keyword argument"),
    ],
)
def test_bad_keyword_arguments(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(jobmeter.ConfigurationError, match=message):
        jobmeter.configure(**overrides)


def test_busy_prometheus_port_moves_to_the_next_free_one(caplog: pytest.LogCaptureFixture) -> None:
    """Another job on the port: one warning naming the port and the URL served instead."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=port)
        assert telemetry.prometheus_address is not None
        served = telemetry.prometheus_address[1]
        assert served != port
        assert port < served <= port + 16 or served not in range(1, port)
        warnings = [r.getMessage() for r in caplog.records if "listens on" in r.getMessage()]
        assert warnings == [
            f"jobmeter: OTEL_EXPORTER_PROMETHEUS_PORT={port} is invalid: another program or job "
            f"listens on 127.0.0.1:{port}; accepted: a free port, or 0 to pick one; serving on "
            f"{telemetry.prometheus_url} instead"
        ]


def test_busy_prometheus_port_raises_in_strict_mode() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(jobmeter.ConfigurationError) as raised:
            jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=port, strict=True)
    assert raised.value.setting == "OTEL_EXPORTER_PROMETHEUS_PORT"
    assert f"cannot listen on 127.0.0.1:{port}" in str(raised.value)
    assert "Address already in use" in str(raised.value)


def test_sdk_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: no endpoint, a no-op provider, measure() still works."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry = jobmeter.configure()
    assert telemetry.prometheus_address is None
    assert not telemetry.owns_provider
    ops = jobmeter.MetricsCollector("etl", meter_provider=telemetry.meter_provider)
    with ops.measure("load"):
        result = 1 + 1
    assert result == 2
    assert telemetry.shutdown() is True


def test_port_zero_binds_a_free_port_and_reports_it() -> None:
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    assert telemetry.prometheus_address is not None
    host, port = telemetry.prometheus_address
    assert host == "127.0.0.1"
    assert port > 0
    assert telemetry.prometheus_url == f"http://127.0.0.1:{port}/metrics"


def test_configure_is_idempotent() -> None:
    first = jobmeter.configure(exporters="none")
    assert jobmeter.configure() is first
    assert jobmeter.configure(exporters="console") is first


def test_existing_application_provider_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    """An application's own MeterProvider stays; jobmeter warns once and opens no port."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    app_provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(app_provider)
    telemetry = jobmeter.configure()
    assert telemetry.meter_provider is app_provider
    assert telemetry.prometheus_address is None
    assert metrics.get_meter_provider() is app_provider
    warnings = [r for r in caplog.records if "installed its own MeterProvider" in r.message]
    assert len(warnings) == 1
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("load"):
        pass
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "jobmeter.operation.duration" in names
    app_provider.shutdown()


def test_unknown_prometheus_host_leaves_the_job_without_an_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = jobmeter.configure(prometheus_host="no-such-host.invalid", prometheus_port=0)
    assert telemetry.prometheus_url is None
    ops = jobmeter.MetricsCollector("etl")
    with ops.measure("load"):
        pass
    (warning,) = [r.getMessage() for r in caplog.records if "no-such-host" in r.getMessage()]
    assert "OTEL_EXPORTER_PROMETHEUS_HOST='no-such-host.invalid' is invalid" in warning
    assert "the job goes on without the Prometheus endpoint" in warning


def test_unknown_prometheus_host_raises_in_strict_mode() -> None:
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        jobmeter.configure(prometheus_host="no-such-host.invalid", prometheus_port=0, strict=True)
    assert raised.value.setting == "OTEL_EXPORTER_PROMETHEUS_HOST"
    assert "'no-such-host.invalid' is invalid" in str(raised.value)


def test_resource_keyword_replaces_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyword override wins whole, and opt-in detectors never add the command line."""
    from jobmeter.testing import in_memory

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=from-env,region=eu")
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "process")
    with in_memory(resource_attributes={"team": "from-kwarg"}) as recorded:
        with jobmeter.MetricsCollector("etl").measure("load"):
            pass
        attributes = dict(recorded.resource().attributes)
    assert attributes["team"] == "from-kwarg"
    assert "region" not in attributes
    assert not [key for key in attributes if key.startswith("process.command")]
    assert attributes["telemetry.sdk.name"] == "opentelemetry"


def test_configure_after_shutdown_warns_and_installs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = jobmeter.configure(exporters="none")
    first.shutdown()
    assert jobmeter.configure(exporters="none") is first
    assert any("after shutdown()" in r.message for r in caplog.records)


def test_disabled_handle_reports_no_exporter() -> None:
    telemetry = jobmeter.configure(disabled=True)
    assert telemetry.settings.exporters == ("none",)


# --- the Prometheus endpoint's TLS and basic-auth settings --------------------------------------


@pytest.fixture
def pem_files(tmp_path: Any) -> dict[str, str]:
    """Paths that exist (their content is checked when the endpoint starts, not here)."""
    files = {}
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("-----BEGIN PLACEHOLDER-----\n")
        files[name] = str(tmp_path / name)
    return files


def test_prometheus_security_defaults_are_off() -> None:
    settings = settings_from_env({})
    assert settings.prometheus_certfile is None
    assert settings.prometheus_keyfile is None
    assert settings.prometheus_client_cafile is None
    assert settings.prometheus_basic_auth is None


def test_prometheus_tls_and_basic_auth_from_the_environment(pem_files: dict[str, str]) -> None:
    settings = settings_from_env(
        {
            "JOBMETER_PROMETHEUS_CERTFILE": pem_files["cert.pem"],
            "JOBMETER_PROMETHEUS_KEYFILE": f" {pem_files['key.pem']} ",
            "JOBMETER_PROMETHEUS_CLIENT_CAFILE": pem_files["ca.pem"],
            "JOBMETER_PROMETHEUS_BASIC_AUTH": "prom:pa:ss word",
        }
    )
    assert settings.prometheus_certfile == pem_files["cert.pem"]
    assert settings.prometheus_keyfile == pem_files["key.pem"]
    assert settings.prometheus_client_cafile == pem_files["ca.pem"]
    assert settings.prometheus_basic_auth == ("prom", "pa:ss word")  # the first ':' splits
    assert "pa:ss word" not in repr(settings)


def test_basic_auth_file_holds_the_secret(tmp_path: Any) -> None:
    secret = tmp_path / "auth"
    secret.write_text("prom:s3cret\nignored second line\n")
    env = {"JOBMETER_PROMETHEUS_BASIC_AUTH_FILE": str(secret)}
    assert settings_from_env(env).prometheus_basic_auth == ("prom", "s3cret")
    assert resolve({"prometheus_basic_auth_file": str(secret)}, {}).prometheus_basic_auth == (
        "prom",
        "s3cret",
    )
    assert resolve({"prometheus_basic_auth": ("u", "p")}, {}).prometheus_basic_auth == ("u", "p")


@pytest.mark.parametrize(
    ("environ", "setting", "detail"),
    [
        ({"JOBMETER_PROMETHEUS_CERTFILE": "CERT"}, "JOBMETER_PROMETHEUS_CERTFILE",
         "JOBMETER_PROMETHEUS_KEYFILE (keyword prometheus_keyfile) is not set"),
        ({"JOBMETER_PROMETHEUS_KEYFILE": "KEY"}, "JOBMETER_PROMETHEUS_KEYFILE",
         "JOBMETER_PROMETHEUS_CERTFILE (keyword prometheus_certfile) is not set"),
        ({"JOBMETER_PROMETHEUS_CLIENT_CAFILE": "CA"}, "JOBMETER_PROMETHEUS_CLIENT_CAFILE",
         "client certificates need TLS"),
        ({"JOBMETER_PROMETHEUS_CERTFILE": "/no/such.pem", "JOBMETER_PROMETHEUS_KEYFILE": "KEY"},
         "JOBMETER_PROMETHEUS_CERTFILE", "no such file"),
        ({"JOBMETER_PROMETHEUS_BASIC_AUTH_FILE": "/no/such/file"},
         "JOBMETER_PROMETHEUS_BASIC_AUTH_FILE", "no such file"),
        ({"JOBMETER_PROMETHEUS_BASIC_AUTH": "a:b", "JOBMETER_PROMETHEUS_BASIC_AUTH_FILE": "CA"},
         "JOBMETER_PROMETHEUS_BASIC_AUTH_FILE", "not both"),
    ],
)  # fmt: skip
def test_bad_prometheus_security_variables(
    pem_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    environ: dict[str, str],
    setting: str,
    detail: str,
) -> None:
    """Fails closed: no endpoint rather than one without the protection asked for."""
    names = {"CERT": "cert.pem", "KEY": "key.pem", "CA": "ca.pem"}
    env = {k: pem_files[names[v]] if v in names else v for k, v in environ.items()}
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        settings_from_env({**env, "JOBMETER_STRICT": "true"})
    assert raised.value.setting == setting
    assert detail in str(raised.value)
    with caplog.at_level(logging.WARNING, "jobmeter"):
        lenient = settings_from_env({**env, "OTEL_METRICS_EXPORTER": "prometheus,console"})
    assert lenient.exporters == ("console",)
    assert lenient.prometheus_basic_auth is None
    assert lenient.prometheus_certfile is None
    warnings = [r.getMessage() for r in caplog.records if setting in r.getMessage()]
    assert any(detail in w and "the Prometheus endpoint is not started" in w for w in warnings)


def test_tls_files_mixed_from_environment_and_keywords(pem_files: dict[str, str]) -> None:
    env = {"JOBMETER_PROMETHEUS_CERTFILE": pem_files["cert.pem"]}
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        resolve({"prometheus_client_cafile": pem_files["ca.pem"], "strict": True}, env)
    assert raised.value.setting == "JOBMETER_PROMETHEUS_CERTFILE"
    # The environment is what is incomplete: lenient, the endpoint is not started.
    lenient = resolve({"prometheus_client_cafile": pem_files["ca.pem"]}, env)
    assert lenient.exporters == ("none",)
    settings = resolve({"prometheus_keyfile": pem_files["key.pem"]}, env)
    assert (settings.prometheus_certfile, settings.prometheus_keyfile) == (
        pem_files["cert.pem"],
        pem_files["key.pem"],
    )
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        resolve({"prometheus_keyfile": pem_files["key.pem"]}, {})
    assert raised.value.setting == "prometheus_keyfile"
    assert "(keyword prometheus_certfile) is not set" in str(raised.value)


@pytest.mark.parametrize("raw", ["justauser", ":s3cret", "prom:", ""])
def test_bad_basic_auth_never_shows_the_password(raw: str, tmp_path: Any) -> None:
    for env_value in [raw] if raw else []:
        with pytest.raises(jobmeter.ConfigurationError) as raised:
            settings_from_env({"JOBMETER_PROMETHEUS_BASIC_AUTH": env_value + " ", **STRICT})
        assert raised.value.setting == "JOBMETER_PROMETHEUS_BASIC_AUTH"
        assert "s3cret" not in str(raised.value)
        assert "user:password" in str(raised.value)
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        resolve({"prometheus_basic_auth": raw}, {})
    assert raised.value.setting == "prometheus_basic_auth"
    assert "s3cret" not in str(raised.value)
    secret = tmp_path / "auth"
    secret.write_text(raw + "\n")
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        settings_from_env({"JOBMETER_PROMETHEUS_BASIC_AUTH_FILE": str(secret), **STRICT})
    assert raised.value.setting == "JOBMETER_PROMETHEUS_BASIC_AUTH_FILE"
    assert "s3cret" not in str(raised.value)
    assert str(secret) in str(raised.value)


def test_configure_applies_the_prometheus_security_keywords(tmp_path: Any) -> None:
    with pytest.raises(jobmeter.ConfigurationError) as raised:
        jobmeter.configure(
            prometheus_host="127.0.0.1",
            prometheus_port=0,
            prometheus_certfile=str(tmp_path),  # a directory: not a file
        )
    assert raised.value.setting == "prometheus_certfile"
    secret = tmp_path / "auth"
    secret.write_text("prom:s3cret")
    telemetry = jobmeter.configure(
        prometheus_host="127.0.0.1", prometheus_port=0, prometheus_basic_auth_file=str(secret)
    )
    assert telemetry.prometheus_url is not None
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(telemetry.prometheus_url, timeout=5)
    assert refused.value.code == 401
    refused.value.close()
