"""run.json's summary: what a run cost, how its peaks are chosen, and the report's figures.

``jobmeter run`` and ``jobmeter.Run`` write it at the end of a run; the store
reads it back (``FIGURES``), and computes the same figures from the samples
of a run that never wrote one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

#: Where the headline peak came from (run.json's ``peak_memory_source``).
PEAK_FROM_PSS: Final = "samples (PSS of the tree)"
PEAK_FROM_KERNEL: Final = "kernel (largest process's peak RSS)"
PEAK_FROM_SAMPLED_HWM: Final = "samples (largest process's peak RSS)"

#: The status of a run whose command could not be started (not found, not
#: executable): its run.json says why in ``error``; it has no figures to average.
NOT_STARTED: Final = "not_started"

#: The figures of a report, in the order they are shown: the summary's, and two
#: the store computes from the samples (``cpu_utilization_p95``, ``samples`` read).
FIGURES: Final = (
    "wall_seconds", "cpu_user_seconds", "cpu_system_seconds", "cpu_utilization_mean",
    "cpu_utilization_peak", "cpu_utilization_p95", "peak_memory_bytes", "peak_memory_source",
    "peak_rss_sampled_bytes", "average_rss_bytes", "peak_pss_sampled_bytes",
    "peak_rss_single_process_bytes", "peak_cgroup_bytes", "read_bytes", "written_bytes",
    "peak_gpu_memory_bytes",
    "peak_processes", "peak_threads", "energy_total_joules", "energy_cpu_joules",
    "energy_dram_joules", "energy_gpu_joules", "samples",
)  # fmt: skip
#: The keys of run.json's ``energy_joules``, in the order of an ``_energy.Reading``.
ENERGY_DOMAINS: Final = ("cpu", "dram", "gpu")


def energy_figures(energy: Any) -> dict[str, float | None]:
    """The report's energy figures from run.json's ``energy_joules`` (None: not metered)."""
    known = energy if isinstance(energy, dict) else {}
    figures: dict[str, float | None] = {
        f"energy_{domain}_joules": float(known[domain])
        if isinstance(known.get(domain), int | float) else None
        for domain in ENERGY_DOMAINS
    }  # fmt: skip
    values = [value for value in figures.values() if value is not None]
    return {"energy_total_joules": sum(values) if values else None, **figures}


@dataclass
class RunResult:
    """What a run cost; also written to run.json as ``summary``."""

    run_id: str
    directory: Path
    exit_code: int
    status: str
    wall_seconds: float = 0.0
    cpu_user_seconds: float = 0.0
    cpu_system_seconds: float = 0.0
    cpu_utilization_mean: float = 0.0
    cpu_utilization_peak: float = 0.0
    peak_memory_bytes: int = 0
    peak_memory_source: str = "samples"
    peak_rss_sampled_bytes: int = 0
    peak_pss_sampled_bytes: int = 0
    # The tree's RSS averaged over the run's time, linear between samples.
    average_rss_bytes: int = 0
    peak_rss_single_process_bytes: int = 0
    peak_cgroup_bytes: int | None = None
    peak_gpu_memory_bytes: int | None = None
    # Joules the machine used during the run, by hw.type (cpu, dram, gpu); None: not metered.
    energy_joules: dict[str, float] | None = None
    read_bytes: int = 0
    written_bytes: int = 0
    peak_processes: int = 0
    peak_threads: int = 0
    samples: int = 0
    signals_forwarded: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The summary record."""
        record = dict(self.__dict__)
        record["directory"] = str(self.directory)
        return record


def headline_peak(pss: int, single_process: int, single_source: str) -> tuple[int, str]:
    """The peak to report first, and where it came from.

    The larger of the tree's sampled PSS and the largest single process's peak
    RSS. The cgroup peak stays a figure of its own: it includes page cache, so
    a job that writes 200 MB would look 200 MB bigger than its processes.
    """
    return max((pss, PEAK_FROM_PSS), (single_process, single_source))


def mark_incomplete(record: dict[str, Any], error: str | None) -> None:
    """A run whose store failed says so in run.json, if run.json can still be written."""
    if error is not None:
        record["incomplete"] = True
        record["store_error"] = error
