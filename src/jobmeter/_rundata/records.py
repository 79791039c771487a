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
from typing import Any

from jobmeter._rundata.aggregates import merged_stats
from jobmeter._rundata.layout import FILE_MODE, compacted_file, record_files, write_private
from jobmeter._rundata.schema import RECORD_COLUMNS, RECORD_KEYS, columns_sql


@dataclass
class Records:
    """The rows of one kind, as dicts, and the damaged lines skipped."""

    rows: list[dict[str, Any]]
    skipped: int = 0


class Reader:
    """Reads the records of many runs over one DuckDB connection.

    The connection opens at the first read that finds a file (a run without
    records, and jobmeter run's wrapper, never load DuckDB); opening one costs
    about 15 ms, more than reading a small run's records.
    """

    def __init__(self) -> None:
        self._connection: Any = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def read(self, directory: Path, kind: str) -> Records:
        """Every row of ``kind`` in a run directory: its Parquet file plus any JSONL files."""
        columns = RECORD_COLUMNS[kind]
        parquet = compacted_file(directory, kind)
        files = record_files(directory, kind)
        if not files and not parquet.is_file():
            return Records([])
        import duckdb

        if self._connection is None:
            self._connection = duckdb.connect()
        connection = self._connection
        rows: list[tuple[Any, ...]] = []
        skipped = 0
        if parquet.is_file():
            try:
                rows += _parquet_rows(connection, parquet, columns)
            except duckdb.Error:
                skipped += 1  # a damaged Parquet file counts as one skipped part
        if files:
            names = ", ".join(f'"{name}"' for name in columns)
            found = connection.execute(
                f"SELECT {names} FROM read_ndjson($files, columns={columns_sql(columns)}, "
                "ignore_errors=true, format='newline_delimited')",
                {"files": files},
            ).fetchall()
            good = [row for row in found if row[0] is not None]
            skipped += len(found) - len(good)
            rows += good
        keys = list(columns)
        return Records([dict(zip(keys, row, strict=True)) for row in rows], skipped)


def read(directory: Path, kind: str) -> Records:
    """Every row of ``kind`` in a run directory: its Parquet file plus any JSONL files."""
    with Reader() as reader:
        return reader.read(directory, kind)


def _parquet_rows(connection: Any, parquet: Path, columns: dict[str, str]) -> list[tuple[Any, ...]]:
    """The file's rows in ``columns``' order; columns it lacks (an older run's) are null."""
    relation = connection.read_parquet(str(parquet))
    present = set(relation.columns)
    names = ", ".join(f'"{name}"' if name in present else f'NULL::{kind} AS "{name}"'
                      for name, kind in columns.items())  # fmt: skip
    return list(relation.project(names).fetchall())


def _merge_stats(rows: list[dict[str, Any]], prefix: str, out: dict[str, Any]) -> None:
    out.update({f"{prefix}_{name}": v for name, v in merged_stats(rows, prefix).items()})


def merge(kind: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per key of ``operations`` or ``queries`` (all intervals and processes)."""
    keys = RECORD_KEYS[kind]
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
            _merge_stats(group, "peak", row)
            energies = [r["energy_joules"] for r in group if r.get("energy_joules") is not None]
            row["energy_joules"] = sum(energies) if energies else None
            for io in ("io_read_bytes", "io_write_bytes"):
                known = [r[io] for r in group if r.get(io) is not None]
                row[io] = sum(known) if known else None
        else:
            row["rows"] = sum(r["rows"] or 0 for r in group)
            maxima = [r["rows_max"] for r in group if r["rows_max"] is not None]
            row["rows_max"] = max(maxima) if maxima else None
            row["shape"] = next((r["shape"] for r in group if r["shape"] is not None), None)
        out.append({name: row.get(name) for name in RECORD_COLUMNS[kind]})
    return out


def compact(directory: Path, target: Path | None = None) -> dict[str, int]:
    """Merge each kind's records into ``<kind>.parquet`` and remove its JSONL files.

    With ``target``, write the merged files there instead and leave the run
    directory as it is (``jobmeter export``). Returns the rows written per
    kind. Damaged lines are left out (they were unreadable anyway); a kind with
    no records gets no file.
    """
    written: dict[str, int] = {}
    for kind, columns in RECORD_COLUMNS.items():
        files = record_files(directory, kind)
        if not files and (target is None or not compacted_file(directory, kind).is_file()):
            continue
        import duckdb

        records = read(directory, kind)
        rows = merge(kind, records.rows) if kind in RECORD_KEYS else records.rows
        rows.sort(key=lambda row: row["t"] or 0.0)
        into = directory if target is None else target
        staging = into / f".{kind}.compact.jsonl"
        temporary = into / f".{kind}.parquet.tmp"
        try:
            write_private(staging, "".join(json.dumps(row) + "\n" for row in rows))
            spec = columns_sql(columns)
            names = ", ".join(f'"{name}"' for name in columns)
            with duckdb.connect() as connection:
                connection.execute(
                    f"COPY (SELECT {names} FROM read_ndjson('{_quoted(staging)}', "
                    f"columns={spec}, format='newline_delimited')) TO '{_quoted(temporary)}' "
                    "(FORMAT parquet)"
                )
            os.chmod(temporary, FILE_MODE)  # DuckDB creates it with the umask's mode
            os.replace(temporary, compacted_file(into, kind))
        finally:  # on a full disk too: no half-written file is left to take space
            for leftover in (staging, temporary):
                leftover.unlink(missing_ok=True)
        if target is None:
            for name in files:
                Path(name).unlink(missing_ok=True)
        written[kind] = len(rows)
    return written


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
