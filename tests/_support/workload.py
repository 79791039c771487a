"""A workload that exercises every collector and serves it to Prometheus until it is killed.

Usage: ``python workload.py`` with ``OTEL_EXPORTER_PROMETHEUS_PORT`` (and ``_HOST``) set. It
prints one JSON line, ``{"port": PORT}``, once every kind of figure has been recorded once, then
keeps measuring in a loop: operations (some failing), host metrics, DuckDB statements (one
failing, one that prunes row groups) and two backfills, one finished and one in progress.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import time

import duckdb

import jobmeter
import jobmeter.duckdb

PAUSE_S = 0.05


def cpu_work(n: int = 20_000) -> int:
    """Burn a little CPU so that the CPU counters move."""
    return sum(i * i for i in range(n))


def operations(ops: jobmeter.MetricsCollector, step: int, scratch: str) -> None:
    """Measured blocks: a load that writes to disk, a transform, a validation that fails."""
    with ops.measure("load", {"table": "orders"}):
        with open(scratch, "wb") as out:
            out.write(os.urandom(256 * 1024))
            out.flush()
            os.fsync(out.fileno())
        cpu_work()
    with ops.measure("transform", {"table": "orders"}, peak_memory=True):  # the peak panel
        cpu_work(50_000)
    try:
        with ops.measure("validate", {"table": "orders"}):
            cpu_work(5_000)
            if step % 2:
                raise ValueError("bad row")
    except ValueError:
        pass


def queries(con: duckdb.DuckDBPyConnection, step: int) -> None:
    """Statements of several shapes: a pruned scan, an aggregate, an insert and a failure."""
    con.execute("SELECT count(*) FROM events WHERE id BETWEEN ? AND ?", [step, step + 1000])
    con.execute("SELECT kind, sum(amount) FROM events GROUP BY kind").fetchall()
    con.execute("INSERT INTO log VALUES (?, ?)", [step, "tick"])
    with contextlib.suppress(duckdb.CatalogException):
        con.execute("SELECT * FROM missing_table")


def main() -> None:
    """Configure, record every figure once, announce the port, then loop until killed."""
    telemetry = jobmeter.configure()
    assert telemetry.prometheus_address is not None
    ops = jobmeter.MetricsCollector("etl")
    jobmeter.start_host_metrics()
    con = jobmeter.duckdb.connect()
    # Enough rows for several row groups, sorted by id so that zone maps prune.
    con.execute(
        "CREATE TABLE events AS SELECT range AS id, range % 7 AS kind, range * 0.5 AS amount "
        "FROM range(1000000)"
    )
    con.execute("CREATE TABLE log (step INTEGER, note VARCHAR)")
    with jobmeter.Backfill("warmup", total=3, progress=False) as warmup:
        for _ in warmup.track(range(3)):
            pass
    backfill = jobmeter.Backfill("orders-2024", total=1_000_000, progress=False)
    backfill.queue_size(lambda: 42)
    fd, scratch = tempfile.mkstemp(prefix="jobmeter-workload-")
    os.close(fd)
    try:
        for step in itertools.count():
            operations(ops, step, scratch)
            queries(con, step)
            for _ in backfill.track(range(5)):
                cpu_work(2_000)
            backfill.failed(error_type="TimeoutError")
            backfill.skipped()
            backfill.retry("TimeoutError")
            backfill.rate_limited(1.5, reason="429")
            with backfill.batch(3):
                backfill.done(3)
            if step == 0:
                print(json.dumps({"port": telemetry.prometheus_address[1]}), flush=True)
            time.sleep(PAUSE_S)
    finally:
        os.unlink(scratch)


if __name__ == "__main__":
    main()
