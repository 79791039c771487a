"""Time to report a run with 1,000,000 samples: jobmeter.store.report, and `jobmeter report`.

A run directory is synthesized in a temporary store: run.json as a finished run
writes it, and usage.jsonl with ``SAMPLES`` lines in the shape ``jobmeter run``
writes (about 300 bytes each, 300 MB). Timed: the library call behind
``jobmeter report`` (DuckDB ``read_ndjson`` aggregates), one ``jobmeter report
--json`` subprocess (interpreter start and imports included), and, as the
reference the choice of reader was made against, the same aggregates computed
with ``json.loads`` line by line. Target: the library call under 1 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks import pass_miss
from jobmeter import store

SAMPLES = 1_000_000
REPEATS = 3
LIMIT_S = 1.0

_LINE = (
    '{{"cpu_system": 0.5, "cpu_system_total": {cs:.2f}, "cpu_user": 1.5, '
    '"cpu_user_total": {cu:.2f}, "cpu_utilization": {u:.4f}, "gpu_memory": null, '
    '"hwm": {hwm}, "open_files": 12, "processes": 3, "pss": {pss}, "read_bytes": {rb}, '
    '"rss": {rss}, "t": {t:.6f}, "threads": 9, "write_bytes": {wb}}}\n'
)


def synthesize(root: Path, samples: int = SAMPLES) -> Path:
    """A finished run with ``samples`` lines of usage.jsonl under ``root``."""
    directory = root / "20261123T000000Z-bench0"
    directory.mkdir(parents=True)
    start = 1_795_000_000.0
    with open(directory / "usage.jsonl", "w", encoding="utf-8") as out:
        chunk = []
        for i in range(samples):
            chunk.append(_LINE.format(cs=i * 0.001, cu=i * 0.003, u=(i % 200) / 100, hwm=2**28 + i,
                                      pss=2**28 + (i % 5000) * 4096, rb=i * 4096, rss=2**28 + i,
                                      t=start + i * 0.1, wb=i * 1024))  # fmt: skip
            if len(chunk) == 10_000:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)
    summary: dict[str, Any] = dict.fromkeys(store.FIGURES, 0)
    summary.update(samples=samples, peak_memory_source="samples (PSS of the tree)")
    record = {"id": directory.name, "name": "bench", "status": "succeeded", "start": start,
              "end": start + samples * 0.1, "exit_code": 0, "interval_seconds": 0.1,
              "summary": summary}  # fmt: skip
    (directory / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return directory


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
class StoreResults:
    samples: int
    file_mb: float
    report_s: list[float]
    cli_s: list[float]
    python_json_s: float
    limit_s: float = LIMIT_S

    @property
    def passed(self) -> bool:
        return statistics.median(self.report_s) <= self.limit_s

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def checks(self) -> list[tuple[str, bool]]:
        return [(f"store report of {self.samples:,} samples <= {self.limit_s:.1f} s", self.passed)]


def run(
    *, samples: int = SAMPLES, repeats: int = REPEATS, progress: Callable[[str], None] | None = None
) -> StoreResults:
    """Synthesize the run, then time the library call, the CLI and the Python reference."""
    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-store-") as temporary:
        root = Path(temporary) / "runs"
        if progress:
            progress(f"store: writing {samples:,} samples")
        directory = synthesize(root, samples)
        usage = directory / "usage.jsonl"
        report_s, cli_s = [], []
        for _ in range(repeats):
            started = perf_counter()
            report = store.report(store.resolve("latest", root))
            report_s.append(perf_counter() - started)
            assert report.samples_read == samples, report.samples_read
        env = {**os.environ, "JOBMETER_RUN_DIR": str(root), "OTEL_METRICS_EXPORTER": "none"}
        for _ in range(repeats):
            started = perf_counter()
            subprocess.run([sys.executable, "-m", "jobmeter", "report", "--latest", "--json"],
                           env=env, check=True, capture_output=True)  # fmt: skip
            cli_s.append(perf_counter() - started)
        if progress:
            progress("store: json.loads reference")
        started = perf_counter()
        assert _python_reference(usage) == samples
        python_s = perf_counter() - started
        size_mb = usage.stat().st_size / 1e6
    return StoreResults(samples, size_mb, report_s, cli_s, python_s)


def format_report(results: StoreResults) -> str:
    report = statistics.median(results.report_s)
    cli = statistics.median(results.cli_s)
    return "\n".join([
        f"Store: report of a run with {results.samples:,} samples "
        f"({results.file_mb:.0f} MB usage.jsonl), median of {len(results.report_s)}",
        "",
        f"  store.report (DuckDB read_ndjson)   {report:7.3f} s   "
        f"[{pass_miss(results.passed)} <= {results.limit_s:.1f} s]",
        f"  jobmeter report --json (subprocess) {cli:7.3f} s",
        f"  json.loads line by line (reference) {results.python_json_s:7.3f} s   "
        f"({results.python_json_s / report:.1f}x the DuckDB reader)",
    ])  # fmt: skip


if __name__ == "__main__":
    print(format_report(run(progress=lambda m: print(f"  ... {m}", file=sys.stderr))))
