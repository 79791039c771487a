"""The columns of everything a run directory holds in rows: its samples and its records.

``usage.jsonl`` has one line per sample; each kind of record (``operations``,
``queries``, ``failures``, ``spans``, ``progress``) one line per key and flush
interval. The writers (``directory``, ``recorder``) and the readers
(``usage``, ``records``) take the names from here, and DuckDB reads the files
with these types. docs/run.md and docs/run-store.md describe them.
"""

from __future__ import annotations

from typing import Final

STATS: Final = ("sum", "min", "max", "p50", "p95")


def stats_columns(prefix: str) -> dict[str, str]:
    """The columns of one figure's statistics: ``<prefix>_sum`` ... ``<prefix>_sketch``."""
    columns = {f"{prefix}_{name}": "DOUBLE" for name in STATS}
    columns[f"{prefix}_sketch"] = "VARCHAR"
    return columns


#: The columns of each kind of record, in order (docs/run-store.md).
RECORD_COLUMNS: Final[dict[str, dict[str, str]]] = {
    "operations": {
        "t": "DOUBLE", "pid": "BIGINT", "collector": "VARCHAR", "operation": "VARCHAR",
        "attributes": "VARCHAR", "error_type": "VARCHAR", "count": "BIGINT",
        "resources_count": "BIGINT", **stats_columns("duration"), **stats_columns("cpu"),
        **stats_columns("memory"), **stats_columns("peak"), "energy_joules": "DOUBLE",
        "io_read_bytes": "BIGINT", "io_write_bytes": "BIGINT",
    },
    "queries": {
        "t": "DOUBLE", "pid": "BIGINT", "namespace": "VARCHAR", "operation": "VARCHAR",
        "summary": "VARCHAR", "shape": "VARCHAR", "shape_hash": "VARCHAR",
        "error_type": "VARCHAR", "count": "BIGINT", "rows": "BIGINT", "rows_max": "BIGINT",
        **stats_columns("duration"),
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
RECORD_KEYS: Final = {
    "operations": ("collector", "operation", "attributes", "error_type"),
    "queries": ("namespace", "operation", "summary", "shape_hash", "error_type"),
}
#: The kinds of record, in the order they are written.
KINDS: Final = tuple(RECORD_COLUMNS)

#: One process of a sample's ``top_processes`` (``args`` only with ``--record-args``).
PROCESS_TYPE: Final = (
    "STRUCT(pid BIGINT, name VARCHAR, rss BIGINT, pss BIGINT, hwm BIGINT, cpu_percent DOUBLE, "
    "cpu_seconds DOUBLE, args VARCHAR[])"
)
#: The processes of a sample beyond its ``top_processes``, summed.
OTHER_PROCESSES_TYPE: Final = (
    "STRUCT(count BIGINT, rss BIGINT, pss BIGINT, cpu_percent DOUBLE, cpu_seconds DOUBLE)"
)
#: A process that the wrapper reaped since the sample before.
ENDED_PROCESS_TYPE: Final = "STRUCT(pid BIGINT, name VARCHAR, cpu_seconds DOUBLE)"

# The columns of usage.jsonl (docs/run.md); unknown keys are ignored.
USAGE_COLUMNS: Final[dict[str, str]] = {
    "t": "DOUBLE",
    "processes": "BIGINT",
    "rss": "BIGINT",
    "pss": "BIGINT",
    "hwm": "BIGINT",
    "cpu_user": "DOUBLE",
    "cpu_system": "DOUBLE",
    "cpu_user_total": "DOUBLE",
    "cpu_system_total": "DOUBLE",
    "cpu_utilization": "DOUBLE",
    "read_bytes": "BIGINT",
    "write_bytes": "BIGINT",
    "threads": "BIGINT",
    "open_files": "BIGINT",
    "gpu_memory": "BIGINT",
    "energy_cpu": "DOUBLE",
    "energy_dram": "DOUBLE",
    "energy_gpu": "DOUBLE",
    "top_processes": f"{PROCESS_TYPE}[]",
    "other_processes": OTHER_PROCESSES_TYPE,
    "ended_processes": f"{ENDED_PROCESS_TYPE}[]",
}
#: The columns the figures of a run are read from: usage.jsonl less its per-process lists.
SAMPLE_COLUMNS: Final = {
    name: kind for name, kind in USAGE_COLUMNS.items() if not name.endswith("_processes")
}


def columns_sql(columns: dict[str, str]) -> str:
    """The ``columns=`` argument of DuckDB's read_ndjson for ``columns``."""
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"
