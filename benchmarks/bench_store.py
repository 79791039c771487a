"""Time to report a run with 1,000,000 samples and 10,000 operations: store.report, the CLI.

A run directory is synthesized in a temporary store: run.json as a finished run
writes it, usage.jsonl with ``SAMPLES`` lines in the shape ``jobmeter run``
writes (about 300 bytes each, 300 MB), and ``OPERATIONS`` ``measure()`` blocks
recorded for real by a ``jobmeter._rundata.recorder.Recorder`` (50 operation names
x 2 attribute values). The run exists twice, with the same usage.jsonl
(hard-linked): ``compacted``, recorded at a 0.05 s interval and compacted to
operations.parquet as the clean end of a run leaves it, and ``jsonl``, recorded
at a 0.001 s interval and left as JSONL lines (a run read while it goes or
after a crash). Timed, for both: the library call behind ``jobmeter report``
(DuckDB ``read_ndjson`` aggregates of the samples, and the operations summary),
one ``jobmeter report --json`` subprocess (interpreter start and imports
included); and, as the reference the choice of reader was made against, the
sample aggregates computed with ``json.loads`` line by line. Targets: the
library call under 1 s for each variant.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import jobmeter
from benchmarks._common import Check, Progress, in_memory_provider, pass_miss
from jobmeter import store
from jobmeter._rundata import records
from jobmeter._rundata.recorder import Recorder

SAMPLES = 1_000_000
OPERATIONS = 10_000
OPERATION_NAMES = 50
ATTRIBUTE_VALUES = 2
# Recorder intervals: the compacted variant's, and the JSONL variant's (many lines).
INTERVAL_COMPACTED_S = 0.05
INTERVAL_JSONL_S = 0.001
REPEATS = 3
LIMIT_S = 1.0
VARIANTS = ("compacted", "jsonl")
RUN_ID = "20261123T000000Z-bench0"

_LINE = (
    '{{"cpu_system": 0.5, "cpu_system_total": {cs:.2f}, "cpu_user": 1.5, '
    '"cpu_user_total": {cu:.2f}, "cpu_utilization": {u:.4f}, "gpu_memory": null, '
    '"hwm": {hwm}, "open_files": 12, "processes": 3, "pss": {pss}, "read_bytes": {rb}, '
    '"rss": {rss}, "t": {t:.6f}, "threads": 9, "write_bytes": {wb}}}\n'
)


def _write_usage(path: Path, samples: int, start: float) -> None:
    with open(path, "w", encoding="utf-8") as out:
        chunk = []
        for i in range(samples):
            chunk.append(_LINE.format(cs=i * 0.001, cu=i * 0.003, u=(i % 200) / 100, hwm=2**28 + i,
                                      pss=2**28 + (i % 5000) * 4096, rb=i * 4096, rss=2**28 + i,
                                      t=start + i * 0.1, wb=i * 1024))  # fmt: skip
            if len(chunk) == 10_000:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)


def record_operations(directory: Path, operations: int, interval: float) -> None:
    """``operations`` real ``measure()`` blocks, recorded into ``directory`` by a Recorder."""
    provider, _ = in_memory_provider()
    collector = jobmeter.MetricsCollector("bench", meter_provider=provider)
    names = [f"step{i:02d}" for i in range(OPERATION_NAMES)]
    recorder = Recorder(directory, interval=interval).start()
    try:
        for i in range(operations):
            part = str((i // OPERATION_NAMES) % ATTRIBUTE_VALUES)
            with collector.measure(names[i % OPERATION_NAMES], {"part": part}):
                time.sleep(0)
    finally:
        recorder.stop()
        provider.shutdown()


def synthesize(
    root: Path,
    samples: int = SAMPLES,
    operations: int = OPERATIONS,
    *,
    compacted: bool = True,
    usage: Path | None = None,
) -> Path:
    """A finished run under ``root``: ``samples`` lines of usage.jsonl, ``operations`` blocks.

    ``compacted``: recorded at INTERVAL_COMPACTED_S, then compacted to Parquet;
    else recorded at INTERVAL_JSONL_S and left as JSONL. ``usage``: an existing
    usage.jsonl of ``samples`` lines to link (or copy) instead of writing one.
    """
    directory = root / RUN_ID
    directory.mkdir(parents=True)
    start = 1_795_000_000.0
    if usage is None:
        _write_usage(directory / "usage.jsonl", samples, start)
    else:
        try:
            os.link(usage, directory / "usage.jsonl")
        except OSError:
            shutil.copyfile(usage, directory / "usage.jsonl")
    if operations:
        record_operations(
            directory, operations, INTERVAL_COMPACTED_S if compacted else INTERVAL_JSONL_S
        )
        if compacted:
            records.compact(directory)
    summary: dict[str, Any] = dict.fromkeys(store.FIGURES, 0)
    summary.update(samples=samples, peak_memory_source="samples (PSS of the tree)")
    record = {"id": directory.name, "name": "bench", "status": "succeeded", "start": start,
              "end": start + samples * 0.1, "exit_code": 0, "interval_seconds": 0.1,
              "summary": summary}  # fmt: skip
    (directory / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return directory


def _operation_files(directory: Path) -> tuple[int, int]:
    """JSONL lines and Parquet rows of a run's operations."""
    lines = 0
    for path in directory.glob("operations.*.jsonl"):
        with open(path, "rb") as handle:
            lines += sum(1 for _ in handle)
    parquet = directory / "operations.parquet"
    rows = 0
    if parquet.is_file():
        import duckdb

        with duckdb.connect() as connection:
            found = connection.execute(
                "SELECT count(*) FROM read_parquet($path)", {"path": str(parquet)}
            ).fetchone()
            rows = int(found[0]) if found else 0
    return lines, rows


def _python_reference(path: Path) -> int:
    """The same aggregates, json.loads line by line (the reader not chosen)."""
    count, peak, cpu = 0, 0, 0.0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            count += 1
            peak = max(peak, sample["pss"], sample["hwm"])
            cpu = max(cpu, sample["cpu_utilization"])
    return count


@dataclass
class VariantResults:
    """One variant of the run: how its operations are stored, and its timings."""

    name: str
    interval_s: float
    record_s: float
    jsonl_lines: int
    parquet_rows: int
    operation_keys: int
    operation_calls: int
    report_s: list[float]
    cli_s: list[float]
    limit_s: float = LIMIT_S

    @property
    def passed(self) -> bool:
        return statistics.median(self.report_s) <= self.limit_s


@dataclass
class StoreResults:
    samples: int
    operations: int
    file_mb: float
    variants: list[VariantResults]
    python_json_s: float
    limit_s: float = LIMIT_S

    @property
    def passed(self) -> bool:
        return all(variant.passed for variant in self.variants)

    def to_json(self) -> dict[str, Any]:
        variants = [{**asdict(v), "passed": v.passed} for v in self.variants]
        return {**asdict(self), "variants": variants, "passed": self.passed}

    def checks(self) -> list[Check]:
        return [
            (f"store report of {self.samples:,} samples, {self.operations:,} operations "
             f"({variant.name}) <= {variant.limit_s:.1f} s", variant.passed)
            for variant in self.variants
        ]  # fmt: skip


def _variant(
    name: str, root: Path, samples: int, operations: int, repeats: int, record_s: float
) -> VariantResults:
    run = store.resolve("latest", root)
    jsonl_lines, parquet_rows = _operation_files(run.directory)
    report_s, cli_s = [], []
    keys = calls = 0
    for _ in range(repeats):
        started = perf_counter()
        report = store.report(store.resolve("latest", root))
        report_s.append(perf_counter() - started)
        assert report.samples_read == samples, report.samples_read
        keys = len(report.records.operations)
        calls = sum(operation["count"] for operation in report.records.operations)
        if calls != operations:
            raise RuntimeError(
                f"store {name}: {operations} blocks were recorded but the report's "
                f"operations count {calls}"
            )
    env = {key: value for key, value in os.environ.items() if key != "JOBMETER_RUN"}
    env.update(JOBMETER_RUN_DIR=str(root), OTEL_METRICS_EXPORTER="none")
    for _ in range(repeats):
        started = perf_counter()
        done = subprocess.run([sys.executable, "-m", "jobmeter", "report", "--latest", "--json"],
                              env=env, check=True, capture_output=True)  # fmt: skip
        cli_s.append(perf_counter() - started)
        listed = json.loads(done.stdout)["operations"]
        if sum(operation["count"] for operation in listed) != operations:
            raise RuntimeError(f"store {name}: jobmeter report --json lost operations")
    interval = INTERVAL_COMPACTED_S if name == "compacted" else INTERVAL_JSONL_S
    return VariantResults(
        name, interval, record_s, jsonl_lines, parquet_rows, keys, calls, report_s, cli_s
    )


def run(
    *,
    samples: int = SAMPLES,
    operations: int = OPERATIONS,
    repeats: int = REPEATS,
    progress: Progress | None = None,
) -> StoreResults:
    """Synthesize both variants of the run, then time the library call, the CLI, the reference."""
    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-store-") as temporary:
        usage: Path | None = None
        variants = []
        for name in VARIANTS:
            root = Path(temporary) / name / "runs"
            if progress:
                what = f"{samples:,} samples and " if usage is None else ""
                progress(f"store ({name}): writing {what}{operations:,} operations")
            started = perf_counter()
            directory = synthesize(
                root, samples, operations, compacted=name == "compacted", usage=usage
            )
            record_s = perf_counter() - started
            usage = directory / "usage.jsonl"
            if progress:
                progress(f"store ({name}): timing store.report and jobmeter report --json")
            variants.append(_variant(name, root, samples, operations, repeats, record_s))
        if progress:
            progress("store: json.loads reference")
        assert usage is not None
        started = perf_counter()
        assert _python_reference(usage) == samples
        python_s = perf_counter() - started
        size_mb = usage.stat().st_size / 1e6
    return StoreResults(samples, operations, size_mb, variants, python_s)


def format_report(results: StoreResults) -> str:
    lines = [
        f"Store: report of a run with {results.samples:,} samples "
        f"({results.file_mb:.0f} MB usage.jsonl) and {results.operations:,} measure() blocks, "
        f"median of {len(results.variants[0].report_s)}",
    ]
    first = None
    for v in results.variants:
        report = statistics.median(v.report_s)
        first = first or report
        stored = (f"operations.parquet, {v.parquet_rows} rows" if v.parquet_rows
                  else f"{v.jsonl_lines:,} JSONL lines")  # fmt: skip
        lines += [
            "",
            f"  {v.name}: recorded at {v.interval_s:g} s, {stored}; "
            f"{v.operation_keys} operations, {v.operation_calls:,} calls",
            f"    store.report (samples + operations) {report:7.3f} s   "
            f"[{pass_miss(v.passed)} <= {v.limit_s:.1f} s]",
            f"    jobmeter report --json (subprocess) {statistics.median(v.cli_s):7.3f} s",
        ]  # fmt: skip
    assert first is not None
    lines += [
        "",
        f"  json.loads line by line, samples only (reference) {results.python_json_s:7.3f} s   "
        f"({results.python_json_s / first:.1f}x the compacted store.report)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(run(progress=lambda m: print(f"  ... {m}", file=sys.stderr))))
