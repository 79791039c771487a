"""The data of a plot: a run directory read back, and the units it is shown in.

``load_run`` reads ``run.json``, ``usage.jsonl``, the spans the run recorded
and, when there is one, an ``operations.jsonl`` of spans a user wrote; an
unreadable line is skipped and counted, with one warning. No matplotlib here:
the figures can be checked without it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobmeter._rundata import records

_log = logging.getLogger("jobmeter")

UNIX_SECONDS = 1e9
#: Spans drawn at most: the longest ones.
MAX_SPANS = 200


@dataclass(frozen=True)
class Operation:
    """One finished operation, in seconds since the run started."""

    name: str
    start: float
    end: float


@dataclass
class RunData:
    """What a plot needs of one run directory."""

    directory: Path
    record: dict[str, Any]
    samples: list[dict[str, Any]]
    operations: list[Operation] = field(default_factory=list)
    skipped_lines: int = 0

    @property
    def start(self) -> float:
        """The run's start in Unix seconds (run.json, else the first sample)."""
        start = self.record.get("start")
        if isinstance(start, int | float):
            return float(start)
        first = number_of(self.samples[0].get("t")) if self.samples else None
        return first if first is not None and first > UNIX_SECONDS else 0.0

    def relative(self, value: float) -> float:
        """Seconds since the start, for a value in Unix seconds or already relative."""
        return value - self.start if value > UNIX_SECONDS else value


def number_of(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a JSON-lines file, and how many lines could not be read."""
    records: list[dict[str, Any]] = []
    skipped = 0
    with path.open("rb") as lines:
        for raw in lines:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:  # a truncated last line, or bytes that are not UTF-8
                skipped += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def load_run(run_dir: Path) -> RunData:
    """Read ``run.json``, ``usage.jsonl`` and the operation spans of a run directory.

    Spans are the ``MAX_SPANS`` longest operations the run recorded (``spans``
    records: ``measure()`` blocks of 0.1 s or more), plus any ``operations.jsonl``
    of ``{"name", "start", "end"}`` lines a user wrote.

    Lines that cannot be read (a truncated last line of a run whose wrapper was
    killed) are skipped, and one warning says how many.

    Raises:
        FileNotFoundError: ``run_dir`` has no run.json or no usage.jsonl.
        ValueError: run.json is not a JSON object, or the run has no samples.
    """
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{run_dir / 'run.json'} is not a JSON object")
    samples, skipped = _json_lines(run_dir / "usage.jsonl")
    samples = [s for s in samples if number_of(s.get("t")) is not None]
    if not samples:
        raise ValueError(f"run {record.get('id', run_dir.name)} has no samples to plot ({run_dir})")
    samples.sort(key=lambda s: float(s["t"]))
    run = RunData(run_dir, record, samples, skipped_lines=skipped)
    operations_file = run_dir / "operations.jsonl"
    if operations_file.is_file():
        operations, bad = _json_lines(operations_file)
        run.skipped_lines += bad
        for op in operations:
            start, end = number_of(op.get("start")), number_of(op.get("end"))
            if start is None or end is None:
                run.skipped_lines += 1
                continue
            start, end = run.relative(start), run.relative(end)
            run.operations.append(Operation(str(op.get("name", "")), start, max(start, end)))
    spans = records.read(run_dir, "spans")
    run.skipped_lines += spans.skipped
    longest = sorted(spans.rows, key=lambda r: (r["end"] or 0) - (r["start"] or 0))[-MAX_SPANS:]
    for span in sorted(longest, key=lambda r: r["start"] or 0):
        if span["start"] is None or span["end"] is None:
            continue
        start, end = run.relative(span["start"]), run.relative(span["end"])
        run.operations.append(Operation(str(span["name"] or ""), start, max(start, end)))
    if run.skipped_lines:
        _log.warning(
            "jobmeter plot: skipped %d unreadable line(s) in %s", run.skipped_lines, run_dir
        )
    return run


def duration_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.3g} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def series(samples: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [number_of(s.get(key)) or 0.0 for s in samples]


def rates(times: Sequence[float], counters: Sequence[float]) -> list[float]:
    """Bytes per second between samples; a counter that dropped (a process ended) is 0."""
    rates = [0.0]
    for i in range(1, len(times)):
        elapsed = times[i] - times[i - 1]
        grown = counters[i] - counters[i - 1]
        rates.append(grown / elapsed if elapsed > 0 and grown > 0 else 0.0)
    return rates


def summary_of(run: RunData) -> dict[str, Any]:
    summary = run.record.get("summary")
    return summary if isinstance(summary, dict) else {}


#: Processes drawn in the RSS-by-process panel: the heaviest by peak RSS.
PLOTTED_PROCESSES = 5


@dataclass(frozen=True)
class ProcessLine:
    """One process's RSS at each sample (NaN where the sample does not list it)."""

    pid: int
    name: str
    peak: float
    rss: list[float]


def process_lines(run: RunData, top: int = PLOTTED_PROCESSES) -> list[ProcessLine]:
    """The ``top`` heaviest processes of the samples' ``top_processes``; none for one process.

    A process is its pid (its name the last one listed: an exec keeps the pid). A
    single process's RSS is the memory panel's already, so one pid gives no lines.
    """
    by_pid: dict[int, list[float]] = {}
    names: dict[int, str] = {}
    count = len(run.samples)
    for index, sample in enumerate(run.samples):
        listed = sample.get("top_processes")
        if not isinstance(listed, list):
            continue
        for process in listed:
            if not isinstance(process, dict):
                continue
            pid, rss = process.get("pid"), number_of(process.get("rss"))
            if not isinstance(pid, int) or isinstance(pid, bool) or rss is None:
                continue
            values = by_pid.setdefault(pid, [math.nan] * count)
            values[index] = rss
            names[pid] = str(process.get("name") or "?")
    if len(by_pid) < 2:
        return []
    lines = [ProcessLine(pid, names[pid], max(v for v in values if not math.isnan(v)), values)
             for pid, values in by_pid.items()]  # fmt: skip
    lines.sort(key=lambda line: (-line.peak, line.pid))
    return lines[:top]
