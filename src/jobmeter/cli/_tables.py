"""The record tables of ``jobmeter report`` and ``compare``: operations, queries, failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobmeter._core.format import format_bytes, format_joules
from jobmeter.cli._table import Cell, Column, Output, Styled, Table
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


def query_label(summary: str | None, shape_hash: str | None) -> str:
    """A query's summary, and below it its shape's hash (the full shape: ``report --json``)."""
    return (summary or "") + (f"\n#{shape_hash}" if shape_hash else "")


def _columns(*spec: tuple[str, int]) -> list[Column]:
    """Figure columns (right-aligned) with their drop rank; the first is the folding name."""
    name, *figures = spec
    return [Column(name[0], "left", fold=True, min_width=name[1])] + [
        Column(header, drop=drop) for header, drop in figures
    ]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _cpu(value: float | None) -> str:
    return "0 s" if value == 0 else seconds(value)  # counted in 10 ms ticks: none is none


def print_processes(out: Output, report: RunReport) -> None:
    """The heaviest processes of the run by peak RSS, where the samples list any."""
    rows = report.processes.rows[:TOP]
    if not rows:
        return
    title = f"heaviest processes by peak RSS ({len(rows)} of {report.processes.seen})"
    table = Table(title, _columns(("process", 10), ("pid", 0), ("peak RSS", 0), ("mean RSS", 3),
                                  ("peak PSS", 2), ("CPU", 0), ("CPU mean", 1)))  # fmt: skip
    for p in rows:
        table.add_row(p["name"] or "?", str(p["pid"]), format_bytes(p["peak_rss_bytes"]),
                      format_bytes(p["mean_rss_bytes"]), format_bytes(p["peak_pss_bytes"]),
                      _cpu(p["cpu_seconds"]), _percent(p["cpu_percent_mean"]))  # fmt: skip
    out.table(table)


def print_records(out: Output, report: RunReport) -> None:
    """Top operations and queries by total time, failures and backfills, where there are any."""
    records = report.records
    if records.operations:
        # The collector only where there are several: the operation's name needs the room.
        several = len({op["collector"] for op in records.operations}) > 1
        # Energy only where a block metered it: a column of dashes says nothing.
        energy = any(op.get("energy_total_joules") is not None for op in records.operations)
        columns = _columns(("operation", 14), ("count", 0), ("errors", 3), ("total", 0),
                           ("mean", 9), ("p50", 8), ("p95", 0), ("max", 7), ("CPU", 4),
                           ("peak mem", 2), *([("energy", 10)] if energy else []))  # fmt: skip
        if several:
            columns.insert(1, Column("collector", "left", drop=6, fold=True, min_width=10))
        table = Table(f"top operations by total time ({len(records.operations)} in all)", columns)
        for op in records.operations[:TOP]:
            table.add_row(
                op["label"].replace(" {", "\n{", 1),  # attributes below the name at a terminal
                *([op["collector"]] if several else []), str(op["count"]),
                str(op["errors"]), seconds(op["duration_total_seconds"]),
                seconds(op["duration_mean_seconds"]), seconds(op["duration_p50_seconds"]),
                seconds(op["duration_p95_seconds"]), seconds(op["duration_max_seconds"]),
                seconds(op["cpu_total_seconds"]), format_bytes(op["peak_memory_max_bytes"]),
                *([format_joules(op.get("energy_total_joules"))] if energy else []),
            )  # fmt: skip
        out.table(table)
    if records.queries:
        table = Table(f"top DuckDB queries by total time ({len(records.queries)} shapes)",
                      _columns(("query", 16), ("count", 0), ("errors", 3), ("total", 0),
                               ("p50", 8), ("p95", 0), ("max", 7), ("rows", 2)))  # fmt: skip
        for q in records.queries[:TOP]:
            table.add_row(
                query_label(q["summary"], q["shape_hash"]), str(q["count"]), str(q["errors"]),
                seconds(q["duration_total_seconds"]), seconds(q["duration_p50_seconds"]),
                seconds(q["duration_p95_seconds"]), seconds(q["duration_max_seconds"]),
                str(q["rows"]),
            )  # fmt: skip
        out.table(table)
    if records.failures:
        table = Table("failures", (
            Column("where", "left", fold=True, min_width=8),
            Column("what", "left", fold=True, min_width=12),
            Column("error type", "left", fold=True, min_width=10),
            Column("count"), Column("first", drop=2), Column("last", drop=1),
        ))  # fmt: skip
        for f in records.failures[:TOP]:
            table.add_row(f["source"], f["name"], f["error_type"], str(f["count"]),
                          _time(f["first_unix"]), _time(f["last_unix"]))  # fmt: skip
        out.table(table)
    if records.backfills:
        table = Table("backfills", (
            Column("backfill", "left", fold=True, min_width=12), Column("status", "left"),
            *(Column(header) for header in ("done", "skipped", "failed", "total", "rate")),
        ))  # fmt: skip
        for b in records.backfills:
            rate = "-" if b["rate"] is None else f"{b['rate']:.2f}/s"
            table.add_row(b["backfill"], b["status"], str(b["done"]), str(b["skipped"]),
                          str(b["failed"]), "-" if b["total"] is None else str(b["total"]),
                          rate)  # fmt: skip
        out.table(table)


def _change_percent(a: float | None, b: float | None) -> float | None:
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
            entry[f"{figure}_change_percent"] = _change_percent(va, vb)
        out.append(entry)

    def weight(entry: dict[str, Any]) -> float:
        sides = (entry["a"] or {}, entry["b"] or {})
        return max(float(side.get("duration_total_seconds") or 0.0) for side in sides)

    return sorted(out, key=lambda entry: -weight(entry))


def print_compared(out: Output, rows: list[dict[str, Any]], kind: str) -> None:
    """Matched operations or queries: count, total and p95 in A and B, with the change."""
    if not rows:
        return
    title = "operations" if kind == "operations" else "DuckDB queries"
    table = Table(f"{title}, matched by name (top {min(len(rows), TOP)} by total time)",
                  _columns(("name", 14), ("count", 6), ("total A", 0), ("total B", 0), ("%", 0),
                           ("p95 A", 4), ("p95 B", 4), ("% p95", 4)))  # fmt: skip
    for row in rows[:TOP]:
        a, b = row["a"] or {}, row["b"] or {}
        name = row["key"][1] if kind == "operations" else query_label(row["key"][1], row["key"][2])
        counts = [str(side["count"]) if side else "-" for side in (a, b)]
        cells: list[Cell] = [name, counts[0] if counts[0] == counts[1] else " → ".join(counts)]
        for figure in ("duration_total_seconds", "duration_p95_seconds"):
            cells += [seconds(a[figure]) if a else "-", seconds(b[figure]) if b else "-"]
            change = row[f"{figure}_change_percent"]
            color = "" if not change else ("red" if change > 0 else "green")
            cells.append(Styled("" if change is None else f"{change:+.1f} %", color))
        table.add_row(*cells)
    out.table(table)
