"""The record tables of ``jobmeter report`` and ``compare``: operations, queries, failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobmeter._core.format import format_bytes
from jobmeter.store import RunReport

TOP = 10


def seconds(value: float | None) -> str:
    """A duration with a unit that keeps three figures."""
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    if value >= 1e-5:
        return f"{value * 1e6:.0f} µs"
    return f"{value * 1e6:.2f} µs"


def _time(unix: float | None) -> str:
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix).astimezone().strftime("%H:%M:%S")


def query_label(summary: str | None, shape_hash: str | None) -> Text:
    """A query's summary, and below it its shape's hash (the full shape: ``report --json``)."""
    label = Text(summary or "")  # Text: a name in brackets is not rich markup
    if shape_hash:
        label.append(f"\n#{shape_hash}", style="dim")
    return label


def print_records(console: Console, report: RunReport) -> None:
    """Top operations and queries by total time, failures and backfills, where there are any."""
    records = report.records
    if records.operations:
        # The collector only where there are several: the operation's name needs the room.
        several = len({op["collector"] for op in records.operations}) > 1
        table = Table(title=f"top operations by total time ({len(records.operations)} in all)")
        for column in ("operation", "collector", "count", "errors", "total", "mean", "p50",
                       "p95", "max", "CPU", "peak mem"):  # fmt: skip
            if column != "collector" or several:
                table.add_column(column, justify="left" if column in ("operation", "collector")
                                 else "right")  # fmt: skip
        for op in records.operations[:TOP]:
            table.add_row(
                op["label"], *([op["collector"]] if several else []), str(op["count"]),
                str(op["errors"]), seconds(op["duration_total_seconds"]),
                seconds(op["duration_mean_seconds"]), seconds(op["duration_p50_seconds"]),
                seconds(op["duration_p95_seconds"]), seconds(op["duration_max_seconds"]),
                seconds(op["cpu_total_seconds"]), format_bytes(op["peak_memory_max_bytes"]),
            )  # fmt: skip
        console.print(table)
    if records.queries:
        table = Table(title=f"top DuckDB queries by total time ({len(records.queries)} shapes)")
        for column in ("query", "count", "errors", "total", "p50", "p95", "max", "rows"):
            table.add_column(column, justify="left" if column == "query" else "right")
        for q in records.queries[:TOP]:
            table.add_row(
                query_label(q["summary"], q["shape_hash"]), str(q["count"]), str(q["errors"]),
                seconds(q["duration_total_seconds"]), seconds(q["duration_p50_seconds"]),
                seconds(q["duration_p95_seconds"]), seconds(q["duration_max_seconds"]),
                str(q["rows"]),
            )  # fmt: skip
        console.print(table)
    if records.failures:
        table = Table(title="failures")
        for column in ("where", "what", "error type", "count", "first", "last"):
            table.add_column(column, justify="right" if column == "count" else "left")
        for f in records.failures[:TOP]:
            table.add_row(f["source"], f["name"], f["error_type"], str(f["count"]),
                          _time(f["first_unix"]), _time(f["last_unix"]))  # fmt: skip
        console.print(table)
    if records.backfills:
        table = Table(title="backfills")
        for column in ("backfill", "status", "done", "skipped", "failed", "total", "rate"):
            table.add_column(column, justify="left" if column in ("backfill", "status")
                             else "right")  # fmt: skip
        for b in records.backfills:
            rate = "-" if b["rate"] is None else f"{b['rate']:.2f}/s"
            table.add_row(b["backfill"], b["status"], str(b["done"]), str(b["skipped"]),
                          str(b["failed"]), "-" if b["total"] is None else str(b["total"]),
                          rate)  # fmt: skip
        console.print(table)


def _percent(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not a:
        return None
    return (b - a) / a * 100


def compared(a: RunReport, b: RunReport, kind: str) -> list[dict[str, Any]]:
    """Operations (by label and collector) or queries (by summary and shape) of two runs."""

    def key(row: dict[str, Any]) -> tuple[str, ...]:
        if kind == "operations":
            return (row["collector"], row["label"])
        return (row["namespace"], row["summary"], row["shape_hash"] or "")

    left = {key(row): row for row in getattr(a.records, kind)}
    right = {key(row): row for row in getattr(b.records, kind)}
    out = []
    for k in sorted(set(left) | set(right)):
        ra, rb = left.get(k), right.get(k)
        entry: dict[str, Any] = {"key": list(k), "a": ra, "b": rb}
        for figure in ("count", "duration_total_seconds", "duration_p95_seconds"):
            va = None if ra is None else ra[figure]
            vb = None if rb is None else rb[figure]
            entry[f"{figure}_change_percent"] = _percent(va, vb)
        out.append(entry)

    def weight(entry: dict[str, Any]) -> float:
        sides = (entry["a"] or {}, entry["b"] or {})
        return max(float(side.get("duration_total_seconds") or 0.0) for side in sides)

    return sorted(out, key=lambda entry: -weight(entry))


def print_compared(console: Console, rows: list[dict[str, Any]], kind: str) -> None:
    """Matched operations or queries: count, total and p95 in A and B, with the change."""
    if not rows:
        return
    title = "operations" if kind == "operations" else "DuckDB queries"
    table = Table(title=f"{title}, matched by name (top {min(len(rows), TOP)} by total time)")
    for column in ("name", "count A", "count B", "total A", "total B", "%", "p95 A", "p95 B",
                   "% p95"):  # fmt: skip
        table.add_column(column, justify="left" if column == "name" else "right")
    for row in rows[:TOP]:
        a, b = row["a"] or {}, row["b"] or {}
        cells: list[str | Text] = [row["key"][1]]
        if kind != "operations":
            cells = [query_label(row["key"][1], row["key"][2])]
        for figure, shown in (("count", str), ("duration_total_seconds", seconds),
                              ("duration_p95_seconds", seconds)):  # fmt: skip
            cells += [shown(a[figure]) if a else "-", shown(b[figure]) if b else "-"]
            if figure != "count":
                change = row[f"{figure}_change_percent"]
                color = "" if not change else ("red" if change > 0 else "green")
                text = "" if change is None else f"{change:+.1f} %"
                cells.append(f"[{color}]{text}[/]" if color else text)
        table.add_row(*cells)
    console.print(table)
