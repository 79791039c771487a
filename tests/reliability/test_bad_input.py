"""Bad input: every variable jobmeter reads, fuzzed; measure() attributes of wrong types.

A variable's value either parses to what it says or is a ConfigurationError
naming that variable; attributes are either recorded as given or refused with
a TypeError naming the problem, before the block runs.
"""

from __future__ import annotations

import math
import os
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jobmeter
from jobmeter import testing
from jobmeter._core import config
from jobmeter._core.errors import ConfigurationError
from jobmeter._rundata.recorder import DEFAULT_FLUSH_INTERVAL_S, flush_interval

VARIABLES = sorted(
    value
    for name, value in vars(config).items()
    if name.isupper() and isinstance(value, str) and value.startswith(("OTEL_", "JOBMETER_"))
)
# Read elsewhere than resolve(): fuzzed where they are read, below.
ELSEWHERE = {config.HOST_METRICS, config.RUN_FLUSH_INTERVAL, config.RUN_DIR, config.RUN,
             config.PUSHGATEWAY_URL}  # fmt: skip
RESOLVED = [name for name in VARIABLES if name not in ELSEWHERE]

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1_000", " 12 ", "+5", "0x10", "1e3", "١٢", "0", "-0", "1e400", "nan"]),
)
URLS = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["http://", "https://", "ftp://", "", "http://["]),
    st.text(max_size=30),
)
VALUES = st.one_of(
    st.text(max_size=40),
    NUMBERS,
    URLS,
    st.builds(",".join, st.lists(st.sampled_from([*config.EXPORTERS, "x", " OTLP", ""]))),
    st.sampled_from(["true", "FALSE", " True ", "yes", "1", "grpc", "HTTP/protobuf", "delta"]),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _expected_number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan


def _names(error: ConfigurationError, name: str) -> None:
    """The error is about the variable that was set, and says so."""
    assert error.setting == name, error
    assert name in str(error)


def _check(name: str, raw: str, found: config.Settings) -> None:
    """An accepted value means what it says."""
    value = raw.strip()
    if name == config.SDK_DISABLED:
        assert value.lower() in ("true", "false")
        assert found.disabled is (value.lower() == "true")
    elif name in (config.SERVICE_NAME, config.PROMETHEUS_HOST):
        assert value in (found.service_name, found.prometheus_host)
    elif name == config.METRICS_EXPORTER:
        given_names = {item.strip().lower() for item in value.split(",")}
        assert set(found.exporters) == given_names
        assert all(item in config.EXPORTERS for item in found.exporters)
    elif name in (config.OTLP_PROTOCOL, config.OTLP_METRICS_PROTOCOL):
        assert found.otlp_protocol == value.lower() in config.PROTOCOLS
    elif name == config.OTLP_TEMPORALITY:
        assert found.otlp_temporality == value.lower() in config.TEMPORALITIES
    elif name in (config.OTLP_TIMEOUT, config.OTLP_METRICS_TIMEOUT):
        assert found.otlp_timeout_ms == _expected_number(raw) > 0
    elif name == config.EXPORT_INTERVAL:
        assert found.export_interval_ms == _expected_number(raw) > 0
    elif name == config.EXPORT_TIMEOUT:
        assert found.export_timeout_ms == _expected_number(raw) > 0
    elif name == config.PROMETHEUS_PORT:
        assert found.prometheus_port == int(value)
        assert 0 <= found.prometheus_port <= 65535
    elif name in (config.OTLP_ENDPOINT, config.OTLP_METRICS_ENDPOINT):
        assert found.otlp_endpoint.startswith(value.rstrip("/"))
        assert value.lower().startswith(("http://", "https://"))
    elif name in (config.RESOURCE_ATTRIBUTES, config.OTLP_HEADERS, config.OTLP_METRICS_HEADERS):
        parsed = found.resource_attributes if name == config.RESOURCE_ATTRIBUTES else (
            found.otlp_headers)  # fmt: skip
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
        assert len(parsed) <= value.count("=")
    # Any other variable (file paths, credentials) is held to the contract only.


@pytest.mark.parametrize("name", RESOLVED)
@FAST
@given(raw=VALUES)
@example(raw="http://[::1")
@example(raw="http://host:99999")
def test_every_variable_parses_to_what_it_says_or_names_itself(name: str, raw: str) -> None:
    try:
        found = config.resolve({}, {name: raw})
    except ConfigurationError as error:
        _names(error, name)
        return
    if raw.strip():
        _check(name, raw, found)
    else:
        assert found == config.Settings()  # empty counts as unset


@FAST
@given(raw=VALUES)
def test_host_metrics_groups_parse_or_name_the_variable(raw: str) -> None:
    try:
        groups = config.host_groups({}, {config.HOST_METRICS: raw})
    except ConfigurationError as error:
        _names(error, config.HOST_METRICS)
        return
    if raw.strip():
        assert groups == {item.strip().lower() for item in raw.split(",")}
    else:
        assert groups == config.DEFAULT_HOST_GROUPS


@FAST
@given(raw=st.one_of(NUMBERS, st.text(max_size=20).filter(lambda s: "\0" not in s)))
def test_run_flush_interval_parses_or_names_the_variable(raw: str) -> None:
    with mock.patch.dict(os.environ, {config.RUN_FLUSH_INTERVAL: raw}):
        try:
            interval = flush_interval()
        except ConfigurationError as error:
            _names(error, config.RUN_FLUSH_INTERVAL)
            return
    if raw:
        assert interval == _expected_number(raw) > 0
    else:
        assert interval == DEFAULT_FLUSH_INTERVAL_S


# -- measure() attributes -----------------------------------------------------------------------

BAD_ATTRIBUTES: list[tuple[dict[Any, Any], str]] = [
    ({"a": None}, r"'a' must be str, bool, int, float.*got NoneType"),
    ({"a": {"b": 1}}, r"'a' must be .*got dict"),
    ({"a": b"bytes"}, r"'a' must be .*got bytes"),
    ({"a": {1, 2}}, r"'a' must be .*got set"),
    ({"a": object()}, r"'a' must be .*got object"),
    ({"a": [1, "x"]}, r"'a' must be .*got a list of int, str"),
    ({"a": [None]}, r"'a' must be .*got a list of NoneType"),
    ({"a": ({"nested": 1},)}, r"'a' must be .*got a tuple of dict"),
    ({1: "x"}, r"keys must be str, got int key 1"),
    ({("k",): "x"}, r"keys must be str, got tuple key \('k',\)"),
]


@pytest.mark.parametrize(("attributes", "message"), BAD_ATTRIBUTES)
def test_bad_attributes_are_a_clear_type_error_before_the_block(
    attributes: dict[Any, Any], message: str
) -> None:
    with testing.in_memory() as metrics:
        ops = jobmeter.MetricsCollector("bad")
        ran = False
        with pytest.raises(TypeError, match=message), ops.measure("op", attributes):
            ran = True
        assert not ran
        with pytest.raises(TypeError, match=message.replace("'a'", "'a'")):
            jobmeter.MetricsCollector("bad2", attributes=attributes)
        with pytest.raises(TypeError, match=message):
            ops.measure("op", _Mapping(attributes))  # not a dict: the slow path checks too
        assert metrics.points("jobmeter.operation.duration") == []


def test_an_empty_key_is_a_value_error_not_a_silent_drop() -> None:
    ops = jobmeter.MetricsCollector("empty")
    with pytest.raises(ValueError, match="keys must be non-empty"):
        ops.measure("op", {"": "x"})


class _Mapping(dict[Any, Any]):
    """A dict subclass, so measure() takes its general path."""


def test_a_one_megabyte_value_is_recorded_as_given() -> None:
    """The SDK sets no length limit on attribute values: 1 MB is kept, not cut or dropped."""
    huge = "x" * 1_000_000
    with testing.in_memory() as metrics:
        ops = jobmeter.MetricsCollector("huge")
        with ops.measure("op", {"blob": huge}):
            pass
        [point] = metrics.points("jobmeter.operation.duration")
    assert point.attributes is not None
    assert point.attributes["blob"] == huge


SCALARS = st.one_of(st.text(max_size=5), st.booleans(), st.integers(), st.floats(allow_nan=False))
ANY_VALUE = st.one_of(
    SCALARS,
    st.lists(st.integers(), max_size=3),
    st.lists(st.text(max_size=3), max_size=3).map(tuple),
    st.none(),
    st.binary(max_size=3),
    st.lists(st.one_of(st.integers(), st.text(max_size=2), st.none()), min_size=2, max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(attributes=st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), ANY_VALUE,
                                  max_size=4))  # fmt: skip
def test_any_attributes_are_recorded_as_given_or_refused(attributes: dict[Any, Any]) -> None:
    with testing.in_memory() as metrics:
        ops = jobmeter.MetricsCollector("any")
        try:
            measured = ops.measure("op", attributes)
        except (TypeError, ValueError) as error:
            message = str(error)
            assert message.startswith("attributes: ")
            return
        with measured:
            pass
        [point] = metrics.points("jobmeter.operation.duration")
    expected = {k: tuple(v) if isinstance(v, list) else v for k, v in attributes.items()}
    expected["operation.name"] = "op"
    assert point.attributes is not None
    recorded = {k: tuple(v) if isinstance(v, list | tuple) else v
                for k, v in point.attributes.items()}  # fmt: skip
    assert recorded == expected
