"""usage.jsonl: its columns (one line per sample of the process tree), and reading it with DuckDB.

DuckDB's ``read_ndjson`` with explicit columns and ``ignore_errors=true`` reads a
million samples in well under a second on two cores, where ``json.loads`` line by
line takes several seconds. A line that is not a JSON object with a ``t`` (a
truncated last line, garbage) comes back as a row of NULLs: those are counted as
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobmeter._rundata.schema import USAGE_COLUMNS, columns_sql


def usage_source(path: Path) -> str:
    """A FROM clause over one usage.jsonl (the path is a bound parameter ``$path``)."""
    options = "ignore_errors=true, format='newline_delimited'"
    return f"read_ndjson($path, columns={columns_sql(USAGE_COLUMNS)}, {options})"


@dataclass
class SampleFigures:
    """What the samples of one run say."""

    lines: int = 0
    samples: int = 0
    first_t: float | None = None
    last_t: float | None = None
    peak_pss: int | None = None
    peak_rss: int | None = None
    peak_hwm: int | None = None
    cpu_user_total: float | None = None
    cpu_system_total: float | None = None
    cpu_utilization_peak: float | None = None
    cpu_utilization_p95: float | None = None
    peak_gpu_memory: int | None = None
    peak_processes: int | None = None
    peak_threads: int | None = None
    peak_read_bytes: int | None = None
    peak_write_bytes: int | None = None
    energy_cpu: float | None = None  # the last sample's: energy since the start, in J
    energy_dram: float | None = None
    energy_gpu: float | None = None

    @property
    def skipped(self) -> int:
        """Lines that were not readable samples."""
        return self.lines - self.samples


_AGGREGATES = """
SELECT count(*), count(t), min(t), max(t), max(pss), max(rss), max(hwm),
       max(cpu_user_total), max(cpu_system_total), max(cpu_utilization),
       quantile_cont(cpu_utilization, 0.95), max(gpu_memory), max(processes),
       max(threads), max(read_bytes), max(write_bytes), max(energy_cpu), max(energy_dram),
       max(energy_gpu)
FROM {source}
"""


def read_figures(path: Path) -> SampleFigures:
    """Aggregate one usage.jsonl; a missing or unreadable file gives no samples."""
    if not path.is_file() or path.stat().st_size == 0:
        return SampleFigures()
    import duckdb  # here: jobmeter run's wrapper writes usage.jsonl without loading DuckDB

    with duckdb.connect() as connection:
        row = connection.execute(
            _AGGREGATES.format(source=usage_source(path)), {"path": str(path)}
        ).fetchone()
    assert row is not None
    return SampleFigures(*row)
