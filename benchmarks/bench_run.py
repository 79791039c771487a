"""``jobmeter run`` against con-duct (``duct``) on the same jobs, and against ground truth.

Five jobs (``benchmarks/workloads.py``) run once under each wrapper, both at
their default 1 s sampling. Each job writes its own ground truth (the kernel's
figures for itself) to a file; a tool's error is against the truth of its own
run. Then the wrappers' own cost: CPU time over a 30 s sleeping job at 1 s and
0.1 s sampling, and the start-up of ``jobmeter run -- true`` and ``duct true``.

A wrapper's CPU time is what ``os.wait4`` returns for its pid: the wrapper's
user and system time plus that of every descendant it waited for, which is
its job (both wrappers wait for it), and for duct the ``ps`` it forks at each
sample. The job's own CPU time, measured on the same job run bare at the same
time, is subtracted. Unlike ``RUSAGE_CHILDREN`` deltas this is per process, so
the overhead runs can go at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import workloads
from benchmarks._common import Check, Progress, pass_miss
from benchmarks.workloads import MIB

TOLERANCE = 0.05  # jobmeter within 5 % of the truth
PER_SAMPLE_LIMIT = 0.10  # jobmeter's CPU per sample over duct's
TOTAL_CPU_LIMIT = 0.10  # jobmeter's CPU over the whole job over duct's, at each interval
STARTUP_LIMIT = 1.0  # `jobmeter run -- true` wall over `duct true`'s
OVERHEAD_JOB_S = 30
OVERHEAD_INTERVALS = (1.0, 0.1)
STARTUP_REPEATS = 5
TIMEOUT_S = 120.0
BIN = Path(sys.executable).parent


@dataclass
class Spawned:
    """One wrapper (or bare job) run to its end."""

    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the process and of the descendants it waited for


@dataclass
class Figure:
    """One figure of one job: the truth and what each tool reported."""

    workload: str
    figure: str
    unit: str  # "B" or "s"
    truth: float  # from the jobmeter run
    truth_duct_run: float | None
    truth_source: str
    jobmeter: float
    jobmeter_field: str
    duct: float | None
    duct_field: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def jobmeter_error(self) -> float:
        return self.jobmeter / self.truth - 1.0

    @property
    def duct_error(self) -> float | None:
        if self.duct is None or not self.truth_duct_run:
            return None
        return self.duct / self.truth_duct_run - 1.0

    @property
    def passed(self) -> bool:
        return abs(self.jobmeter_error) <= TOLERANCE


@dataclass
class Overhead:
    """A wrapper's own CPU time over the sleeping job at one interval."""

    tool: str
    interval_s: float
    samples: int
    wall_s: float
    cpu_s: float  # the wrapper's CPU minus the bare job's
    fixed_cpu_s: float  # the wrapper's CPU over `true`: start-up and exit

    @property
    def per_sample_s(self) -> float:
        return max(self.cpu_s - self.fixed_cpu_s, 0.0) / max(self.samples, 1)


@dataclass
class RunBench:
    """All the figures of ``bench_run``."""

    duct_version: str | None
    data_filesystem: str
    figures: list[Figure]
    overhead: list[Overhead]
    overhead_job_cpu_s: float
    overhead_processes: int
    startup_wall_s: dict[str, list[float]]
    startup_cpu_s: dict[str, list[float]]
    true_cpu_s: float

    def marginal_per_sample_s(self, tool: str) -> float | None:
        """CPU per extra sample: (CPU at 0.1 s - CPU at 1 s) / (samples at 0.1 s - at 1 s)."""
        cases = sorted((c for c in self.overhead if c.tool == tool), key=lambda c: c.interval_s)
        if len(cases) != 2 or cases[0].samples == cases[1].samples:
            return None
        fast, slow = cases
        return (fast.cpu_s - slow.cpu_s) / (fast.samples - slow.samples)

    def per_sample_ratio(self) -> float | None:
        ours, theirs = self.marginal_per_sample_s("jobmeter"), self.marginal_per_sample_s("duct")
        if ours is None or not theirs:
            return None
        return ours / theirs

    def total_cpu_ratio(self, interval: float) -> float | None:
        """The wrapper's whole CPU over the sleeping job at ``interval``, jobmeter / duct."""
        tools = {c.tool: c for c in self.overhead if c.interval_s == interval}
        if "duct" not in tools or "jobmeter" not in tools or tools["duct"].cpu_s <= 0:
            return None
        return tools["jobmeter"].cpu_s / tools["duct"].cpu_s

    def startup_ratio(self) -> float | None:
        """Median wall of `jobmeter run -- true` over that of `duct true`."""
        if len(self.startup_wall_s) != 2:
            return None
        ours, theirs = (statistics.median(self.startup_wall_s[t]) for t in ("jobmeter", "duct"))
        return ours / theirs

    def checks(self) -> list[Check]:
        """One target per job figure, the CPU per sample and in total, and the start-up."""
        found = [
            (
                f"run: {f.workload}, jobmeter {f.figure} within "
                f"{TOLERANCE:.0%} of the truth ({f.jobmeter_error:+.1%})",
                f.passed,
            )
            for f in self.figures
        ]
        ratio = self.per_sample_ratio()
        if ratio is not None:
            found.append(
                (
                    f"run: CPU per sample, jobmeter / duct <= {PER_SAMPLE_LIMIT:.2f} ({ratio:.2f})",
                    ratio <= PER_SAMPLE_LIMIT,
                )
            )
        for interval in OVERHEAD_INTERVALS:
            total = self.total_cpu_ratio(interval)
            if total is not None:
                cpu = {c.tool: c.cpu_s for c in self.overhead if c.interval_s == interval}
                found.append((
                    f"run: wrapper CPU over {OVERHEAD_JOB_S} s at {interval:g} s, jobmeter / duct "
                    f"<= {TOTAL_CPU_LIMIT:.2f} ({total:.2f} = {cpu['jobmeter']:.3f} s / "
                    f"{cpu['duct']:.3f} s)", total <= TOTAL_CPU_LIMIT,
                ))  # fmt: skip
        startup = self.startup_ratio()
        if startup is not None:
            ours, theirs = (statistics.median(self.startup_wall_s[t]) for t in ("jobmeter", "duct"))
            found.append((
                f"run: start-up and exit around `true`, wall, jobmeter / duct <= "
                f"{STARTUP_LIMIT:.2f} ({startup:.2f} = {ours * 1000:.0f} ms / "
                f"{theirs * 1000:.0f} ms)", startup <= STARTUP_LIMIT,
            ))  # fmt: skip
        return found

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        for figure, out in zip(self.figures, record["figures"], strict=True):
            out.update(
                jobmeter_error=figure.jobmeter_error,
                duct_error=figure.duct_error,
                passed=figure.passed,
            )
        for case, out in zip(self.overhead, record["overhead"], strict=True):
            out["per_sample_s"] = case.per_sample_s
        record["marginal_per_sample_s"] = {
            tool: self.marginal_per_sample_s(tool) for tool in ("jobmeter", "duct")
        }
        record["per_sample_ratio"] = self.per_sample_ratio()
        record["sampling_interval_s"] = 1.0
        record["overhead_job_s"] = OVERHEAD_JOB_S
        return record


# --- running things ------------------------------------------------------------------


def _environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_", "DUCT_"))}
    env["OTEL_METRICS_EXPORTER"] = "none"  # jobmeter run opens no port
    env["DUCT_CONFIG_PATHS"] = str(scratch / "no-duct.env")  # no user .env for duct
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # duct execs con-duct by name
    return env


def _jobmeter_argv() -> list[str]:
    script = BIN / "jobmeter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobmeter"]


def _duct_argv() -> list[str] | None:
    script = BIN / "duct"
    if script.exists() and (BIN / "con-duct").exists():
        return [str(script)]
    found = shutil.which("duct")
    return [found] if found and shutil.which("con-duct") else None


def _start(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            list(argv), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def _finish(process: subprocess.Popen[bytes], started: float, log: Path) -> Spawned:
    timer = threading.Timer(TIMEOUT_S, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{process.args!r} exited {process.returncode}:\n{tail}")
    return Spawned(process.returncode, wall, usage.ru_utime + usage.ru_stime)


def _spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> Spawned:
    started = time.perf_counter()
    return _finish(_start(argv, env, log), started, log)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _truth(path: Path) -> dict[str, Any]:
    """The job's own figures; waits for a setsid grandchild that outlives its wrapper."""
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no ground truth written to {path}")
        time.sleep(0.05)
    truth: dict[str, Any] = json.loads(path.read_text())
    while not _gone(int(truth["pid"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    return truth


def _filesystem(path: Path) -> str:
    """The type of the file system that holds ``path`` (longest mount point that prefixes it)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


@contextmanager
def _disk_directory(scratch: Path) -> Iterator[Path]:
    """Where the write job writes: the scratch directory unless it is in memory."""
    if _filesystem(scratch) not in ("tmpfs", "ramfs"):
        yield scratch
        return
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-run-", dir=results) as directory:
        yield Path(directory)


# --- the jobs ------------------------------------------------------------------------


@dataclass
class _Tools:
    scratch: Path
    env: dict[str, str]
    jobmeter: list[str]
    duct: list[str] | None
    data: Path
    count: int = 0

    def new_directory(self, label: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-")
        directory = self.scratch / f"{self.count:02d}-{slug}"
        directory.mkdir()
        return directory

    def job(self, script: str, truth: Path) -> list[str]:
        return [sys.executable, "-c", script, str(truth), str(self.data)]

    def jobmeter_argv(
        self, directory: Path, job: Sequence[str], interval: float | None = None
    ) -> list[str]:
        """``jobmeter run`` around ``job``, its output under ``directory``."""
        sampling = [] if interval is None else ["--interval", str(interval)]
        output = ["--dir", str(directory / "runs")]
        return [*self.jobmeter, "run", "--quiet", *sampling, *output, "--", *job]

    def duct_argv(
        self, directory: Path, job: Sequence[str], interval: float | None = None
    ) -> list[str]:
        """``duct`` around ``job``, its output under ``directory``."""
        assert self.duct is not None
        sampling = [] if interval is None else ["--sample-interval", str(interval)]
        output = ["--output-prefix", f"{directory}/duct/"]
        return [*self.duct, "--log-level", "NONE", *sampling, *output, *job]

    def jobmeter_run(
        self, script: str, label: str, interval: float = 1.0
    ) -> tuple[dict[str, Any], dict[str, Any], Spawned]:
        directory = self.new_directory(f"jobmeter-{label}")
        truth = directory / "truth.json"
        argv = self.jobmeter_argv(directory, self.job(script, truth), interval)
        spawned = _spawn(argv, self.env, directory / "wrapper.log")
        return _jobmeter_summary(directory), _truth(truth), spawned

    def duct_run(self, script: str, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
        directory = self.new_directory(f"duct-{label}")
        truth = directory / "truth.json"
        _spawn(
            self.duct_argv(directory, self.job(script, truth)), self.env, directory / "wrapper.log"
        )
        return _duct_summary(directory), _truth(truth)


def _jobmeter_summary(directory: Path) -> dict[str, Any]:
    found = sorted((directory / "runs").glob("*/run.json"))
    if not found:
        raise RuntimeError(f"jobmeter run wrote no run.json under {directory}")
    summary: dict[str, Any] = json.loads(found[-1].read_text())["summary"]
    return summary


def _duct_summary(directory: Path) -> dict[str, Any]:
    info = directory / "duct" / "info.json"
    if not info.exists():
        raise RuntimeError(f"duct wrote no info.json under {directory}")
    summary: dict[str, Any] = json.loads(info.read_text())["execution_summary"]
    return summary


def _jobmeter_cpu(summary: dict[str, Any]) -> float:
    return float(summary["cpu_user_seconds"]) + float(summary["cpu_system_seconds"])


def _duct_peak_rss(summary: dict[str, Any]) -> float | None:
    peak = summary.get("peak_rss")
    return None if peak is None else float(peak)


def _duct_cpu(summary: dict[str, Any]) -> float | None:
    """duct has no CPU time: Average CPU Usage (ps %CPU, summed) x wall-clock time."""
    average, wall = summary.get("average_pcpu"), summary.get("wall_clock_time")
    if average is None or wall is None:
        return None
    return float(average) / 100.0 * float(wall)


def _no_figure(summary: dict[str, Any]) -> float | None:
    return None


@dataclass(frozen=True)
class _Measured:
    figure: str
    unit: str
    truth_key: str
    truth_source: str
    jobmeter_field: str
    jobmeter_value: Callable[[dict[str, Any]], float]
    duct_field: str
    duct_value: Callable[[dict[str, Any]], float | None]


@dataclass(frozen=True)
class _Job:
    workload: str
    script: str
    figures: tuple[_Measured, ...]


def _field(name: str) -> Callable[[dict[str, Any]], float]:
    return lambda summary: float(summary[name])


def _peak(truth_source: str) -> _Measured:
    return _Measured("peak memory", "B", "peak", truth_source, "peak_memory_bytes",
                     _field("peak_memory_bytes"), "peak_rss", _duct_peak_rss)  # fmt: skip


JOBS = (
    _Job("500 MiB spike, 0.3 s", workloads.MEMORY_SPIKE, (_peak("VmHWM of the job"),)),
    _Job("3 s busy loop", workloads.BUSY_LOOP, (
        _Measured("CPU time", "s", "cpu_self", "getrusage of the job at its end",
                  "cpu_user_seconds + cpu_system_seconds", _jobmeter_cpu,
                  "average_pcpu / 100 x wall_clock_time", _duct_cpu),
        _peak("VmHWM of the job"),
    )),
    _Job("200 MiB written, fsync", workloads.WRITE, (
        _Measured("bytes written", "B", "written", "bytes the job wrote", "written_bytes",
                  _field("written_bytes"), "(no I/O figure)", _no_figure),
    )),
    _Job("4 forks share 200 MiB", workloads.FORKED_COW, (
        _Measured("peak PSS", "B", "peak", "sum of the 5 processes' PSS, read by the job",
                  "peak_pss_sampled_bytes", _field("peak_pss_sampled_bytes"),
                  "peak_rss (a sum of RSS)", _duct_peak_rss),
    )),
    _Job("setsid child, 300 MiB", workloads.SETSID_CHILD, (_peak("VmHWM of the grandchild"),)),
)  # fmt: skip

JOBMETER_DETAILS = (
    "peak_memory_bytes",
    "peak_memory_source",
    "peak_rss_sampled_bytes",
    "peak_pss_sampled_bytes",
    "peak_rss_single_process_bytes",
    "peak_cgroup_bytes",
    "cpu_user_seconds",
    "cpu_system_seconds",
    "written_bytes",
    "read_bytes",
    "wall_seconds",
    "samples",
    "peak_processes",
)
DUCT_DETAILS = ("peak_rss", "average_rss", "average_pcpu", "wall_clock_time", "num_samples")


def _workloads(tools: _Tools, progress: Progress) -> list[Figure]:
    figures: list[Figure] = []
    for job in JOBS:
        progress(f"run: {job.workload} under jobmeter run")
        ours, truth, _ = tools.jobmeter_run(job.script, job.workload)
        details: dict[str, Any] = {f"jobmeter_{k}": ours.get(k) for k in JOBMETER_DETAILS}
        details.update((f"truth_{k}", v) for k, v in truth.items())
        theirs: dict[str, Any] | None = None
        theirs_truth: dict[str, Any] = {}
        if tools.duct is not None:
            progress(f"run: {job.workload} under duct")
            theirs, theirs_truth = tools.duct_run(job.script, job.workload)
            details.update((f"duct_{k}", theirs.get(k)) for k in DUCT_DETAILS)
        figures.extend(
            Figure(
                job.workload,
                m.figure,
                m.unit,
                float(truth[m.truth_key]),
                float(theirs_truth[m.truth_key]) if theirs is not None else None,
                m.truth_source,
                m.jobmeter_value(ours),
                m.jobmeter_field,
                m.duct_value(theirs) if theirs is not None else None,
                m.duct_field,
                details,
            )
            for m in job.figures
        )
    return figures


# --- overhead and start-up -----------------------------------------------------------


def _processes() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def _overhead(
    tools: _Tools, fixed: dict[str, float], progress: Progress
) -> tuple[list[Overhead], float, int]:
    """Every wrapper at both intervals and the bare job, all at once over one 30 s sleep."""
    progress(
        f"run: overhead, {OVERHEAD_JOB_S} s sleeping job under each wrapper at "
        f"{' and '.join(f'{i:g} s' for i in OVERHEAD_INTERVALS)}, all at once"
    )
    job = [sys.executable, "-c", workloads.SLEEP.format(seconds=OVERHEAD_JOB_S)]
    runs: list[tuple[str, float, Path, list[str]]] = []
    for interval in OVERHEAD_INTERVALS:
        directory = tools.new_directory(f"overhead-jobmeter-{interval:g}")
        runs.append(
            ("jobmeter", interval, directory, tools.jobmeter_argv(directory, job, interval))
        )
        if tools.duct is not None:
            directory = tools.new_directory(f"overhead-duct-{interval:g}")
            runs.append(("duct", interval, directory, tools.duct_argv(directory, job, interval)))
    bare_dir = tools.new_directory("overhead-bare")
    processes = _processes()
    started = time.perf_counter()
    bare = _start(job, tools.env, bare_dir / "job.log")
    running = [
        (tool, interval, directory, _start(argv, tools.env, directory / "wrapper.log"))
        for tool, interval, directory, argv in runs
    ]
    job_cpu = _finish(bare, started, bare_dir / "job.log").cpu_s
    cases = []
    for tool, interval, directory, process in running:
        spawned = _finish(process, started, directory / "wrapper.log")
        if tool == "jobmeter":
            samples = int(_jobmeter_summary(directory)["samples"])
        else:
            samples = int(_duct_summary(directory)["num_samples"])
        cases.append(
            Overhead(tool, interval, samples, spawned.wall_s, spawned.cpu_s - job_cpu, fixed[tool])
        )
    return cases, job_cpu, processes


def _startup(
    tools: _Tools, progress: Progress
) -> tuple[dict[str, list[float]], dict[str, list[float]], float]:
    """Wall and CPU time of each wrapper around `true`, interleaved; and of `true` alone."""
    true = shutil.which("true", path=tools.env["PATH"]) or "true"
    commands = {"jobmeter": tools.jobmeter_argv}
    if tools.duct is not None:
        commands["duct"] = tools.duct_argv
    wall: dict[str, list[float]] = {tool: [] for tool in commands}
    cpu: dict[str, list[float]] = {tool: [] for tool in commands}
    bare = []
    progress(f"run: start-up, {STARTUP_REPEATS} x each wrapper around `true`")
    for _ in range(STARTUP_REPEATS):
        directory = tools.new_directory("true")
        bare.append(_spawn([true], tools.env, directory / "true.log").cpu_s)
        for tool, argv in commands.items():
            directory = tools.new_directory(f"startup-{tool}")
            spawned = _spawn(argv(directory, [true]), tools.env, directory / "wrapper.log")
            wall[tool].append(spawned.wall_s)
            cpu[tool].append(spawned.cpu_s)
    return wall, cpu, statistics.median(bare)


def run(progress: Progress) -> RunBench:
    try:
        duct_version: str | None = version("con-duct")
    except PackageNotFoundError:
        duct_version = None
    duct = _duct_argv() if duct_version else None
    if duct is None:
        progress("run: con-duct not installed (pip install -e '.[bench]'); jobmeter only")
    with tempfile.TemporaryDirectory(prefix="jobmeter-bench-run-") as scratch_dir:
        scratch = Path(scratch_dir)
        with _disk_directory(scratch) as data:
            tools = _Tools(scratch, _environment(scratch), _jobmeter_argv(), duct, data)
            figures = _workloads(tools, progress)
            filesystem = _filesystem(data)
        wall, cpu, true_cpu = _startup(tools, progress)
        fixed = {tool: statistics.median(times) - true_cpu for tool, times in cpu.items()}
        overhead, job_cpu, processes = _overhead(tools, fixed, progress)
    return RunBench(
        duct_version if duct else None,
        filesystem,
        figures,
        overhead,
        job_cpu,
        processes,
        wall,
        cpu,
        true_cpu,
    )


# --- the report ----------------------------------------------------------------------


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value / MIB:.1f} MiB" if unit == "B" else f"{value:.2f} s"


def _error(error: float | None) -> str:
    return "n/a" if error is None else f"{error:+.1%}"


def _overhead_lines(bench: RunBench) -> list[str]:
    lines = [
        f"Wrapper overhead: CPU time of each wrapper around `python -c 'import time; "
        f"time.sleep({OVERHEAD_JOB_S})'`, all runs at once with the bare job "
        f"({bench.overhead_processes} processes on the machine)",
        "  wrapper CPU = os.wait4() of the wrapper (its children included: the job, and duct's "
        "ps at each sample)",
        f"                minus the bare job's CPU ({bench.overhead_job_cpu_s * 1000:.0f} ms)",
        "  per sample  = (wrapper CPU - its CPU around `true`, i.e. start-up and exit) / samples",
        "",
        f"  {'tool':<10}{'interval':>9}{'samples':>9}{'wrapper CPU':>13}{'start+exit':>12}"
        f"{'per sample':>12}",
    ]
    lines.extend(
        f"  {c.tool:<10}{c.interval_s:>8g}s{c.samples:>9}{c.cpu_s:>12.3f}s"
        f"{c.fixed_cpu_s:>11.3f}s{c.per_sample_s * 1000:>10.2f}ms"
        for c in bench.overhead
    )
    for interval in OVERHEAD_INTERVALS:
        tools = {c.tool: c for c in bench.overhead if c.interval_s == interval}
        if "duct" in tools and tools["duct"].per_sample_s > 0 and tools["duct"].cpu_s > 0:
            ours, theirs = tools["jobmeter"], tools["duct"]
            total = ours.cpu_s / theirs.cpu_s
            lines.append(
                f"  at {interval:g} s, jobmeter / con-duct: "
                f"{ours.per_sample_s / theirs.per_sample_s:.2f} per sample, "
                f"{total:.2f} in total (target <= {TOTAL_CPU_LIMIT:.2f})  "
                f"{pass_miss(total <= TOTAL_CPU_LIMIT)}"
            )
    marginal = {t: bench.marginal_per_sample_s(t) for t in ("jobmeter", "duct")}
    shown = ", ".join(f"{t} {m * 1000:.2f} ms" for t, m in marginal.items() if m is not None)
    lines.append(f"  marginal CPU per sample (0.1 s run - 1 s run) / (extra samples): {shown}")
    ratio = bench.per_sample_ratio()
    if ratio is not None:
        lines.append(
            f"  marginal CPU per sample, jobmeter / con-duct: {ratio:.2f} "
            f"(target <= {PER_SAMPLE_LIMIT:.2f})  {pass_miss(ratio <= PER_SAMPLE_LIMIT)}"
        )
    lines += ["", f"Start-up and exit around `true`, median of {STARTUP_REPEATS}:"]
    for tool, times in bench.startup_wall_s.items():
        name = "jobmeter run -- true" if tool == "jobmeter" else "duct true"
        lines.append(
            f"  {name:<22}{statistics.median(times) * 1000:>6.0f} ms wall (min "
            f"{min(times) * 1000:.0f}){statistics.median(bench.startup_cpu_s[tool]) * 1000:>6.0f}"
            " ms CPU"
        )
    startup = bench.startup_ratio()
    if startup is not None:
        lines.append(
            f"  wall, jobmeter / con-duct: {startup:.2f} (target <= {STARTUP_LIMIT:.2f})  "
            f"{pass_miss(startup <= STARTUP_LIMIT)} (duct execs con-duct: two interpreter "
            "start-ups)"
        )
    return lines


def format_report(bench: RunBench) -> str:
    duct = f"con-duct {bench.duct_version}" if bench.duct_version else "con-duct (not installed)"
    lines = [
        f"jobmeter run vs {duct} (duct) on the same jobs, both at their default 1 s sampling; "
        "each error is against the truth of that tool's own run",
        "",
        f"  {'job':<24}{'figure':<15}{'truth':>11}{'jobmeter':>11}{'error':>8}"
        f"{'con-duct':>11}{'error':>9}  jobmeter within {TOLERANCE:.0%}",
    ]
    lines.extend(
        f"  {f.workload:<24}{f.figure:<15}{_value(f.truth, f.unit):>11}"
        f"{_value(f.jobmeter, f.unit):>11}{_error(f.jobmeter_error):>8}"
        f"{_value(f.duct, f.unit):>11}{_error(f.duct_error):>9}  {pass_miss(f.passed)}"
        for f in bench.figures
    )
    lines += ["", "  truth | jobmeter figure | con-duct figure:"]
    lines.extend(
        f"    {f.workload}, {f.figure}: {f.truth_source} | {f.jobmeter_field} | {f.duct_field}"
        for f in bench.figures
    )
    drift = [abs(f.truth_duct_run / f.truth - 1) for f in bench.figures if f.truth_duct_run]
    if drift:
        lines.append(
            f"  The truth column is the jobmeter run's; con-duct's run is within {max(drift):.1%}."
        )
    lines.append("")
    shown: set[str] = set()
    for f in bench.figures:
        if f.workload in shown:
            continue
        shown.add(f.workload)
        d = f.details
        lines.append(
            f"  {f.workload}: jobmeter {d['jobmeter_samples']} samples, "
            f"peak_memory_bytes {_value(d['jobmeter_peak_memory_bytes'], 'B')} from "
            f"{d['jobmeter_peak_memory_source']}"
        )
        lines.append(
            f"    sampled RSS {_value(d['jobmeter_peak_rss_sampled_bytes'], 'B')}, sampled PSS "
            f"{_value(d['jobmeter_peak_pss_sampled_bytes'], 'B')}, largest process "
            f"{_value(d['jobmeter_peak_rss_single_process_bytes'], 'B')}, cgroup "
            f"{_value(d['jobmeter_peak_cgroup_bytes'], 'B')}; CPU "
            f"{d['jobmeter_cpu_user_seconds']:.2f} s user + "
            f"{d['jobmeter_cpu_system_seconds']:.2f} s system; written "
            f"{_value(d['jobmeter_written_bytes'], 'B')}"
        )
        if "duct_num_samples" in d:
            lines.append(
                f"    con-duct {d['duct_num_samples']} samples, peak_rss "
                f"{_value(d['duct_peak_rss'], 'B')}, average_pcpu {d['duct_average_pcpu']}, "
                f"wall {d['duct_wall_clock_time']:.2f} s"
            )
        if "truth_baseline_rss" in d:
            lines.append(
                f"    check: 500 MiB + the job's RSS before allocating = "
                f"{_value(500 * MIB + d['truth_baseline_rss'], 'B')}; the spike lasted "
                f"{d['truth_spike_s']:.2f} s (touching the pages, then 0.3 s held)"
            )
        if "truth_rss_sum" in d:
            lines.append(f"    the job's own sum of RSS: {_value(d['truth_rss_sum'], 'B')}")
        if "truth_proc_io_write_bytes" in d:
            lines.append(
                f"    the job's /proc/self/io write_bytes: "
                f"{_value(d['truth_proc_io_write_bytes'], 'B')} "
                f"(a {bench.data_filesystem} file system)"
            )
    return "\n".join([*lines, "", *_overhead_lines(bench)])
