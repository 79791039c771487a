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


def _crash(how: str, i: int) -> None:
    """End the program in the body of item ``i``: an exception, or wait for a signal."""
    if how == "exit":
        sys.exit(3)
    if how == "raise":
        raise RuntimeError(f"item {i} crashed")
    print(json.dumps({"blocked": i}), flush=True)  # in the body: the test sends the signal
    time.sleep(120)


def crash(ns: argparse.Namespace) -> None:
    """Items from the checkpoint's position; --fail items raise ValueError, caught in the body
    and counted failed; item --at ends the program; --retry first redoes the failed items.

    Each item writes ``start I`` before its work and ``done I`` or ``failed I`` after it to
    --log, so the test sees which items were processed, how often, and how far.
    """
    fail = {int(i) for i in ns.fail.split(",") if i}
    bf = Backfill("crashy", total=ns.items, checkpoint=ns.checkpoint,
                  checkpoint_interval=ns.interval, progress=False)  # fmt: skip
    print(json.dumps({"resumed_at": bf.completed, "failed_items": bf.failed_items(),
                      "counts": bf.counts}), flush=True)  # fmt: skip
    with open(ns.log, "a") as log:

        def work(i: int, what: str) -> None:
            log.write(f"{what} {i}\n")
            log.flush()
            if i == ns.at:
                _crash(ns.how, i)
            try:
                if i in fail:
                    raise ValueError(f"item {i} is bad")
            except ValueError as error:
                bf.failed(error_type=error)
                log.write(f"failed {i}\n")
            else:
                log.write(f"done {i}\n")

        def run() -> None:
            if ns.retry:
                for i in bf.track_failed(range(ns.items)):
                    work(i, "retry")
            for i in bf.track(range(bf.completed, ns.items)):
                work(i, "start")

        if ns.bare:  # no with block: the backfill is closed at interpreter exit
            run()
            return
        with bf:
            run()


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
    p = sub.add_parser("crash")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--at", type=int, default=-1)
    p.add_argument("--how", choices=("exit", "raise", "signal"), default="exit")
    p.add_argument("--fail", default="")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--retry", action="store_true")
    p.add_argument("--bare", action="store_true")
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
    modes = {"serve": serve, "resume": resume, "crash": crash, "hold": hold, "terminal": terminal}
    modes[ns.mode](ns)


if __name__ == "__main__":
    main()
