"""The store's index: its files, its two tables' columns, and the rows of one finished run.

```
<runs root>/<run dir>/index.json             one finished run's entry, written by that run
<runs root>/.index/<host>/                   one folder per host that compacted
  runs.<segment>.parquet                     one row per run
  operations.<segment>.parquet               the same runs' operations and query shapes
```

Every file is written by one process, under a name no other uses, and renamed
into place whole; nothing is rewritten. A compaction (by a host that lists
the store, or ``jobmeter gc``) writes a new segment into its own folder from
the entries no segment holds yet and its own older segments, then removes
those segments: the entries in the run directories stay. Two compactions at
once leave an entry twice, never a gap: readers keep one per run directory.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Final

from jobmeter._core.machine import host_name
from jobmeter._rundata.summary import FIGURES
from jobmeter.store._cost import held_of
from jobmeter.store._stored import StoredRun
from jobmeter.store._summary import RecordSummary

INDEX_DIR: Final = ".index"
#: The index's format; rows of a newer one are left to run.json.
FORMAT: Final = 1
#: The writer folder of hosts whose name is not stored (``JOBMETER_HOST_NAME=omit``).
ANONYMOUS: Final = "_anonymous"
#: A finished run's entry, in its own directory, until a segment holds it.
ENTRY_FILE: Final = "index.json"
RUNS_PREFIX: Final = "runs."
OPERATIONS_PREFIX: Final = "operations."
SEGMENT_SUFFIX: Final = ".parquet"


def _figure_type(name: str) -> str:
    if name == "peak_memory_source":
        return "VARCHAR"
    whole = name.endswith("_bytes") or name in ("peak_processes", "peak_threads", "samples")
    return "BIGINT" if whole else "DOUBLE"


#: The runs table: one row per finished run. ``record`` is its run.json and
#: ``figures`` its report figures, as JSON text (exact, what the store lists;
#: null in a run's own entry, which a compaction completes from the samples);
#: the typed columns are the same values for SQL.
RUN_COLUMNS: Final[dict[str, str]] = {
    "format": "INTEGER", "entry": "VARCHAR", "indexed_at": "DOUBLE", "writer": "VARCHAR",
    "run_dir": "VARCHAR", "id": "VARCHAR", "name": "VARCHAR", "kind": "VARCHAR",
    "status": "VARCHAR", "state": "VARCHAR", "exit_code": "BIGINT", "start": "DOUBLE",
    "end": "DOUBLE", "host_name": "VARCHAR", "jobmeter_version": "VARCHAR",
    "git_commit": "VARCHAR", "held_cpus": "DOUBLE", "held_memory_bytes": "BIGINT",
    "held_gpus": "BIGINT", **{name: _figure_type(name) for name in FIGURES},
    "source": "VARCHAR", "operations": "BIGINT", "queries": "BIGINT", "record": "VARCHAR",
    "figures": "VARCHAR",
}  # fmt: skip
#: The operations table: one row per operation and per query shape of a run, as
#: ``report`` summarizes its records (``kind`` is ``operation`` or ``query``).
OPERATION_COLUMNS: Final[dict[str, str]] = {
    "format": "INTEGER", "entry": "VARCHAR", "run_dir": "VARCHAR", "run_id": "VARCHAR",
    "run_name": "VARCHAR", "start": "DOUBLE", "position": "INTEGER", "kind": "VARCHAR",
    "label": "VARCHAR", "collector": "VARCHAR", "operation": "VARCHAR", "attributes": "VARCHAR",
    "namespace": "VARCHAR", "summary": "VARCHAR", "shape": "VARCHAR", "shape_hash": "VARCHAR",
    "count": "BIGINT", "errors": "BIGINT", "duration_total_seconds": "DOUBLE",
    "duration_mean_seconds": "DOUBLE", "duration_min_seconds": "DOUBLE",
    "duration_p50_seconds": "DOUBLE", "duration_p95_seconds": "DOUBLE",
    "duration_max_seconds": "DOUBLE", "cpu_total_seconds": "DOUBLE", "cpu_p50_seconds": "DOUBLE",
    "cpu_p95_seconds": "DOUBLE", "memory_p50_bytes": "BIGINT", "memory_p95_bytes": "BIGINT",
    "memory_max_bytes": "BIGINT", "peak_memory_p50_bytes": "BIGINT",
    "peak_memory_p95_bytes": "BIGINT", "peak_memory_max_bytes": "BIGINT",
    "energy_total_joules": "DOUBLE", "io_read_total_bytes": "BIGINT",
    "io_write_total_bytes": "BIGINT", "rows": "BIGINT", "rows_max": "BIGINT",
}  # fmt: skip


def writer_name() -> str:
    """This host's name in the index (its folder, an entry's ``writer``), as
    ``JOBMETER_HOST_NAME`` shows it.

    ``hash`` gives the same ``host-<hash>`` as run.json; ``omit`` the shared
    ``_anonymous`` folder (safe all the same: no file is written twice).
    """
    name = host_name()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name or "").lstrip(".")[:64]
    return safe or ANONYMOUS


def new_token() -> str:
    """A unique name part, sortable by time: ``20261123T204501Z-9f3a0c1d``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(4).hex()


def segment_files(folder: Path, segment: str) -> tuple[Path, Path]:
    """The runs file and the operations file of one compacted segment."""
    return (folder / f"{RUNS_PREFIX}{segment}{SEGMENT_SUFFIX}",
            folder / f"{OPERATIONS_PREFIX}{segment}{SEGMENT_SUFFIX}")  # fmt: skip


def typed(value: Any, kind: str) -> Any:
    """``value`` as a column of ``kind`` holds it; None where it is not one."""
    if value is None or isinstance(value, bool):
        return None
    if kind in ("BIGINT", "INTEGER"):
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and math.isfinite(value) else None
    if kind == "DOUBLE":
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def run_row(run: StoredRun, figures: dict[str, Any] | None, entry: str, writer: str,
            records: RecordSummary, source: str) -> dict[str, Any]:  # fmt: skip
    """The runs table's row of one finished run; ``figures`` None: not read yet."""
    record = run.record
    host = record.get("host")
    git = record.get("git")
    held = held_of(record)
    values: dict[str, Any] = {
        "format": FORMAT, "entry": entry, "indexed_at": time.time(), "writer": writer,
        "run_dir": run.directory.name, "id": run.id, "name": run.name, "kind": record.get("kind"),
        "status": record.get("status"), "state": run.state, "exit_code": record.get("exit_code"),
        "start": run.start, "end": run.end,
        "host_name": host.get("host.name") if isinstance(host, dict) else None,
        "jobmeter_version": record.get("jobmeter_version"),
        "git_commit": git.get("commit") if isinstance(git, dict) else None,
        "held_cpus": held.get("cpus"), "held_memory_bytes": held.get("memory_bytes"),
        "held_gpus": held.get("gpus"), **(figures or {}), "source": source,
        "operations": len(records.operations), "queries": len(records.queries),
        "record": _compact_json(record),
        "figures": None if figures is None else _compact_json(figures),
    }  # fmt: skip
    return {name: typed(values.get(name), kind) for name, kind in RUN_COLUMNS.items()}


def operation_rows(run: StoredRun, entry: str, records: RecordSummary) -> list[dict[str, Any]]:
    """The operations table's rows of one run: its operations, then its query shapes."""
    common = {"format": FORMAT, "entry": entry, "run_dir": run.directory.name, "run_id": run.id,
              "run_name": run.name, "start": run.start}  # fmt: skip
    found = [("operation", op, op.get("label")) for op in records.operations]
    found += [("query", query, query.get("summary")) for query in records.queries]
    rows = []
    for position, (kind, values, label) in enumerate(found):
        row = {**values, **common, "position": position, "kind": kind, "label": label}
        if kind == "operation":
            row["attributes"] = json.dumps(values.get("attributes") or {}, sort_keys=True)
        rows.append({name: typed(row.get(name), kind_) for name, kind_ in
                     OPERATION_COLUMNS.items()})  # fmt: skip
    return rows


def with_figures(row: dict[str, Any], figures: dict[str, Any], source: str) -> dict[str, Any]:
    """A runs row completed with the run's figures (a compaction's, for a run's own entry)."""
    values = {**row, **figures, "source": source, "figures": _compact_json(figures)}
    return {name: typed(values.get(name), kind) for name, kind in RUN_COLUMNS.items()}
