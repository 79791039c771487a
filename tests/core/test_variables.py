"""The rows of variables.py agree with Settings, the docs and configure()'s docstring."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

import pytest

import jobmeter
from jobmeter._core import hardware_settings, variables, variables_table
from jobmeter._core.config import DEFAULT_HOST_GROUPS, Settings
from jobmeter._core.parse import GPU_METRIC_NAMES, HOST_GROUPS, parse_text
from jobmeter._core.resource import build_resource
from jobmeter._core.setting import Variable
from jobmeter._core.variables import VARIABLES
from jobmeter._rundata.layout import DEFAULT_RUN_DIR
from jobmeter._rundata.recorder import DEFAULT_FLUSH_INTERVAL_S

CONFIGURATION_MD = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
NAMED = [row for row in VARIABLES if row.name is not None]


def test_configure_docstring_lists_every_keyword() -> None:
    doc = jobmeter.configure.__doc__ or ""
    listed = doc.partition("**overrides:")[2].partition("Returns:")[0]
    assert set(re.findall(r"``(\w+)``", listed)) == set(variables.KEYWORDS)


def test_keyword_only_rows_are_in_the_docs_list() -> None:
    text = CONFIGURATION_MD.read_text()
    keyword_only = [row for row in VARIABLES if row.name is None]
    assert keyword_only
    for row in keyword_only:
        assert f"- `{row.keyword}`: {row.meaning}" in text


def test_rows_name_real_settings_fields_and_agree_on_shared_keywords() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {row.field for row in VARIABLES if row.field is not None} == fields
    assert len(NAMED) == len(variables.ENVIRONMENT)  # no name twice
    for row in VARIABLES:
        if row.keyword is not None:
            # One keyword, one parser and field, whichever of its variables is documented.
            first = variables.KEYWORDS[row.keyword]
            assert (row.parse, row.field) == (first.parse, first.field), row.keyword
        if row.wins_over is not None:
            assert variables.ENVIRONMENT[row.wins_over].field == row.field, row.name


def test_the_table_has_one_line_per_variable_in_table_order() -> None:
    lines = variables_table.markdown_table().splitlines()
    assert lines[:2] == [
        "| Variable | Keyword argument | Default | Accepted values | Meaning |",
        "|---|---|---|---|---|",
    ]
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| `{row.name}`" for row in NAMED]
    run = lines[2 + NAMED.index(variables.ENVIRONMENT[variables.RUN])]
    assert run.startswith("| `JOBMETER_RUN` | none (set by jobmeter) | unset | the path of a run")
    endpoint = lines[2 + NAMED.index(variables.ENVIRONMENT[variables.OTLP_ENDPOINT])]
    assert "| `otlp_endpoint` (used as is, like the `_METRICS_` variable) |" in endpoint


def test_a_cell_that_would_break_the_table_is_refused() -> None:
    row = Variable("X", None, parse_text, default="a | b", accepted="", meaning="")
    with pytest.raises(ValueError, match="cannot hold"):
        variables_table.markdown_table([row])


def test_regenerating_rewrites_only_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "configuration.md"
    begin, end = variables_table.BEGIN, variables_table.END
    document.write_text(f"# Title\n\n{begin}\n| stale |\n{end}\n\nRest.\n")
    assert variables_table.main([str(document)]) == 0
    table = variables_table.markdown_table()
    assert document.read_text() == f"# Title\n\n{begin}\n{table}{end}\n\nRest.\n"
    assert variables_table.main([str(document)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{document}: rewritten",
        f"{document}: up to date",
    ]
    with pytest.raises(ValueError, match="lacks"):
        variables_table.with_table("# No markers\n")


# Defaults that are not a Settings value, with where the code keeps them.
READ_ELSEWHERE = {
    variables.HOST_METRICS: DEFAULT_HOST_GROUPS,
    hardware_settings.GPU_METRICS: GPU_METRIC_NAMES,  # all five
    variables.RUN_DIR: DEFAULT_RUN_DIR,
    variables.RUN_FLUSH_INTERVAL: DEFAULT_FLUSH_INTERVAL_S,
    variables.RUN: None,
    variables.SHARED_ENDPOINT: None,
    variables.PUSHGATEWAY_URL: None,
    hardware_settings.ENERGY: True,
    variables.HOST_NAME: "plain",
    hardware_settings.SYSFS_PATH: hardware_settings.DEFAULT_SYSFS_PATH,
}


def _as_documented(value: object) -> str | None:
    """A default as the docs write it; None for no value."""
    if value is None or value == {}:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, frozenset):
        return ",".join(group for group in HOST_GROUPS if group in value)
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, Path):
        return f"./{value}"
    return str(value)


@pytest.mark.parametrize(
    "row", [row for row in NAMED if row.name != variables.SERVICE_NAME], ids=lambda row: row.name
)
def test_the_documented_default_is_the_one_in_code(row: Variable) -> None:
    if row.wins_over is not None:
        assert row.default.startswith("none"), row.default  # the generic one's applies
        return
    assert row.name is not None
    in_code = READ_ELSEWHERE[row.name] if row.field is None else getattr(Settings(), row.field)
    documented = _as_documented(in_code)
    if documented is None:
        assert row.default.startswith(("none", "unset")), row.default
    else:
        assert row.default.startswith(f"`{documented}`"), (row.default, documented)


def test_the_documented_service_name_is_the_one_the_resource_gets() -> None:
    service = str(build_resource(Settings()).attributes["service.name"])
    executable = os.path.basename(sys.executable)
    documented = f"`{service}`".replace(executable, "<name of the Python executable>")
    assert variables.ENVIRONMENT[variables.SERVICE_NAME].default.startswith(documented)
