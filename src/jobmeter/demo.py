"""A sample measured workload: ``python -m jobmeter.demo`` (what ``make demo`` runs).

It configures jobmeter from the environment (by default a Prometheus endpoint
on http://localhost:8000/metrics), runs a small DuckDB pipeline for
``DEMO_SECONDS`` seconds (default 10) with every step measured and every
statement profiled, and prints what each step and each query shape cost at
the end, in tables that fit 80 columns. It needs only the base install.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from rich import box
from rich.console import Console
from rich.table import Table

import jobmeter
import jobmeter.duckdb
from jobmeter.testing import InMemoryMetrics


def _pipeline(
    ops: jobmeter.MetricsCollector, db: duckdb.DuckDBPyConnection, out: Path, i: int
) -> None:
    with ops.measure("load", {"table": "orders"}):
        db.execute(
            "CREATE OR REPLACE TABLE orders AS SELECT range AS id, range % 97 AS customer, "
            "random() * 100 AS amount FROM range(?)",
            [200_000 + 10_000 * (i % 5)],
        )
    with ops.measure("transform", {"table": "orders"}):
        db.execute(
            "CREATE OR REPLACE TABLE totals AS "
            "SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer"
        )
    with ops.measure("write", {"format": "parquet"}):
        db.execute(f"COPY totals TO '{out / f'totals-{i % 3}.parquet'}' (FORMAT parquet)")
    try:
        with ops.measure("validate"):
            if i % 4 == 3:
                raise ValueError("negative totals found")
    except ValueError:
        pass  # the demo's "bad batch": recorded with error.type=ValueError


async def _fetch_all(ops: jobmeter.MetricsCollector) -> None:
    @ops.measure("fetch", {"source": "api"}, resources=False)
    async def fetch(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    await asyncio.gather(*(fetch(n) for n in range(5)))


def _table(title: str, label: str, *figures: str) -> Table:
    """A table whose figure columns never fold: only the label column wraps when narrow.

    As the CLI's tables: a header rule at a terminal, plain aligned text in a pipe or a
    CI log (no box drawing).
    """
    terminal = sys.stdout.isatty()
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD if terminal else None,
                  show_edge=False, pad_edge=False, collapse_padding=terminal)  # fmt: skip
    table.add_column(label, overflow="fold")
    for figure in figures:
        table.add_column(figure, justify="right", no_wrap=True)
    return table


def _summary(recorded: InMemoryMetrics) -> Table:
    table = _table(
        "What each operation cost", "operation", "calls", "errors", "wall s", "mean ms", "CPU s"
    )
    rows: dict[str, list[float]] = {}
    for point in recorded.points("jobmeter.operation.duration"):
        if not isinstance(point, HistogramDataPoint):
            continue
        attributes = point.attributes or {}
        name = str(attributes.get("operation.name"))
        row = rows.setdefault(name, [0, 0, 0.0])
        row[0] += point.count
        row[1] += point.count if "error.type" in attributes else 0
        row[2] += point.sum
    for name, (calls, errors, wall) in sorted(rows.items()):
        measured = recorded.points("jobmeter.operation.cpu.time", {"operation.name": name})
        cpu = recorded.value("jobmeter.operation.cpu.time", {"operation.name": name})
        table.add_row(
            name, f"{calls:.0f}", f"{errors:.0f}", f"{wall:.3f}",
            f"{1000 * wall / calls:.2f}", f"{cpu:.3f}" if measured else "-",
        )  # fmt: skip
    return table


def _queries(recorded: InMemoryMetrics) -> Table:
    table = _table(
        "What each DuckDB query shape cost", "db.query.summary", "calls", "total s", "rows scanned"
    )
    shapes = [
        (point.sum, point.count, dict(point.attributes))
        for point in recorded.points("db.client.operation.duration")
        if isinstance(point, HistogramDataPoint) and point.attributes
    ]
    for total, calls, attributes in sorted(shapes, key=lambda shape: -shape[0])[:6]:
        # The short OTel summary (`COPY totals`): operation and tables, no literal.
        summary = str(attributes["db.query.summary"])
        scanned = recorded.points("jobmeter.duckdb.rows.scanned", attributes)
        table.add_row(
            summary,
            f"{calls:.0f}",
            f"{total:.3f}",
            f"{recorded.value('jobmeter.duckdb.rows.scanned', attributes):.0f}" if scanned else "-",
        )
    return table


def main() -> int:
    """Run the demo; returns the exit status."""
    console = Console()
    seconds = float(os.environ.get("DEMO_SECONDS", "10"))
    reader = InMemoryMetricReader()  # for the summary, whatever the exporters are
    try:
        telemetry = jobmeter.configure(metric_readers=[reader], service_name="jobmeter-demo")
    except jobmeter.ConfigurationError as error:
        console.print(f"[red]jobmeter: {error}[/red]")
        console.print("Set OTEL_EXPORTER_PROMETHEUS_PORT to a free port (0 picks one).")
        return 2
    if telemetry.prometheus_url:
        console.print(f"Serving metrics on [bold]{telemetry.prometheus_url}[/bold] while it runs")
    console.print(f"Running a measured DuckDB pipeline for {seconds:.0f} s ...")
    ops = jobmeter.MetricsCollector("jobmeter.demo", attributes={"pipeline": "orders"})
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory() as tmp:
        db = jobmeter.duckdb.connect(str(Path(tmp) / "demo.duckdb"))  # every statement profiled
        i = 0
        while time.monotonic() < deadline:
            _pipeline(ops, db, Path(tmp), i)
            asyncio.run(_fetch_all(ops))
            i += 1
        db.close()
    if telemetry.prometheus_url:
        with urllib.request.urlopen(telemetry.prometheus_url, timeout=5) as response:
            lines = [x for x in response.read().decode().splitlines() if x.startswith("jobmeter_")]
        console.print(f"The endpoint served {len(lines)} jobmeter samples at the last scrape.")
    recorded = InMemoryMetrics(reader, telemetry)
    console.print(_summary(recorded))
    console.print("CPU s is the process's CPU time during each block; '-': resources=False.")
    console.print()
    console.print(_queries(recorded))
    telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
