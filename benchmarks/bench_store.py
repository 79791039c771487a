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

The shared store (``run_shared``): 10,000 runs from 20 hosts, written by
tests/_support/shared_store.py as they would be on NFS (run.json, samples,
records, each run's index entry, one segment per host and 100 entries not
compacted yet). Timed, through the index and by opening every run.json in the
same run: the listing (``jobmeter runs``), ``report latest``, ``compare`` of
two runs and ``advise`` over every run of one name (about 2,000); the same four
commands as subprocesses; the cost a finished run pays to write its entry
(``index_run``: warm; in a fresh process, for a run with records and one
without, where nothing loads DuckDB), and a listing's compaction of the 100
entries no segment holds (their samples read). Targets: each command through the
index under 1 s, and the entry under 1 s.
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
    shared: SharedResults | None = None

    @property
    def passed(self) -> bool:
        shared = self.shared is None or all(ok for _, ok in self.shared.checks())
        return shared and all(variant.passed for variant in self.variants)

    def to_json(self) -> dict[str, Any]:
        variants = [{**asdict(v), "passed": v.passed} for v in self.variants]
        return {**asdict(self), "variants": variants, "passed": self.passed}

    def checks(self) -> list[Check]:
        return [
            (f"store report of {self.samples:,} samples, {self.operations:,} operations "
             f"({variant.name}) <= {variant.limit_s:.1f} s", variant.passed)
            for variant in self.variants
        ] + ([] if self.shared is None else self.shared.checks())  # fmt: skip


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
    shared = run_shared(repeats, progress)
    return StoreResults(samples, operations, size_mb, variants, python_s, shared=shared)


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
    if results.shared is not None:
        lines += ["", format_shared(results.shared)]
    return "\n".join(lines)


# --- the shared store: 10,000 runs from 20 hosts ----------------------------------------

SHARED_RUNS = 10_000
SHARED_HOSTS = 20
SHARED_NAME = "train"  # advise's runs: about a fifth of the store
_TESTS = Path(__file__).resolve().parents[1] / "tests"


def _median_s(call: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = perf_counter()
        call()
        times.append(perf_counter() - started)
    return statistics.median(times)


def _commands(root: Path, index: bool) -> dict[str, Any]:
    """The library calls behind runs, report latest, compare and advise."""

    def listing() -> None:
        assert len(store.list_runs(root, index=index, compact=False)) == SHARED_RUNS

    def report_latest() -> None:
        runs = store.list_runs(root, index=index, compact=False)
        store.report(store.resolve("latest", root, runs))

    def compare() -> None:
        runs = store.list_runs(root, index=index, compact=False)
        store.report(store.resolve(runs[0].id, root, runs))
        store.report(store.resolve(runs[-1].id, root, runs))

    def advise() -> None:
        runs = store.list_runs(root, index=index, compact=False)
        named = [r for r in runs if r.name == SHARED_NAME and r.state != "running"]
        store.advise(named)

    return {"runs": listing, "report latest": report_latest, "compare": compare,
            "advise": advise}  # fmt: skip


@dataclass
class SharedResults:
    """Seconds per command through the index and through every run.json, and the writes."""

    runs: int
    hosts: int
    generate_s: float
    index_s: dict[str, float]
    run_json_s: dict[str, float]
    cli_s: dict[str, float]
    entry_warm_s: float
    entry_cold_s: float
    entry_plain_s: float
    compaction_s: float
    limit_s: float = LIMIT_S

    def checks(self) -> list[Check]:
        found = [(f"shared store: {name} of {self.runs:,} runs through the index "
                  f"<= {self.limit_s:.1f} s", seconds <= self.limit_s)
                 for name, seconds in self.index_s.items()]  # fmt: skip
        found.append((f"shared store: a finished run writes its entry <= {self.limit_s:.1f} s",
                      self.entry_cold_s <= self.limit_s))  # fmt: skip
        return found


def run_shared(repeats: int = REPEATS, progress: Progress | None = None) -> SharedResults:
    """Generate the shared store, then time its commands, the entry and the compaction."""
    sys.path.insert(0, str(_TESTS))
    from _support.shared_store import generate

    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-shared-") as temporary:
        root = Path(temporary) / "runs"
        if progress:
            progress(f"shared store: writing {SHARED_RUNS:,} runs from {SHARED_HOSTS} hosts")
        started = perf_counter()
        generated = generate(root, SHARED_RUNS, SHARED_HOSTS)
        generate_s = perf_counter() - started
        if progress:
            progress("shared store: a listing compacts the 100 entries no segment holds")
        started = perf_counter()
        store.compact_index(root)
        compaction_s = perf_counter() - started
        index_s, run_json_s = {}, {}
        for name, call in _commands(root, True).items():
            index_s[name] = _median_s(call, repeats)
        for name, call in _commands(root, False).items():
            if progress:
                progress(f"shared store: {name} by opening every run.json")
            run_json_s[name] = _median_s(call, 1 if name == "advise" else repeats)
        env = {key: value for key, value in os.environ.items() if key != "JOBMETER_RUN"}
        env.update(JOBMETER_RUN_DIR=str(root), OTEL_METRICS_EXPORTER="none")
        first, last = generated[0].id, generated[-1].id
        cli_s = {}
        for name, args in (("runs", ["runs"]), ("report latest", ["report", "--latest"]),
                           ("compare", ["compare", first, last]),
                           ("advise", ["advise", "--name", SHARED_NAME])):  # fmt: skip
            started = perf_counter()
            subprocess.run([sys.executable, "-m", "jobmeter", *args], env=env, check=True,
                           capture_output=True)  # fmt: skip
            cli_s[name] = perf_counter() - started
        directories = [root / g.id for g in generated[:20]]
        entry_warm_s = _median_s(lambda: store.index_run(directories.pop()), 20)
        cold = ("import sys, time; t = time.perf_counter(); from jobmeter import store; "
                "store.index_run(sys.argv[1]); print(time.perf_counter() - t)")  # fmt: skip
        entry_cold_s, entry_plain_s = 0.0, 0.0
        for run_dir, plain in ((root / generated[-1].id, False), (root / generated[-2].id, True)):
            if plain:  # a run that recorded no operations: nothing loads DuckDB
                for path in run_dir.glob("*.4242.jsonl"):
                    path.unlink()
            done = subprocess.run([sys.executable, "-c", cold, str(run_dir)], env=env,
                                  check=True, capture_output=True, text=True)  # fmt: skip
            if plain:
                entry_plain_s = float(done.stdout.strip())
            else:
                entry_cold_s = float(done.stdout.strip())
    return SharedResults(SHARED_RUNS, SHARED_HOSTS, generate_s, index_s, run_json_s, cli_s,
                         entry_warm_s, entry_cold_s, entry_plain_s, compaction_s)  # fmt: skip


def format_shared(results: SharedResults) -> str:
    lines = [
        f"Shared store: {results.runs:,} runs from {results.hosts} hosts (written in "
        f"{results.generate_s:.1f} s), median of {REPEATS} (advise by run.json: once)",
        f"  {'':24} {'index':>8} {'run.json':>9} {'ratio':>7} {'CLI (subprocess)':>17}",
    ]
    for name, seconds in results.index_s.items():
        slow = results.run_json_s[name]
        lines.append(
            f"  {name:24} {seconds:7.3f}s {slow:8.3f}s {slow / seconds:6.1f}x "
            f"{results.cli_s[name]:16.3f}s   [{pass_miss(seconds <= results.limit_s)} "
            f"<= {results.limit_s:.1f} s]"
        )
    lines += [
        f"  a finished run's entry (index_run): {results.entry_warm_s * 1000:.0f} ms warm, "
        f"{results.entry_cold_s * 1000:.0f} ms in a new process (its records read by DuckDB), "
        f"{results.entry_plain_s * 1000:.0f} ms without records (no DuckDB)   "
        f"[{pass_miss(results.entry_cold_s <= results.limit_s)} <= {results.limit_s:.1f} s]",
        f"  a listing's compaction of 100 entries into its host's segment: "
        f"{results.compaction_s:.3f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    progress = lambda m: print(f"  ... {m}", file=sys.stderr)  # noqa: E731
    if "--shared" in sys.argv:
        print(format_shared(run_shared(progress=progress)))
    else:
        print(format_report(run(progress=progress)))
