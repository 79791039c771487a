"""Bad input: every variable jobmeter reads, fuzzed; measure() attributes of wrong types.

A variable's value either parses to what it says or, by default, is one warning
naming that variable and the default applies; in strict mode it is a
ConfigurationError naming it. Attributes are either recorded as given or
refused with a TypeError naming the problem, before the block runs. The
variables and their parsers are the rows of jobmeter._core.variables.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jobmeter
from jobmeter import testing
from jobmeter._core import config, environment, parse, variables
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.parse import Parser
from jobmeter._core.pushgateway import gateway_url
from jobmeter._core.setting import Variable
from jobmeter._core.variables import VARIABLES
from jobmeter._rundata.layout import DEFAULT_RUN_DIR, runs_root
from jobmeter._rundata.recorder import DEFAULT_FLUSH_INTERVAL_S
from jobmeter._rundata.sources import flush_interval

NAMED = [row for row in VARIABLES if row.name is not None]
# resolve() reads these into Settings; the others are read where they are used, below.
RESOLVED = [row for row in NAMED if row.field is not None]

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
    st.builds(",".join, st.lists(st.sampled_from([*parse.EXPORTERS, "x", " OTLP", ""]))),
    st.builds(",".join, st.lists(st.sampled_from([*parse.HOST_GROUPS, "CPU ", "swap", ""]))),
    st.sampled_from(["true", "FALSE", " True ", "yes", "1", "grpc", "HTTP/protobuf", "delta"]),
    st.sampled_from(["prom:s3cret", "prom:", ":pw", "a:b:c", "a=b,c=%20d", "a"]),
)
# What os.environ can hold.
ENV_VALUES = VALUES.filter(lambda raw: "\0" not in raw)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan


def _items(text: str) -> set[str]:
    return {item.strip().lower() for item in text.split(",")}


def _is_bool(text: str, value: Any) -> bool:
    return text.lower() in ("true", "false") and value is (text.lower() == "true")


def _is_exporters(text: str, value: Any) -> bool:
    return set(value) == _items(text) and set(value) <= set(parse.EXPORTERS)


def _is_url(text: str, value: Any) -> bool:
    return value == text and text.lower().startswith(("http://", "https://"))


def _is_pairs(text: str, value: Any) -> bool:
    strings = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return strings and len(value) <= text.count("=")


# What an accepted value means, by parser: check(stripped value, parsed value).
MEANS: dict[Parser, Callable[[str, Any], bool]] = {
    parse.parse_text: lambda text, value: value == text,
    parse.parse_bool: _is_bool,
    parse.parse_exporters: _is_exporters,
    parse.parse_host_groups: lambda text, value: value == _items(text),
    parse.parse_gpu_metrics: lambda text, value: (
        value == _items(text) <= set(parse.GPU_METRIC_NAMES)
    ),
    parse.parse_price: lambda text, value: value == _number(text) >= 0,
    parse.parse_host_name: lambda text, value: value == text.lower() in parse.HOST_NAME_MODES,
    parse.parse_default_registry: lambda text, value: (
        value == text.strip().lower() in parse.DEFAULT_REGISTRY_MODES
    ),
    parse.parse_protocol: lambda text, value: value == text.lower() in parse.PROTOCOLS,
    parse.parse_temporality: lambda text, value: value == text.lower() in parse.TEMPORALITIES,
    parse.parse_millis: lambda text, value: value == _number(text) > 0,
    parse.parse_seconds: lambda text, value: value == _number(text) > 0,
    parse.parse_port: lambda text, value: value == int(text) and 0 <= value <= 65535,
    parse.parse_endpoint: _is_url,
    parse.parse_pushgateway_url: _is_url,
    parse.parse_key_values: _is_pairs,
    parse.parse_basic_auth: lambda text, value: value == tuple(text.split(":", 1)),
}
# Accepted only for a readable file, which fuzzed text does not name: held to the contract.
CONTRACT_ONLY = {parse.parse_file, parse.parse_basic_auth_file}


def _names(error: ConfigurationError, name: str) -> None:
    """The error is about the variable that was set, and says so."""
    assert error.setting == name, error
    assert name in str(error)


def _id(row: Variable) -> str:
    return str(row.name)


def test_every_parser_has_its_meaning_checked() -> None:
    assert {row.parse for row in VARIABLES} <= set(MEANS) | CONTRACT_ONLY


@pytest.mark.parametrize("row", NAMED, ids=_id)
@FAST
@given(raw=VALUES)
@example(raw="http://[::1")
@example(raw="http://host:99999")
def test_every_variable_parses_to_what_it_says_or_names_itself(row: Variable, raw: str) -> None:
    """Each row's parser, on the value as read from the environment (stripped, not empty)."""
    assert row.name is not None
    text = raw.strip()
    if not text:
        return  # empty counts as unset: no parser sees it
    try:
        value = row.parse(row.name, text)
    except ConfigurationError as error:
        _names(error, row.name)
        return
    assert row.parse in CONTRACT_ONLY or MEANS[row.parse](text, value), (text, value)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _warnings() -> Iterator[list[str]]:
    environment._forget_warnings()  # each example warns afresh
    handler = _Records()
    logger = logging.getLogger("jobmeter")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _lenient_then_strict(
    name: str, raw: str, read: Callable[[], Any], default: Any, usable: Callable[[str], Any]
) -> None:
    """Lenient: the value's meaning, or one warning naming it and the default. Strict: or raise.

    ``usable(text)`` is what the stripped, non-empty value means, or raises
    ConfigurationError when it cannot be used.
    """
    text = raw.strip()
    try:
        expected, bad = (usable(text), False) if text else (default, False)
    except ConfigurationError:
        expected, bad = default, True
    with _warnings() as warned:
        assert _read({name: raw}, read) == expected
    about = [m for m in warned if f"{name}=" in m]
    assert len(about) == (1 if bad else 0), warned
    try:
        assert _read({name: raw, "JOBMETER_STRICT": "true"}, read) == expected
        assert not bad
    except ConfigurationError as error:
        assert bad
        _names(error, name)


def _read(values: dict[str, str], reader: Callable[[], Any]) -> Any:
    with mock.patch.dict(os.environ, values):
        return reader()


@pytest.mark.parametrize("row", [r for r in RESOLVED if r.name != variables.STRICT], ids=_id)
@FAST
@given(raw=ENV_VALUES)
@example(raw="http://[::1")
def test_resolve_reads_each_variable_with_its_rows_parser(row: Variable, raw: str) -> None:
    assert row.name is not None
    field = row.field
    assert field is not None
    name = row.name
    default = getattr(config.Settings(), field)
    _lenient_then_strict(
        name, raw, lambda: getattr(config.resolve({}), field), default,
        lambda text: row.parse(name, text),
    )  # fmt: skip


@FAST
@given(raw=ENV_VALUES)
def test_host_metrics_groups_parse_or_name_the_variable(raw: str) -> None:
    name = variables.HOST_METRICS
    _lenient_then_strict(
        name, raw, lambda: config.host_groups({}), config.DEFAULT_HOST_GROUPS,
        lambda text: variables.ENVIRONMENT[name].parse(name, text),
    )  # fmt: skip


@FAST
@given(raw=st.one_of(NUMBERS, st.text(max_size=20).filter(lambda s: "\0" not in s)))
def test_run_flush_interval_parses_or_names_the_variable(raw: str) -> None:
    name = variables.RUN_FLUSH_INTERVAL
    _lenient_then_strict(
        name, raw, flush_interval, DEFAULT_FLUSH_INTERVAL_S,
        lambda text: variables.ENVIRONMENT[name].parse(name, text),
    )  # fmt: skip


@FAST
@given(raw=ENV_VALUES)
def test_run_dir_is_taken_as_given(raw: str) -> None:
    # Stripped like every variable: blank is unset.
    assert _read({variables.RUN_DIR: raw}, runs_root) == Path(raw.strip() or DEFAULT_RUN_DIR)


@FAST
@given(raw=ENV_VALUES)
@example(raw="http://[::1")
def test_pushgateway_url_parses_or_names_the_variable(raw: str) -> None:
    name = variables.PUSHGATEWAY_URL
    _lenient_then_strict(
        name, raw, gateway_url, None, lambda text: variables.ENVIRONMENT[name].parse(name, text)
    )


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
