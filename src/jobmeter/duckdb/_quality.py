"""What is read from one DuckDB table: an estimate of its bytes, and a data-quality profile.

Size: DuckDB 2.0 has no byte count per table, and ``pragma_storage_info``
has no segment size. It has the block of every checkpointed segment, so a
table's bytes are its distinct blocks (``block_id``, ``additional_block_ids``)
times the database's block size: what the table takes in the file, to the
block (a small table takes at least one 256 KiB block). Segments not yet
checkpointed, and every in-memory table, have no block: they count rows times
the width of their type, strings by their total length from the segment
statistics (within 15% of what ``duckdb_memory()`` accounts to in-memory tables).

Profile (opt-in per table: the ``values`` metric exports data values): one
aggregate query with every column's figures, then one ``GROUP BY GROUPING
SETS`` query over the columns that have few distinct values; two scans at
most. SQL is built from identifiers only, each double-quoted with embedded
quotes doubled; no value is ever formatted into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

NULL_RATIO: Final = "jobmeter.duckdb.column.null.ratio"
DISTINCT: Final = "jobmeter.duckdb.column.distinct"
MIN: Final = "jobmeter.duckdb.column.min"
MAX: Final = "jobmeter.duckdb.column.max"
VALUES: Final = "jobmeter.duckdb.column.values"
COLUMN: Final = "jobmeter.duckdb.column"
COLUMN_TYPE: Final = "jobmeter.duckdb.column.type"
VALUE: Final = "jobmeter.duckdb.value"
VALUE_MAX_CHARS: Final = 64

_NUMERIC: Final = frozenset({
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE",
})  # fmt: skip
# Points in time, reported as Unix epoch seconds (what Grafana shows as a time).
_TEMPORAL: Final = frozenset({
    "DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE",
})  # fmt: skip

STORAGE_SQL: Final = """WITH s AS MATERIALIZED (SELECT * FROM pragma_storage_info(?))
SELECT segment_type, sum(count)::BIGINT, sum(TRY_CAST(stats.total_string_length AS BIGINT))::BIGINT,
    NULL FROM s WHERE NOT persistent GROUP BY segment_type
UNION ALL SELECT NULL, NULL, NULL, count(DISTINCT b) FROM (
    SELECT unnest(list_prepend(block_id, additional_block_ids)) AS b FROM s WHERE persistent
) WHERE b >= 0"""
# Bytes per row of a segment without a block, by its type (8 when not listed).
_WIDTHS: Final = {
    "BOOLEAN": 1, "TINYINT": 1, "UTINYINT": 1, "SMALLINT": 2, "USMALLINT": 2, "INTEGER": 4,
    "UINTEGER": 4, "FLOAT": 4, "DATE": 4, "HUGEINT": 16, "UHUGEINT": 16, "UUID": 16, "INTERVAL": 16,
}  # fmt: skip

# (metric name, extra attributes, value)
Point = tuple[str, dict[str, AttributeValue], float]
# Runs one statement with its parameters on the refresh's cursor; returns all rows.
Run = Callable[[str, Sequence[object]], list[tuple[Any, ...]]]


def quote(identifier: str) -> str:
    """``identifier`` double-quoted, its own double quotes doubled (``a"b`` -> ``"a""b"``)."""
    return '"' + identifier.replace('"', '""') + '"'


def quote_all(*parts: str) -> str:
    """A qualified name of quoted parts: ``"db"."schema"."table"``."""
    return ".".join(quote(part) for part in parts)


def size(run: Run, table: str, block_size: int) -> int:
    """Estimated bytes of ``table`` (quoted and qualified): blocks, and rows by type width."""
    found = 0.0
    for segment_type, rows, strings, blocks in run(STORAGE_SQL, [table]):
        if blocks is not None:
            found += blocks * block_size
        elif strings is not None:  # string dictionary: an offset per row and the characters
            found += 4 * rows + strings
        elif segment_type == "VALIDITY":
            found += rows / 8
        elif segment_type.startswith("DECIMAL("):
            width = int(segment_type[8:].split(",")[0])
            found += rows * (2 if width <= 4 else 4 if width <= 9 else 8 if width <= 18 else 16)
        else:
            found += rows * _WIDTHS.get(segment_type, 8)
    return round(found)


def _min_max(column: str, type_name: str) -> list[str]:
    if type_name in _NUMERIC or type_name.startswith("DECIMAL"):
        return [f"min({column})::DOUBLE", f"max({column})::DOUBLE"]
    if type_name in _TEMPORAL:
        return [f"epoch(min({column}))", f"epoch(max({column}))"]
    return []


def profile(
    run: Run, table: str, columns: Sequence[tuple[str, str]], max_values: int
) -> list[Point]:
    """The profile points of ``table`` (already quoted) from its ``(name, type)`` columns."""
    if not columns:
        return []
    expressions = ["count(*)"]
    for name, type_name in columns:
        quoted = quote(name)
        expressions += [f"count({quoted})", f"approx_count_distinct({quoted})"]
        expressions += _min_max(quoted, type_name)
    (row,) = run(f"SELECT {', '.join(expressions)} FROM {table}", ())
    total, found = row[0], list(row[1:])
    points: list[Point] = []
    few: list[tuple[str, dict[str, AttributeValue]]] = []
    for name, type_name in columns:
        labels: dict[str, AttributeValue] = {COLUMN: name, COLUMN_TYPE: type_name}
        non_null, distinct = found.pop(0), found.pop(0)
        if total:  # no ratio for an empty table
            points.append((NULL_RATIO, labels, 1 - non_null / total))
        points.append((DISTINCT, labels, distinct))
        if _min_max("", type_name):
            low, high = found.pop(0), found.pop(0)
            points += [(MIN, labels, low)] if low is not None else []
            points += [(MAX, labels, high)] if high is not None else []
        if distinct <= max_values:
            few.append((name, labels))
    return points + _value_counts(run, table, few, max_values)


def _value_counts(
    run: Run, table: str, columns: Sequence[tuple[str, dict[str, AttributeValue]]], max_values: int
) -> list[Point]:
    """Rows per value of the low-cardinality ``columns``: one scan for all of them."""
    if not columns:
        return []
    quoted = [quote(name) for name, _ in columns]
    flags = ", ".join(f"GROUPING({q})" for q in quoted)
    texts = ", ".join(f"{q}::VARCHAR" for q in quoted)
    sets = ", ".join(f"({q})" for q in quoted)
    sql = f"SELECT {flags}, {texts}, count(*) FROM {table} GROUP BY GROUPING SETS ({sets})"
    rows = run(sql, ())
    counts: list[dict[str, int]] = [{} for _ in columns]
    n = len(columns)
    for row in rows:
        index = row[:n].index(0)  # the column this grouping set grouped by
        text = row[n + index]
        key = "null" if text is None else text[:VALUE_MAX_CHARS]
        counts[index][key] = counts[index].get(key, 0) + row[-1]  # truncation may merge values
    points: list[Point] = []
    for (_, labels), values in zip(columns, counts, strict=True):
        # approx_count_distinct may have said too few: never export a long tail.
        if sum(key != "null" for key in values) <= max_values:
            points += [(VALUES, {**labels, VALUE: key}, count) for key, count in values.items()]
    return points
