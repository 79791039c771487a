"""Run every benchmark, print figures and ratios, write benchmarks/results/latest.json.

Usage: ``python -m benchmarks [--only measure|scrape|shutdown|host|run|duckdb|backfill|store]
[--budget-s S] [--tpch-scale 0.1|1] [--strict]``.
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
    bench_host,
    bench_measure,
    bench_run,
    bench_scrape,
    bench_shutdown,
    bench_store,
    pass_miss,
)

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        choices=("measure", "scrape", "shutdown", "host", "run", "duckdb", "backfill", "store"),
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
    checks: list[tuple[str, bool]] = []

    if args.only in (None, "measure"):
        measured = bench_measure.run(budget_s=args.budget_s, progress=_progress)
        print(bench_measure.format_report(measured), end="\n\n", flush=True)
        report["measure"] = measured.to_json()
        checks += [(f"{r.name} <= {r.limit:.2f}", r.passed) for r in measured.ratios]

    if args.only in (None, "scrape"):
        scraped = bench_scrape.run(progress=_progress)
        print(bench_scrape.format_report(scraped), end="\n\n", flush=True)
        report["scrape"] = scraped.to_json()

    if args.only in (None, "shutdown"):
        stopped = bench_shutdown.run(progress=_progress)
        print(bench_shutdown.format_report(stopped), end="\n\n", flush=True)
        report["shutdown"] = bench_shutdown.to_json(stopped)

    if args.only in (None, "host"):
        hosted = bench_host.run(progress=_progress)
        print(bench_host.format_report(hosted), end="\n\n", flush=True)
        report["host"] = hosted.to_json()
        checks.append((f"{hosted.target} <= {hosted.limit:.2f}", hosted.passed))

    if args.only in (None, "run"):
        ran = bench_run.run(progress=_progress)
        print(bench_run.format_report(ran), end="\n\n", flush=True)
        report["run"] = ran.to_json()
        checks += ran.checks()

    if args.only in (None, "duckdb"):
        ducked = bench_duckdb.run(scale=args.tpch_scale, progress=_progress)
        print(bench_duckdb.format_report(ducked), end="\n\n", flush=True)
        report["duckdb"] = ducked.to_json()
        checks += ducked.checks()

    if args.only in (None, "backfill"):
        backfilled = bench_backfill.run(progress=_progress)
        print(bench_backfill.format_report(backfilled), end="\n\n", flush=True)
        report["backfill"] = backfilled.to_json()
        checks += backfilled.checks()

    if args.only in (None, "store"):
        stored = bench_store.run(progress=_progress)
        print(bench_store.format_report(stored), end="\n\n", flush=True)
        report["store"] = stored.to_json()
        checks += stored.checks()

    report["seconds"] = perf_counter() - started
    report["targets"] = [{"target": name, "passed": ok} for name, ok in checks]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    if checks:
        print("Targets:")
        for name, ok in checks:
            print(f"  {pass_miss(ok)}  {name}")
    print(f"\nWrote {_shown(args.output)} in {report['seconds']:.0f} s.")
    return 1 if args.strict and not all(ok for _, ok in checks) else 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
