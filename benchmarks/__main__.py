"""Run every benchmark, print figures and ratios, write benchmarks/results/latest.json.

Usage: ``python -m benchmarks
[--only measure|energy|scrape|shutdown|host|run|duckdb|backfill|store|pytest|torch] [--budget-s S]
[--tpch-scale 0.1|1] [--strict]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from time import perf_counter
from typing import Any

import jobmeter
from benchmarks import (
    bench_backfill,
    bench_duckdb,
    bench_energy,
    bench_host,
    bench_measure,
    bench_pytest,
    bench_run,
    bench_scrape,
    bench_shutdown,
    bench_store,
    bench_torch,
)
from benchmarks._common import Check, pass_miss, shown_path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
# In the order they run and print.
PARTS = (
    "measure",
    "energy",
    "scrape",
    "shutdown",
    "host",
    "run",
    "duckdb",
    "backfill",
    "store",
    "pytest",
)


def _progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jobmeter": jobmeter.__version__,
        "opentelemetry-sdk": version("opentelemetry-sdk"),
        "opentelemetry-exporter-prometheus": version("opentelemetry-exporter-prometheus"),
        "prometheus-client": version("prometheus-client"),
        "psutil": version("psutil"),
        "opentelemetry-instrumentation-system-metrics": version(
            "opentelemetry-instrumentation-system-metrics"
        ),
    }


def _part(name: str, args: argparse.Namespace) -> tuple[str, Any, list[Check]]:
    """Run one part: its printed report, its figures for the JSON, and its targets."""
    if name == "energy":
        energy = bench_energy.run(progress=_progress)
        return bench_energy.format_report(energy), energy.to_json(), energy.checks()
    if name == "measure":
        measured = bench_measure.run(budget_s=args.budget_s, progress=_progress)
        return bench_measure.format_report(measured), measured.to_json(), measured.checks()
    if name == "scrape":
        scraped = bench_scrape.run(progress=_progress)
        return bench_scrape.format_report(scraped), scraped.to_json(), scraped.checks()
    if name == "shutdown":  # reported, no target
        stopped = bench_shutdown.run(progress=_progress)
        return bench_shutdown.format_report(stopped), bench_shutdown.to_json(stopped), []
    if name == "host":
        hosted = bench_host.run(progress=_progress)
        return bench_host.format_report(hosted), hosted.to_json(), hosted.checks()
    if name == "run":
        ran = bench_run.run(progress=_progress)
        return bench_run.format_report(ran), ran.to_json(), ran.checks()
    if name == "duckdb":
        ducked = bench_duckdb.run(scale=args.tpch_scale, progress=_progress)
        return bench_duckdb.format_report(ducked), ducked.to_json(), ducked.checks()
    if name == "backfill":
        backfilled = bench_backfill.run(progress=_progress)
        return bench_backfill.format_report(backfilled), backfilled.to_json(), backfilled.checks()
    if name == "store":
        stored = bench_store.run(progress=_progress)
        return bench_store.format_report(stored), stored.to_json(), stored.checks()
    if name == "pytest":
        timed = bench_pytest.run(progress=_progress)
        return bench_pytest.format_report(timed), timed.to_json(), timed.checks()
    if name == "torch":
        torched = bench_torch.run(progress=_progress)
        return bench_torch.format_report(torched), torched.to_json(), torched.checks()
    raise ValueError(f"no benchmark part {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="run one part only",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=bench_measure.BUDGET_S,
        help="seconds the measure() timings may take; fewer calls on a slow machine "
        "(0: always the full counts; default %(default)s)",
    )
    parser.add_argument(
        "--tpch-scale",
        type=float,
        choices=bench_duckdb.SCALES,
        default=bench_duckdb.DEFAULT_SCALE,
        help="TPC-H scale factor of the duckdb benchmark (default %(default)s)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    started = perf_counter()
    environment = _environment()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    print(
        f"jobmeter {environment['jobmeter']} benchmarks, {now}\n"
        f"Python {environment['python']} on {environment['platform']}, "
        f"{environment['cpus']} CPUs; opentelemetry-sdk {environment['opentelemetry-sdk']}, "
        f"exporter-prometheus {environment['opentelemetry-exporter-prometheus']}, "
        f"prometheus-client {environment['prometheus-client']}, psutil {environment['psutil']}\n",
        flush=True,
    )
    report: dict[str, Any] = {"started": now, "environment": environment}
    checks: list[Check] = []

    for name in PARTS:
        if args.only in (None, name):
            text, report[name], found = _part(name, args)
            print(text, end="\n\n", flush=True)
            checks += found

    report["seconds"] = perf_counter() - started
    report["targets"] = [{"target": name, "passed": ok} for name, ok in checks]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    if checks:
        print("Targets:")
        for name, ok in checks:
            print(f"  {pass_miss(ok)}  {name}")
    print(f"\nWrote {shown_path(args.output)} in {report['seconds']:.0f} s.")
    return 1 if args.strict and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
