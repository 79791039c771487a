"""The figures of one run (``FIGURES``): run.json's summary checked by usage.jsonl, or the samples.

``report()`` shows them, and the store's index keeps them for each finished
run, computed here in both cases so that the two never differ.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobmeter._rundata.layout import USAGE
from jobmeter._rundata.schema import SAMPLE_COLUMNS
from jobmeter._rundata.summary import FIGURES, PEAK_FROM_SAMPLED_HWM, energy_figures, headline_peak
from jobmeter._rundata.usage import _AGGREGATES, SampleFigures, read_figures, usage_source
from jobmeter.store._stored import StoredRun
from jobmeter.store._summary import RecordSummary, summarize

_log = logging.getLogger("jobmeter")


@dataclass
class RunFigures:
    """What ``report()`` is made of, before it logs its warnings and prices the run."""

    figures: dict[str, Any]
    source: str  # "summary" (run.json) or "samples" (usage.jsonl)
    samples: int
    skipped_lines: int
    warnings: list[str] = field(default_factory=list)
    records: RecordSummary = field(default_factory=RecordSummary)


def _from_samples(run: StoredRun, samples: SampleFigures) -> dict[str, Any]:
    """The figures of a run without a summary, computed from its samples."""
    start = run.start if run.start is not None else samples.first_t
    last = run.end or samples.last_t
    wall = max((last or 0.0) - (start or 0.0), 0.0) if last and start else 0.0
    user, system = samples.cpu_user_total or 0.0, samples.cpu_system_total or 0.0
    pss, hwm = samples.peak_pss or 0, samples.peak_hwm or 0
    peak, source = headline_peak(pss, hwm, PEAK_FROM_SAMPLED_HWM)
    return {
        "wall_seconds": wall,
        "cpu_user_seconds": user,
        "cpu_system_seconds": system,
        "cpu_utilization_mean": (user + system) / wall if wall > 0 else 0.0,
        "cpu_utilization_peak": samples.cpu_utilization_peak or 0.0,
        "peak_memory_bytes": peak,
        "peak_memory_source": source,
        "peak_rss_sampled_bytes": samples.peak_rss or 0,
        "peak_pss_sampled_bytes": pss,
        "peak_rss_single_process_bytes": hwm,
        "peak_cgroup_bytes": None,
        "read_bytes": samples.peak_read_bytes or 0,
        "written_bytes": samples.peak_write_bytes or 0,
        "peak_gpu_memory_bytes": samples.peak_gpu_memory,
        "peak_processes": samples.peak_processes or 0,
        "peak_threads": samples.peak_threads or 0,
        **energy_figures(
            {"cpu": samples.energy_cpu, "dram": samples.energy_dram, "gpu": samples.energy_gpu}
        ),
    }


def run_figures(
    run: StoredRun, *, with_records: bool = True, samples: SampleFigures | None = None
) -> RunFigures:
    """Read one run's samples and records: its figures, where they came from, what was skipped.

    ``with_records=False`` reads the samples only (``records`` stays empty);
    ``samples`` are the run's, read already.
    """
    usage = run.directory / USAGE
    if samples is None:
        samples = read_figures(usage)
    warnings: list[str] = []
    if samples.skipped:
        warnings.append(f"skipped {samples.skipped} unreadable line(s) of {usage}")
    summary = run.summary
    if summary is not None:
        figures = {name: summary.get(name) for name in FIGURES}
        figures.update(energy_figures(summary.get("energy_joules")))
        source = "summary"
        recorded = summary.get("samples")
        if isinstance(recorded, int) and recorded != samples.samples:
            warnings.append(f"run.json counts {recorded} samples, {usage} has {samples.samples}")
    else:
        figures = _from_samples(run, samples)
        source = "samples"
    figures["cpu_utilization_p95"] = samples.cpu_utilization_p95
    figures["samples"] = samples.samples
    if figures.get("average_rss_bytes") is None and samples.average_rss is not None:
        figures["average_rss_bytes"] = round(samples.average_rss)  # no summary, or an older one
    records = summarize(run.directory) if with_records else RecordSummary()
    for kind, skipped in records.skipped.items():
        warnings.append(f"skipped {skipped} unreadable {kind} record(s) in {run.directory}")
    shown = {name: figures.get(name) for name in FIGURES}
    return RunFigures(shown, source, samples.samples, samples.skipped, warnings, records)


def read_samples(paths: list[Path]) -> list[SampleFigures]:
    """``read_figures`` of each file, over one DuckDB connection (a connection costs 50 ms)."""
    if not paths:
        return []
    import duckdb

    found = []
    with duckdb.connect() as connection:
        for path in paths:
            if not path.is_file() or path.stat().st_size == 0:
                found.append(SampleFigures())
                continue
            query = _AGGREGATES.format(source=usage_source(path, SAMPLE_COLUMNS))
            row = connection.execute(query, {"path": str(path)}).fetchone()
            assert row is not None
            found.append(SampleFigures(*row))
    return found


def figures_of(runs: Sequence[StoredRun]) -> list[dict[str, Any]]:
    """The report's figures of each run (``FIGURES``), as ``report(run).figures`` has them.

    A run listed from the index has them at hand (``StoredRun.figures``): no
    file of it is read. The others' samples are read (not their records), with
    a warning for unreadable lines as ``report`` gives.
    """
    missing = [run for run in runs if run.figures is None]
    read = read_samples([run.directory / USAGE for run in missing])
    computed = {}
    for run, samples in zip(missing, read, strict=True):
        found = run_figures(run, with_records=False, samples=samples)
        for warning in found.warnings:
            _log.warning("jobmeter store: %s", warning)
        computed[id(run)] = found.figures
    return [run.figures if run.figures is not None else computed[id(run)] for run in runs]
