"""A run's records (operations, queries, failures, spans, progress): read, merged, compacted.

While a run goes, each process appends ``<kind>.<pid>.jsonl`` (one line per key
and interval, jobmeter._rundata.recorder). At the clean end of the run they are
merged and compacted to ``<kind>.parquet``; the JSONL files go. Readers take
the Parquet file and any JSONL files beside it, so a run read while it is
written, after a crash, or with a straggler's late lines counts everything
once. Damaged lines are skipped and counted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jobmeter._rundata.sketch import merged

_STATS: Final = ("sum", "min", "max", "p50", "p95")
_FILE_MODE: Final = 0o600  # the run store is the user's only (jobmeter._rundata.layout)


def _stats_columns(prefix: str) -> dict[str, str]:
    columns = {f"{prefix}_{name}": "DOUBLE" for name in _STATS}
    columns[f"{prefix}_sketch"] = "VARCHAR"
    return columns


#: The columns of each kind of record, in order (docs/run-store.md).
COLUMNS: Final[dict[str, dict[str, str]]] = {
    "operations": {
        "t": "DOUBLE", "pid": "BIGINT", "collector": "VARCHAR", "operation": "VARCHAR",
        "attributes": "VARCHAR", "error_type": "VARCHAR", "count": "BIGINT",
        "resources_count": "BIGINT", **_stats_columns("duration"), **_stats_columns("cpu"),
        **_stats_columns("memory"),
    },
    "queries": {
        "t": "DOUBLE", "pid": "BIGINT", "namespace": "VARCHAR", "operation": "VARCHAR",
        "summary": "VARCHAR", "error_type": "VARCHAR", "count": "BIGINT", "rows": "BIGINT",
        "rows_max": "BIGINT", **_stats_columns("duration"),
    },
    "failures": {
        "t": "DOUBLE", "pid": "BIGINT", "source": "VARCHAR", "name": "VARCHAR",
        "error_type": "VARCHAR",
    },
    "spans": {
        "t": "DOUBLE", "pid": "BIGINT", "collector": "VARCHAR", "name": "VARCHAR",
        "start": "DOUBLE", "end": "DOUBLE", "error_type": "VARCHAR",
    },
    "progress": {
        "t": "DOUBLE", "pid": "BIGINT", "backfill": "VARCHAR", "status": "VARCHAR",
        "done": "BIGINT", "skipped": "BIGINT", "failed": "BIGINT", "total": "BIGINT",
        "rate": "DOUBLE", "eta_seconds": "DOUBLE",
    },
}  # fmt: skip
# What identifies one aggregate; the rest of its columns merge.
_KEYS: Final = {
    "operations": ("collector", "operation", "attributes", "error_type"),
    "queries": ("namespace", "operation", "summary", "error_type"),
}


@dataclass
class Records:
    """The rows of one kind, as dicts, and the damaged lines skipped."""

    rows: list[dict[str, Any]]
    skipped: int = 0


def _jsonl_files(directory: Path, kind: str) -> list[str]:
    return sorted(str(path) for path in directory.glob(f"{kind}.*.jsonl") if path.is_file())


def read(directory: Path, kind: str) -> Records:
    """Every row of ``kind`` in a run directory: its Parquet file plus any JSONL files."""
    columns = COLUMNS[kind]
    names = ", ".join(f'"{name}"' for name in columns)
    rows: list[tuple[Any, ...]] = []
    skipped = 0
    parquet = directory / f"{kind}.parquet"
    files = _jsonl_files(directory, kind)
    if not files and not parquet.is_file():
        return Records([])
    import duckdb  # here: a run without records (and jobmeter run's wrapper) never loads it

    with duckdb.connect() as connection:
        if parquet.is_file():
            try:
                rows += connection.execute(
                    f"SELECT {names} FROM read_parquet($path)", {"path": str(parquet)}
                ).fetchall()
            except duckdb.Error:
                skipped += 1  # a damaged Parquet file counts as one skipped part
        if files:
            spec = "{" + ", ".join(f"'{n}': '{t}'" for n, t in columns.items()) + "}"
            found = connection.execute(
                f"SELECT {names} FROM read_ndjson($files, columns={spec}, ignore_errors=true, "
                "format='newline_delimited')",
                {"files": files},
            ).fetchall()
            good = [row for row in found if row[0] is not None]
            skipped += len(found) - len(good)
            rows += good
    keys = list(columns)
    return Records([dict(zip(keys, row, strict=True)) for row in rows], skipped)


def merged_stats(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """``sum``, ``min``, ``max``, ``p50``, ``p95`` and ``sketch`` of one figure over rows
    (intervals, processes), from their ``<prefix>_*`` columns; all None without any."""
    present = [row for row in rows if row.get(f"{prefix}_sum") is not None]
    if not present:
        return dict.fromkeys((*_STATS, "sketch"))
    low = min(row[f"{prefix}_min"] for row in present)
    high = max(row[f"{prefix}_max"] for row in present)
    sketch = merged(row[f"{prefix}_sketch"] for row in present)
    empty = sketch.count == 0
    return {
        "sum": sum(row[f"{prefix}_sum"] for row in present),
        "min": low,
        "max": high,
        "p50": None if empty else sketch.quantile(0.5, low, high),
        "p95": None if empty else sketch.quantile(0.95, low, high),
        "sketch": sketch.to_json(),
    }


def _merge_stats(rows: list[dict[str, Any]], prefix: str, out: dict[str, Any]) -> None:
    out.update({f"{prefix}_{name}": v for name, v in merged_stats(rows, prefix).items()})


def merge(kind: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per key of ``operations`` or ``queries`` (all intervals and processes)."""
    keys = _KEYS[kind]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for each in rows:
        groups.setdefault(tuple(each[k] for k in keys), []).append(each)
    out = []
    for key, group in groups.items():
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["t"] = max(r["t"] for r in group)
        row["pid"] = group[0]["pid"] if len({r["pid"] for r in group}) == 1 else None
        row["count"] = sum(r["count"] or 0 for r in group)
        _merge_stats(group, "duration", row)
        if kind == "operations":
            row["resources_count"] = sum(r["resources_count"] or 0 for r in group)
            _merge_stats(group, "cpu", row)
            _merge_stats(group, "memory", row)
        else:
            row["rows"] = sum(r["rows"] or 0 for r in group)
            maxima = [r["rows_max"] for r in group if r["rows_max"] is not None]
            row["rows_max"] = max(maxima) if maxima else None
        out.append({name: row.get(name) for name in COLUMNS[kind]})
    return out


def compact(directory: Path, target: Path | None = None) -> dict[str, int]:
    """Merge each kind's records into ``<kind>.parquet`` and remove its JSONL files.

    With ``target``, write the merged files there instead and leave the run
    directory as it is (``jobmeter export``). Returns the rows written per
    kind. Damaged lines are left out (they were unreadable anyway); a kind with
    no records gets no file.
    """
    written: dict[str, int] = {}
    for kind, columns in COLUMNS.items():
        files = _jsonl_files(directory, kind)
        if not files and (target is None or not (directory / f"{kind}.parquet").is_file()):
            continue
        import duckdb

        records = read(directory, kind)
        rows = merge(kind, records.rows) if kind in _KEYS else records.rows
        rows.sort(key=lambda row: row["t"] or 0.0)
        into = directory if target is None else target
        staging = into / f".{kind}.compact.jsonl"
        temporary = into / f".{kind}.parquet.tmp"
        try:
            _write_private(staging, "".join(json.dumps(row) + "\n" for row in rows))
            spec = "{" + ", ".join(f"'{n}': '{t}'" for n, t in columns.items()) + "}"
            names = ", ".join(f'"{name}"' for name in columns)
            with duckdb.connect() as connection:
                connection.execute(
                    f"COPY (SELECT {names} FROM read_ndjson('{_quoted(staging)}', "
                    f"columns={spec}, format='newline_delimited')) TO '{_quoted(temporary)}' "
                    "(FORMAT parquet)"
                )
            os.chmod(temporary, _FILE_MODE)  # DuckDB creates it with the umask's mode
            os.replace(temporary, into / f"{kind}.parquet")
        finally:  # on a full disk too: no half-written file is left to take space
            for leftover in (staging, temporary):
                leftover.unlink(missing_ok=True)
        if target is None:
            for name in files:
                Path(name).unlink(missing_ok=True)
        written[kind] = len(rows)
    return written


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file made 0600, as every file of the run store."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE), "w",
              encoding="utf-8") as handle:  # fmt: skip
        handle.write(text)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
