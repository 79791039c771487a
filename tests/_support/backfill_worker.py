"""A backfill in a process of its own, for the tests that need real processes and signals.

Usage: ``python backfill_worker.py MODE [options]``; see ``main()``.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import time

import jobmeter
from jobmeter.backfill import Backfill


def serve(ns: argparse.Namespace) -> None:
    """Count items, serve them on a Prometheus endpoint, stay up until stdin closes."""
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0,
                                   service_name="orders-backfill")  # fmt: skip
    assert telemetry.prometheus_address is not None
    bf = Backfill(ns.name, total=ns.items, progress=False)
    for _ in bf.track(range(ns.items)):
        pass
    print(json.dumps({"port": telemetry.prometheus_address[1]}), flush=True)
    sys.stdin.read()


def resume(ns: argparse.Namespace) -> None:
    """Process items from where the checkpoint says, logging each one; slow enough to kill."""
    with Backfill("resumable", total=ns.items, checkpoint=ns.checkpoint,
                  checkpoint_interval=0.05, progress=False) as bf:  # fmt: skip
        print(json.dumps({"resumed_at": bf.completed}), flush=True)
        with open(ns.log, "a") as log:
            for i in bf.track(range(bf.completed, ns.items)):
                time.sleep(ns.sleep)
                log.write(f"{i}\n")
                log.flush()


def hold(ns: argparse.Namespace) -> None:
    """Count, then wait to be signalled (SIGTERM) or exit (normally or by an exception)."""
    if ns.fsize:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
    if ns.configure == "before":
        jobmeter.configure()
    bf = Backfill("held", total=ns.items * 2, checkpoint=ns.checkpoint,
                  checkpoint_interval=ns.interval, progress=False)  # fmt: skip
    if ns.configure == "after":
        jobmeter.configure()
    bf.done(ns.items)
    bf.failed(2, error_type="TimeoutError")
    print(json.dumps({"ready": True, "counts": bf.counts}), flush=True)
    if ns.then == "wait":
        time.sleep(60)
    elif ns.then == "raise":
        raise RuntimeError("the job failed")


def terminal(ns: argparse.Namespace) -> None:
    """A backfill with its terminal output (bar or log lines)."""
    with Backfill("orders", total=ns.items, unit="day", progress=not ns.no_progress,
                  log_interval=ns.log_interval) as bf:  # fmt: skip
        for i in bf.track(range(ns.items)):
            if i == 3:
                bf.failed(error_type="ValueError")
            time.sleep(ns.sleep)
    print("finished", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--name", default="orders")
    p.add_argument("--items", type=int, default=1000)
    p = sub.add_parser("resume")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--sleep", type=float, default=0.01)
    p = sub.add_parser("hold")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--items", type=int, default=123)
    p.add_argument("--interval", type=float, default=1000.0)
    p.add_argument("--then", choices=("wait", "exit", "raise"), default="wait")
    p.add_argument("--fsize", action="store_true")
    p.add_argument("--configure", choices=("no", "before", "after"), default="no")
    p = sub.add_parser("terminal")
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--sleep", type=float, default=0.02)
    p.add_argument("--log-interval", type=float, default=0.2)
    p.add_argument("--no-progress", action="store_true")
    ns = parser.parse_args()
    {"serve": serve, "resume": resume, "hold": hold, "terminal": terminal}[ns.mode](ns)


if __name__ == "__main__":
    main()
