"""docs/metrics.md and docs/configuration.md stay true to the code."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

import jobmeter
from jobmeter import _config
from jobmeter.host import HostCollector
from jobmeter.testing import in_memory

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _table_rows(path: Path) -> list[list[str]]:
    """Rows of the markdown tables whose first cell is a `code` name."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in path.read_text().splitlines()
        if line.startswith("| `")
    ]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected one `code` value in {cell!r}"
    return match.group(1)


# Documented, but only emitted on a machine with swap (CI machines have none).
NEEDS_SWAP = {"system.paging.usage", "system.paging.utilization"}


def _emitted() -> dict[str, tuple[str, str]]:
    """Every instrument measure() and HostCollector emit: name -> (kind, unit), from real points."""
    with in_memory() as recorded:
        ops = jobmeter.MetricsCollector("docs")
        with ops.measure("load"):
            pass
        HostCollector(gpu=False)
        time.sleep(0.3)  # utilization needs an interval
        found = {m.name: m for _, m in recorded.metrics()}
    kinds = {}
    for name, metric in found.items():
        data = metric.data
        if isinstance(data, Histogram):
            kind = "Histogram"
        elif isinstance(data, Sum):
            kind = "ObservableCounter" if data.is_monotonic else "ObservableUpDownCounter"
        else:
            assert isinstance(data, Gauge)
            kind = "ObservableGauge"
        kinds[name] = (kind, metric.unit or "")
    return kinds


def test_metrics_md_lists_every_instrument_with_kind_and_unit() -> None:
    documented = {
        _code(row[0]): (row[1], _code(row[2]), _code(row[4]))
        for row in _table_rows(DOCS / "metrics.md")
        if len(row) == 6 and row[0].startswith(("`jobmeter.", "`process.", "`system."))
    }
    emitted = _emitted()
    assert set(emitted) == set(documented) - NEEDS_SWAP
    for name, (kind, unit) in emitted.items():
        assert documented[name][:2] == (kind, unit), name


def test_metrics_md_prometheus_names_match_a_real_scrape() -> None:
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    with jobmeter.MetricsCollector("docs").measure("load"):
        pass
    HostCollector(gpu=False)
    time.sleep(0.3)
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
        text = response.read().decode()
    exposed = {
        re.sub(r"(_seconds)_(bucket|count|sum)$", r"\1", line.split("{")[0].split(" ")[0])
        for line in text.splitlines()
        if line.startswith(("jobmeter_", "process_", "system_"))
    }
    documented = {
        _code(row[4]): _code(row[0])
        for row in _table_rows(DOCS / "metrics.md")
        if len(row) == 6 and row[0].startswith(("`jobmeter.", "`process.", "`system."))
    }
    assert {p for p, name in documented.items() if name not in NEEDS_SWAP} == exposed


def test_configuration_md_documents_every_variable() -> None:
    variables = {
        value
        for name, value in vars(_config).items()
        if name.isupper() and isinstance(value, str) and value.startswith(("OTEL_", "JOBMETER_"))
    }
    documented = {_code(row[0]) for row in _table_rows(DOCS / "configuration.md")}
    assert variables <= documented, sorted(variables - documented)
    assert len(variables) == 18
