"""DuckDB: the 22 TPC-H queries and a tiny query, on a plain and on a profiled connection.

TPC-H data (scale factor 0.1 by default, or 1) is generated once with
``tpchgen-cli`` as Parquet and loaded once into a DuckDB file; both are kept
under ``benchmarks/.data/`` (git ignores it) and reused. The queries
(``benchmarks/tpch/q01.sql`` .. ``q22.sql``, with the specification's validation
parameters) run on ``duckdb.connect(path, read_only=True)`` and on
``jobmeter.duckdb.connect(path, read_only=True)`` (sampled profiling, the
default), and, to show where the added time goes, on two more plain
connections: one with DuckDB's profiler switched on (``PRAGMA
enable_profiling='no_output'``) and one with the profiler settings jobmeter
makes (``tracked_metrics`` limited to what it reads), and on two more
jobmeter connections: ``profiling="always"`` (every statement profiled, as
before sampling) and ``profiler=False``. Query by query, every connection
runs the query in turn, in an order that rotates, over several rounds after a
warm-up; results are fetched in full with ``fetchall()`` and jobmeter's are
checked equal to the plain ones. A query's figure is the median of its
rounds; the target is on the ratio of the sums of the medians.

Then ``execute("SELECT 42").fetchall()`` in loops of 2,000 calls (``timeit``,
garbage collector off) on the same six connections, in a rotating order.

jobmeter is configured as an application would have it, through
``jobmeter.testing.in_memory()`` (``configure(exporters="none")`` plus an
``InMemoryMetricReader`` that is not collected while timing), so the
instruments are the SDK's. At the end the duration histogram must have
counted every statement run on jobmeter's connections, and the rows scanned
that the sampled connection estimates must be those the always-profiled one
measured (both ran the same statements, whose rows scanned do not change
from one execution to the next).
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

import duckdb

import jobmeter.duckdb
from benchmarks._common import (
    Check,
    Progress,
    Target,
    at_most,
    fitting_repeats,
    gc_off,
    interleaved,
    pass_miss,
    rotated,
    shown_path,
)
from jobmeter.testing import in_memory

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data"
QUERIES_DIR = HERE / "tpch"
SCALES = (0.1, 1.0)
DEFAULT_SCALE = 0.1
TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
DURATION_METRIC = "db.client.operation.duration"
PROFILED_METRIC = "jobmeter.duckdb.operations.profiled"
SCANNED_METRIC = "jobmeter.duckdb.rows.scanned"
# Sampled estimates of rows scanned against the always-profiled connection's.
SCANNED_REL_TOL = 0.001

# TPC-H rounds after one warm-up round; fewer on a slow machine (or at scale 1)
# to keep the timed rounds within BUDGET_S, never fewer than MIN_ROUNDS.
ROUNDS = 25
MIN_ROUNDS = 5
BUDGET_S = 60.0
TINY_SQL = "SELECT 42"
TINY_CALLS = 2_000
TINY_REPEATS = 7
TINY_WARMUP = 200
# Floats (DuckDB's avg() and divisions) are compared to this relative
# tolerance: parallel aggregation may add in another order from run to run.
REL_TOL = 1e-9

PLAIN = "plain"
JOBMETER = "jobmeter"
NO_PROFILER = "jobmeter_no_profiler"
ALWAYS = "jobmeter_always"
SIDE_ATTRIBUTE = "bench.side"  # on the points of the always-profiled connection
TARGETS = (
    Target("tpch, jobmeter / plain (sum of medians)", "tpch_jobmeter", "tpch_plain", 1.01),
    Target("tpch, jobmeter profiler=False / plain", f"tpch_{NO_PROFILER}", "tpch_plain", 1.01),
    Target("SELECT 42, jobmeter / plain", "tiny_jobmeter", "tiny_plain", 1.2),
)


class Connection(Protocol):
    """What the benchmark uses of a connection: every side's connection has it."""

    def execute(self, query: str) -> Any: ...

    def close(self) -> None: ...


Row = tuple[Any, ...]


@dataclass
class Side:
    """One connection under test."""

    name: str
    description: str
    connection: Connection
    statements: int = 0

    def timed(self, sql: str) -> tuple[float, list[Row]]:
        self.statements += 1
        started = perf_counter()
        rows: list[Row] = self.connection.execute(sql).fetchall()
        return perf_counter() - started, rows


@dataclass
class QueryTimes:
    """One TPC-H query's seconds per round, on each side."""

    name: str
    rows: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None  # jobmeter's connection raised, or its result differed

    def median(self, side: str) -> float:
        return statistics.median(self.seconds[side])

    def min(self, side: str) -> float:
        return min(self.seconds[side])


@dataclass
class TinyCase:
    """One connection's SELECT 42 loops."""

    name: str
    description: str
    per_call_us: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_call_us)

    @property
    def min_us(self) -> float:
        return min(self.per_call_us)


@dataclass
class DuckDBBench:
    """All the figures of ``bench_duckdb``."""

    scale: float
    duckdb_version: str
    threads: int
    database: str
    prepared_s: float  # generating and loading; 0 when both were cached
    sides: dict[str, str]  # name: what the connection is
    rounds: int
    queries: list[QueryTimes]
    tiny: list[TinyCase]
    tiny_calls: int
    statements: int  # run on jobmeter's connections
    recorded: int  # counted by its duration histogram
    sampled_statements: int = 0  # run on the sampled connection (jobmeter's default)
    sampled_profiled: int = 0  # of those, profiled
    scanned_sampled: float = 0.0  # rows scanned, estimated on the sampled connection
    scanned_always: float = 0.0  # rows scanned, measured on the always-profiled one
    seconds: float = 0.0

    def scanned_match(self) -> bool:
        return self.scanned_always > 0 and math.isclose(
            self.scanned_sampled, self.scanned_always, rel_tol=SCANNED_REL_TOL
        )

    def _ok(self) -> list[QueryTimes]:
        return [q for q in self.queries if q.error is None]

    def totals(self) -> dict[str, float]:
        """Per side, sums over the queries that ran alike everywhere: of medians, of mins."""
        ok = self._ok()
        found: dict[str, float] = {}
        for side in self.sides:
            found[f"tpch_{side}"] = sum(q.median(side) for q in ok) if ok else math.nan
            found[f"tpch_{side}_min"] = sum(q.min(side) for q in ok) if ok else math.nan
        return found

    def round_ratios(self) -> list[float]:
        """jobmeter / plain of each round's total, to show the noise between rounds."""
        ok = self._ok()
        if not ok:
            return []
        return [
            sum(q.seconds[JOBMETER][r] for q in ok) / sum(q.seconds[PLAIN][r] for q in ok)
            for r in range(self.rounds)
        ]

    def figures(self) -> dict[str, float]:
        tiny = {f"tiny_{case.name}": case.median_us for case in self.tiny}
        return {**self.totals(), **tiny}

    def checks(self) -> list[Check]:
        figures = self.figures()
        found = []
        for target in TARGETS:
            ratio, ok = target.check(figures)
            value, reference = figures[target.numerator], figures[target.denominator]
            found.append((f"duckdb: {target.name} <= {target.limit:.2f} ({ratio:.3f} = "
                          f"{value:.4g} / {reference:.4g})", ok))  # fmt: skip
        failed = [q.name for q in self.queries if q.error is not None]
        found.append(
            (
                f"duckdb: jobmeter's connection returns the plain results on the "
                f"{len(self.queries)} TPC-H queries"
                + (f" (not on {', '.join(failed)})" if failed else ""),
                not failed,
            )
        )
        found.append(
            (
                f"duckdb: duration histogram counted every statement "
                f"({self.recorded} of {self.statements})",
                self.recorded == self.statements,
            )
        )
        found.append(
            (
                f"duckdb: sampled profiles still report rows scanned, as the always-profiled "
                f"connection ({self.scanned_sampled:.0f} vs {self.scanned_always:.0f}; "
                f"{self.sampled_profiled} of {self.sampled_statements} statements profiled)",
                self.scanned_match(),
            )
        )
        return found

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        figures = self.figures()
        data["figures"] = figures
        data["round_ratios"] = self.round_ratios()
        data["targets"] = []
        for target in TARGETS:
            ratio, ok = target.check(figures)
            data["targets"].append(
                {"target": target.name, "ratio": ratio, "limit": target.limit, "passed": ok}
            )
        return data


# --- data ----------------------------------------------------------------------------


def _tpchgen() -> str:
    beside = Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if found is None:
        raise RuntimeError("tpchgen-cli not found (pip install -e '.[dev]' installs it)")
    return found


def prepare(scale: float, progress: Progress) -> tuple[Path, float]:
    """The cached TPC-H database of ``scale``, generated and loaded first if missing.

    Returns its path and the seconds spent making it (0 when cached).
    """
    started = perf_counter()
    directory = DATA_DIR / f"tpch-sf{scale:g}"
    # A database file is tied to a storage version: one per DuckDB version.
    database = directory / f"tpch-duckdb-{duckdb.__version__}.duckdb"
    if database.exists():
        return database, 0.0
    parquet = directory / "parquet"
    if not all((parquet / f"{table}.parquet").exists() for table in TABLES):
        progress(f"duckdb: generating TPC-H at scale factor {scale:g} with tpchgen-cli")
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="parquet-", dir=directory))
        try:
            subprocess.run(
                [_tpchgen(), "parquet", "--scale-factor", f"{scale:g}", "--output-dir", staging],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            shutil.rmtree(parquet, ignore_errors=True)
            staging.rename(parquet)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"duckdb: loading the Parquet files into {database.name}")
    staging_db = directory / f"{database.name}.{os.getpid()}.tmp"
    staging_db.unlink(missing_ok=True)
    try:
        with duckdb.connect(str(staging_db)) as con:
            for table in TABLES:
                source = str(parquet / f"{table}.parquet").replace("'", "''")
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{source}')")
            con.execute("CHECKPOINT")
        os.replace(staging_db, database)
    finally:
        staging_db.unlink(missing_ok=True)
    return database, perf_counter() - started


def load_queries() -> list[tuple[str, str]]:
    """(name, text) of q01 .. q22, without the trailing semicolon."""
    files = sorted(QUERIES_DIR.glob("q[0-9][0-9].sql"))
    if len(files) != 22:
        raise RuntimeError(f"expected 22 TPC-H queries in {QUERIES_DIR}, found {len(files)}")
    return [(f.stem, f.read_text().strip().rstrip(";")) for f in files]


# --- result comparison ---------------------------------------------------------------


def _value_close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0) or (a != a and b != b)
    return bool(a == b)


def _rows_close(a: Sequence[Row], b: Sequence[Row]) -> bool:
    return all(
        len(x) == len(y) and all(_value_close(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _sort_key(row: Row) -> tuple[str, ...]:
    return tuple(format(v, ".6g") if isinstance(v, float) else repr(v) for v in row)


def same_result(expected: Sequence[Row], got: Sequence[Row]) -> bool:
    """Equal rows, floats within REL_TOL, and rows tied in the ORDER BY in any order."""
    if list(expected) == list(got):
        return True
    if len(expected) != len(got):
        return False
    if _rows_close(expected, got):
        return True
    return _rows_close(sorted(expected, key=_sort_key), sorted(got, key=_sort_key))


def _difference(expected: Sequence[Row], got: Sequence[Row]) -> str:
    if len(expected) != len(got):
        return f"{len(got)} rows instead of {len(expected)}"
    for i, (x, y) in enumerate(zip(expected, got, strict=True)):
        if len(x) != len(y) or not all(_value_close(u, v) for u, v in zip(x, y, strict=True)):
            return f"row {i}: {y!r} instead of {x!r}"
    return "the same rows in another order"


# --- timing --------------------------------------------------------------------------


def _tpch(
    sides: list[Side], queries: list[tuple[str, str]], progress: Progress
) -> tuple[list[QueryTimes], int]:
    """A warm-up round (whose plain results are the expected ones), then the timed rounds.

    A query on which jobmeter's connection raises or returns another result is
    reported and left out of the timings from then on.
    """
    results: list[QueryTimes] = []
    expected: dict[str, list[Row]] = {}
    progress("duckdb: TPC-H warm-up round, results compared")
    started = perf_counter()
    for name, sql in queries:
        times = QueryTimes(name, 0, {side.name: [] for side in sides})
        results.append(times)
        for side in sides:
            try:
                _, rows = side.timed(sql)
            except Exception as exc:
                if side.name != JOBMETER:
                    raise
                times.error = f"{type(exc).__name__}: {exc}"
                continue
            if side.name == PLAIN:
                expected[name] = rows
                times.rows = len(rows)
            elif not same_result(expected[name], rows):
                if side.name != JOBMETER:
                    raise RuntimeError(f"{name}: {side.name}: {_difference(expected[name], rows)}")
                times.error = f"different result: {_difference(expected[name], rows)}"
    warm_s = perf_counter() - started
    rounds = fitting_repeats(ROUNDS, MIN_ROUNDS, warm_s, BUDGET_S)
    for r in range(rounds):
        progress(f"duckdb: TPC-H round {r + 1}/{rounds}")
        with gc_off():
            for i, ((name, sql), times) in enumerate(zip(queries, results, strict=True)):
                if times.error is not None:
                    continue
                got: dict[str, list[Row]] = {}
                for side in rotated(sides, r + i):
                    try:
                        seconds, got[side.name] = side.timed(sql)
                    except Exception as exc:
                        if side.name != JOBMETER:
                            raise
                        times.error = f"round {r + 1}: {type(exc).__name__}: {exc}"
                        continue
                    times.seconds[side.name].append(seconds)
                if times.error is not None:
                    continue
                for side_name, rows in got.items():
                    if same_result(expected[name], rows):
                        continue
                    if side_name != JOBMETER:
                        raise RuntimeError(f"{name}: the {side_name} connection's result changed")
                    times.error = (
                        f"round {r + 1}: different result: {_difference(expected[name], rows)}"
                    )
    return results, rounds


def _tiny(sides: list[Side], progress: Progress) -> list[TinyCase]:
    stmt = f'con.execute("{TINY_SQL}").fetchall()'
    cases = [
        (
            TinyCase(side.name, side.description),
            side,
            timeit.Timer(stmt, globals={"con": side.connection}),
        )
        for side in sides
    ]
    for _, side, timer in cases:
        timer.timeit(TINY_WARMUP)
        side.statements += TINY_WARMUP
    label = f"duckdb: {TINY_SQL} loops"
    for case, side, timer in interleaved(cases, TINY_REPEATS, label, progress, rotate=True):
        case.per_call_us.append(timer.timeit(TINY_CALLS) / TINY_CALLS * 1e6)
        side.statements += TINY_CALLS
    return [case for case, _, _ in cases]


def _jobmeter_profiler_settings() -> str:
    """The SET statements jobmeter.duckdb runs on its connections."""
    from jobmeter.duckdb._profile import install_statement

    return install_statement(False)


def _sides(path: str, stack: ExitStack) -> list[Side]:
    def plain(setting: str | None = None) -> Connection:
        con = stack.enter_context(duckdb.connect(path, read_only=True))
        if setting is not None:
            con.execute(setting)
        return con

    sides = [
        Side(PLAIN, "duckdb.connect(path, read_only=True)", plain()),
        Side(
            "profiler",
            "the same, PRAGMA enable_profiling='no_output'",
            plain("PRAGMA enable_profiling='no_output'"),
        ),
    ]
    sides.append(
        Side(
            "profiler_lean",
            "the same, with jobmeter's profiler settings (tracked_metrics)",
            plain(_jobmeter_profiler_settings()),
        )
    )
    ours = jobmeter.duckdb.connect(path, read_only=True)
    stack.callback(ours.close)
    sides.append(Side(JOBMETER, "jobmeter.duckdb.connect(path, read_only=True)", ours))
    quiet = jobmeter.duckdb.DuckDBCollector(
        "bench.no_profiler", profiler=False, table_metrics=False
    )
    no_profiler = quiet.connect(path, read_only=True)
    stack.callback(no_profiler.close)
    sides.append(Side(NO_PROFILER, "DuckDBCollector(profiler=False).connect(...)", no_profiler))
    loud = jobmeter.duckdb.DuckDBCollector(
        "bench.always",
        profiling="always",
        table_metrics=False,
        attributes={SIDE_ATTRIBUTE: "always"},
    )
    always = loud.connect(path, read_only=True)
    stack.callback(always.close)
    sides.append(Side(ALWAYS, 'DuckDBCollector(profiling="always").connect(...)', always))
    return sides


def run(scale: float = DEFAULT_SCALE, progress: Progress | None = None) -> DuckDBBench:
    """Prepare the data, time TPC-H and SELECT 42 on every side; see the module docstring."""

    def report(message: str) -> None:
        if progress is not None:
            progress(message)

    started = perf_counter()
    database, prepared_s = prepare(scale, report)
    queries = load_queries()
    with in_memory() as recorded, ExitStack() as stack:
        sides = _sides(str(database), stack)
        threads_row = sides[0].connection.execute("SELECT current_setting('threads')").fetchone()
        threads = int(threads_row[0]) if threads_row else 0
        results, rounds = _tpch(sides, queries, report)
        with gc_off():
            tiny = _tiny(sides, report)
        count = recorded.count(DURATION_METRIC)
        always_side = {SIDE_ATTRIBUTE: "always"}
        profiled = recorded.value(PROFILED_METRIC) - recorded.value(PROFILED_METRIC, always_side)
        scanned_always = recorded.value(SCANNED_METRIC, always_side)
        scanned = recorded.value(SCANNED_METRIC) - scanned_always  # profiler=False: none
    recording = [side for side in sides if side.name in (JOBMETER, NO_PROFILER, ALWAYS)]
    return DuckDBBench(
        scale=scale,
        duckdb_version=duckdb.__version__,
        threads=threads,
        database=shown_path(database),
        prepared_s=prepared_s,
        sides={side.name: side.description for side in sides},
        rounds=rounds,
        queries=results,
        tiny=tiny,
        tiny_calls=TINY_CALLS,
        statements=sum(side.statements for side in recording),
        recorded=count,
        sampled_statements=next(side.statements for side in sides if side.name == JOBMETER),
        sampled_profiled=int(profiled),
        scanned_sampled=scanned,
        scanned_always=scanned_always,
        seconds=perf_counter() - started,
    )


# --- the report ----------------------------------------------------------------------


def _tpch_lines(bench: DuckDBBench) -> list[str]:
    others = [s for s in bench.sides if s not in (PLAIN, JOBMETER)]
    lines = [
        f"  {'query':<7}{'rows':>6}{'plain':>9}{'min':>8}{'jobmeter':>10}{'min':>8}"
        f"{'ratio':>8}{'added':>9}" + "".join(f"{s:>15}" for s in others),
    ]
    for q in bench.queries:
        if q.error is not None and len(q.seconds[JOBMETER]) < bench.rounds:
            lines.append(f"  {q.name:<7}{q.rows:>6}  jobmeter FAILED: {q.error}")
            continue
        p, j = q.median(PLAIN) * 1e3, q.median(JOBMETER) * 1e3
        lines.append(
            f"  {q.name:<7}{q.rows:>6}{p:>9.2f}{q.min(PLAIN) * 1e3:>8.2f}{j:>10.2f}"
            f"{q.min(JOBMETER) * 1e3:>8.2f}{j / p:>8.3f}{j - p:>+9.3f}"
            + "".join(f"{q.median(s) / q.median(PLAIN):>15.3f}" for s in others)
            + (f"  FAILED: {q.error}" if q.error else "")
        )
    t = bench.totals()
    if not t[f"tpch_{PLAIN}"] > 0:
        return lines
    plain, ours = t[f"tpch_{PLAIN}"], t[f"tpch_{JOBMETER}"]
    lines.append(
        f"  {'total':<13}{plain * 1e3:>9.1f}{t[f'tpch_{PLAIN}_min'] * 1e3:>8.1f}"
        f"{ours * 1e3:>10.1f}{t[f'tpch_{JOBMETER}_min'] * 1e3:>8.1f}{ours / plain:>8.3f}"
        f"{(ours - plain) * 1e3:>+9.2f}"
        + "".join(f"{t[f'tpch_{s}'] / plain:>15.3f}" for s in others)
    )
    ok = [q for q in bench.queries if q.error is None]
    added = statistics.median(q.median(JOBMETER) - q.median(PLAIN) for q in ok)
    lines += [
        "",
        "  sum of per-query medians, against plain (the last column: added ms per query):",
    ]
    for side in bench.sides:
        total = t[f"tpch_{side}"]
        lines.append(
            f"    {side:<15}{total * 1e3:>8.1f} ms  {total / plain:.3f}  "
            f"{(total - plain) / len(ok) * 1e3:>+7.3f}  {bench.sides[side]}"
        )
    lines.append(f"  median of the per-query differences, jobmeter - plain: {added * 1e6:+.0f} us")
    ratios = bench.round_ratios()
    of_mins = t[f"tpch_{JOBMETER}_min"] / t[f"tpch_{PLAIN}_min"]
    if ratios:
        lines.append(
            f"  noise: jobmeter / plain of each round's total ranges "
            f"{min(ratios):.3f} .. {max(ratios):.3f} (median {statistics.median(ratios):.3f}); "
            f"ratio of the sums of mins {of_mins:.3f}"
        )
    return lines


def format_report(bench: DuckDBBench) -> str:
    lines = [
        f"DuckDB {bench.duckdb_version}: TPC-H at scale factor {bench.scale:g} "
        f"({bench.database}, {bench.threads} threads), plain duckdb.connect vs "
        "jobmeter.duckdb.connect, both read_only",
        f"  execute(sql).fetchall(), each query on every connection in turn (rotating order), "
        f"{bench.rounds} rounds after a warm-up;",
        "  median and min per query in ms; the last columns are medians over plain's",
        "",
        *_tpch_lines(bench),
        "",
        f"  {TINY_SQL}: execute().fetchall(), {bench.tiny_calls:,} calls x {TINY_REPEATS} "
        "repeats per connection, rotating order (timeit, GC off), us per call",
        "",
        f"  {'connection':<16}{'median':>8}{'min':>8}{'/ plain':>9}  what",
    ]
    reference = next((c for c in bench.tiny if c.name == PLAIN), None)
    for case in bench.tiny:
        shown = f"{case.median_us / reference.median_us:.2f}" if reference else "n/a"
        lines.append(
            f"  {case.name:<16}{case.median_us:>8.1f}{case.min_us:>8.1f}{shown:>9}  "
            f"{case.description}"
        )
    figures = bench.figures()
    lines += ["", f"  {'ratio':<44}{'value':>7}{'target':>10}"]
    for target in TARGETS:
        value, passed = target.check(figures)
        lines.append(
            f"  {target.name:<44}{value:>7.3f}{at_most(target.limit):>10}  {pass_miss(passed)}"
        )
    lines.append(
        f"  {DURATION_METRIC} counted {bench.recorded} of the {bench.statements} statements "
        f"run on jobmeter's connections  {pass_miss(bench.recorded == bench.statements)}"
    )
    share = bench.sampled_profiled / bench.sampled_statements if bench.sampled_statements else 0
    lines.append(
        f"  sampled profiling: {bench.sampled_profiled} of the {bench.sampled_statements} "
        f"statements on jobmeter's connection profiled ({share:.1%}); rows scanned estimated "
        f"{bench.scanned_sampled:,.0f}, measured on the always-profiled one "
        f"{bench.scanned_always:,.0f}  {pass_miss(bench.scanned_match())}"
    )
    prepared = f"; data prepared in {bench.prepared_s:.0f} s" if bench.prepared_s else ""
    lines.append(f"\n  ({bench.seconds:.1f} s{prepared})")
    return "\n".join(lines)
