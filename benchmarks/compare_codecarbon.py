"""jobmeter beside codecarbon on one workload: overhead, what each reports, what each reads.

``.venv/bin/python -m benchmarks.compare_codecarbon`` runs ``energy_workload.py``
(``--seconds``, default 20) three ways, ``--repeats`` times each (default 3),
the three ways interleaved within each repeat:

- ``alone``: ``python benchmarks/energy_workload.py``;
- ``codecarbon``: the same ``work()`` inside codecarbon's
  ``OfflineEmissionsTracker`` (``country_iso_code="FRA"``, defaults otherwise),
  run by the interpreter of codecarbon's own virtual environment
  (``--codecarbon-python``, default ``/tmp/cc-venv/bin/python``), import of
  codecarbon included;
- ``jobmeter``: ``jobmeter run --quiet -- python benchmarks/energy_workload.py``
  (``OTEL_METRICS_EXPORTER=none``, as in ``make bench``: no port is opened).

The same is done first with a job of 0 s (``--seconds 0``: one round and the
200 MB fill), which is each tool's start-up and exit alone (``--no-fixed-cost``
skips it). Wall time is the driver's clock around each process and CPU time is
the ``wait4`` usage of the process and everything it waited for, so the tool's
own threads and start-up are in it. Before each run the driver waits (up to
5 min) for 5 s in which the machine is busy less than a tenth of a CPU, and it
records the CPU time other processes used during the run (``others_cpu_s``,
from ``/proc/stat``): figures taken while others ran are marked by it.

Then (``--no-fake-rapl`` skips it) both tools are shown a fake powercap tree laid
out as the kernel lays it out (zones under ``devices/virtual/powercap``, links in
``class/powercap``): a package with core, uncore and dram sub-zones, psys, an
``intel-rapl-mmio`` twin of the package, and a package counter that wraps. Known
joules are added to each zone, and what each tool reports is set beside them:
``jobmeter run``, a ``measure()`` block and ``HostCollector``'s ``hw.energy``
through ``JOBMETER_SYSFS_PATH``, and
codecarbon's ``CPU`` class in its ``intel_rapl`` mode with ``rapl_dir`` (its
tracker has no setting for another sysfs root), also on a flat tree whose dram
zone is a top-level one.

Nothing here is part of ``make bench``. Without codecarbon's virtual environment
the codecarbon parts are skipped with a message. The table is printed and every
figure written as JSON (``--output``, default ``benchmarks/results/codecarbon.json``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
WORKLOAD = BENCH / "energy_workload.py"
BIN = Path(sys.executable).parent
DEFAULT_CC_PYTHON = Path("/tmp/cc-venv/bin/python")
CONFIGS = ("alone", "codecarbon", "jobmeter")
TIMEOUT_S = 600

# The same work() inside codecarbon's tracker; argv: benchmarks dir, seconds, output dir.
CODECARBON_JOB = textwrap.dedent(
    """
    import json, sys, time
    started = time.perf_counter()
    sys.path.insert(0, sys.argv[1])
    import energy_workload
    from codecarbon import OfflineEmissionsTracker
    tracker = OfflineEmissionsTracker(
        country_iso_code="FRA", output_dir=sys.argv[3], log_level="info"
    )
    tracker.start()
    set_up = time.perf_counter() - started
    rounds = energy_workload.rounds_for(float(sys.argv[2]))
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    checksum = energy_workload.work(rounds)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    thread = time.thread_time() - thread
    stop = time.perf_counter()
    tracker.stop()
    stop = time.perf_counter() - stop
    print(json.dumps({"rounds": rounds, "checksum": checksum, "wall_s": wall, "cpu_s": cpu,
                      "thread_cpu_s": thread, "import_and_start_s": set_up, "stop_s": stop}))
    """
)

# codecarbon's CPU class in RAPL mode on fake trees; argv: tests dir, sysfs root, JSON of zones.
# First the kernel-like tree (its rapl_dir the default's form, <root>/class/powercap/intel-rapl/
# subsystem), then a flat one whose dram zone is a top-level zone (intel-rapl:1), each with
# rapl_include_dram=True; CPU.measure_power_and_energy() is what the tracker adds up.
CODECARBON_RAPL = textwrap.dedent(
    """
    import json, logging, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from _support.fake_powercap import FakePowercap, FakeZone
    from codecarbon.core.cpu import is_rapl_available
    from codecarbon.external.hardware import CPU
    from codecarbon.external.logger import logger
    lines = []
    class Keep(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if "RAPL" in message and not message.startswith("RAPLFile("):
                lines.append(f"{record.levelname} {message.strip()}")
    logger.addHandler(Keep())
    logger.setLevel(logging.DEBUG)
    for handler in logger.handlers:
        if not isinstance(handler, Keep):
            handler.setLevel(logging.WARNING)

    def measure(rapl_dir, root, zones):
        lines.clear()
        cpu = CPU(output_dir=tempfile.gettempdir(), mode="intel_rapl", model="fake", tdp=None,
                  rapl_dir=rapl_dir, rapl_include_dram=True)
        cpu.start()
        for zone in zones:
            FakeZone(Path(zone["path"]), zone["max_uj"], zone["now_uj"]).add(zone["joules"])
        _, energy = cpu.measure_power_and_energy(1.0)
        details = cpu._intel_interface.get_static_cpu_details()
        return {
            "is_rapl_available": is_rapl_available(rapl_dir),
            "files": [f.path.replace(root, "<sysfs>") for f in cpu._intel_interface._rapl_files],
            "details_joules": {k: v * 3.6e6 for k, v in details.items() if "Energy" in k
                               or "Delta" not in k and "Power" not in k},
            "cpu_joules": energy.kWh * 3.6e6,
            "log": [line.replace(root, "<sysfs>") for line in lines],
        }

    root, zones = sys.argv[2], json.loads(sys.argv[3])
    found = {"kernel_layout": measure(f"{root}/class/powercap/intel-rapl/subsystem", root, zones)}
    flat = Path(root).parent / "flat-sysfs"
    tree = FakePowercap(flat)
    tree.zone("intel-rapl:0", "package-0")
    tree.zone("intel-rapl:1", "dram")
    flat_zones = [
        {"path": str(z.path), "max_uj": z.max_range_uj, "now_uj": z.value_uj, "joules": j}
        for z, j in ((tree.zones["intel-rapl:0"], 10.0), (tree.zones["intel-rapl:1"], 5.0))
    ]
    found["top_level_dram"] = measure(str(tree.powercap), str(flat), flat_zones)
    print(json.dumps(found))
    """
)

# Advances the fake counters from inside a `jobmeter run`; argv: tests dir, JSON of additions.
ADVANCE_JOB = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from _support.fake_powercap import FakeZone
    zones = [FakeZone(Path(z["path"]), z["max_uj"], z["now_uj"]) for z in json.loads(sys.argv[2])]
    joules = [z["joules"] for z in json.loads(sys.argv[2])]
    time.sleep(1.0)  # after jobmeter's first sample
    for _ in range(10):
        for zone, total in zip(zones, joules):
            zone.add(total / 10)
        time.sleep(0.05)
    time.sleep(1.0)  # before its last
    """
)


# --- running and timing --------------------------------------------------------------


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``), all CPUs together."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit_s: float = 300.0, busy_cores: float = 0.1) -> float:
    """Wait (at most ``limit_s``) for 5 s in which the machine is busy under ``busy_cores``."""
    deadline = time.monotonic() + limit_s
    while True:
        before = _busy_s()
        time.sleep(5.0)
        busy = (_busy_s() - before) / 5.0
        if busy < busy_cores or time.monotonic() > deadline:
            return busy


def _spawn(
    argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> tuple[float, float, str]:
    """Run ``argv``; its wall and CPU seconds (``wait4``: it and what it waited for), stdout."""
    started = time.perf_counter()
    with open(log, "wb") as err, tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{argv!r} exited {process.returncode}:\n{tail}")
    return wall, usage.ru_utime + usage.ru_stime, stdout


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JOBMETER_"))}
    env["OTEL_METRICS_EXPORTER"] = "none"
    return env


def _jobmeter() -> list[str]:
    script = BIN / "jobmeter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobmeter"]


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            found: dict[str, Any] = json.loads(line)
            return found
    raise RuntimeError(f"no JSON line in {stdout!r}")


def _run_summary(runs: Path) -> dict[str, Any]:
    found = sorted(runs.glob("*/run.json"))
    if not found:
        raise RuntimeError(f"jobmeter run wrote no run.json under {runs}")
    summary: dict[str, Any] = json.loads(found[-1].read_text())["summary"]
    return summary


def _emissions_row(directory: Path) -> dict[str, Any]:
    with open(directory / "emissions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keep = ("duration", "cpu_power", "ram_power", "gpu_power", "cpu_energy", "ram_energy",
            "gpu_energy", "energy_consumed", "emissions", "cpu_model", "tracking_mode",
            "codecarbon_version")  # fmt: skip
    return {key: rows[-1].get(key) for key in keep}


_LOG_MARKS = ("WARNING", "Linux OS detected", "CPU Tracking Method", "RAM Tracking Method",
              "RAM Power", "Delta energy consumed for CPU")  # fmt: skip


def _codecarbon_lines(log: Path) -> list[str]:
    """codecarbon's lines that say which CPU mode and which watts it chose."""
    lines = log.read_text(errors="replace").splitlines()
    return [line.strip() for line in lines if any(mark in line for mark in _LOG_MARKS)]


def run_once(config: str, scratch: Path, seconds: float, cc_python: Path) -> dict[str, Any]:
    """One run of ``config``; what it cost and what it reported."""
    directory = scratch / f"{config}-{len(list(scratch.glob(f'{config}-*')))}"
    directory.mkdir()
    env, log = _environment(), directory / "stderr.log"
    workload = [sys.executable, str(WORKLOAD), "--seconds", str(seconds)]
    record: dict[str, Any] = {"config": config, "busy_before_cores": wait_for_quiet()}
    machine_busy = _busy_s()
    if config == "alone":
        wall, cpu, out = _spawn(workload, env, log)
    elif config == "codecarbon":
        argv = [str(cc_python), "-c", CODECARBON_JOB, str(BENCH), str(seconds), str(directory)]
        wall, cpu, out = _spawn(argv, env, log, cwd=directory)  # no ./.codecarbon.config
        record["emissions_csv"] = _emissions_row(directory)
        record["log"] = _codecarbon_lines(log)
    else:
        runs = directory / "runs"
        argv = [*_jobmeter(), "run", "--quiet", "--dir", str(runs), "--", *workload]
        wall, cpu, out = _spawn(argv, env, log)
        summary = _run_summary(runs)
        record["run_json"] = {key: summary.get(key) for key in (
            "wall_seconds", "cpu_user_seconds", "cpu_system_seconds", "energy_joules", "samples",
        )}  # fmt: skip
    machine_busy = _busy_s() - machine_busy
    # CPU time other processes of the machine used during the run: not ours, a disturbance.
    record["others_cpu_s"] = max(machine_busy - cpu, 0.0)
    record.update(wall_s=wall, cpu_s=cpu, workload=_last_json(out))
    return record


def overhead(repeats: int, seconds: float, cc_python: Path | None) -> dict[str, Any]:
    """Each config ``repeats`` times, interleaved; medians of wall and CPU."""
    configs = [c for c in CONFIGS if c != "codecarbon" or cc_python is not None]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="compare-codecarbon-") as scratch:
        for repeat in range(repeats):
            for config in configs:
                print(f"  repeat {repeat + 1}/{repeats}: {config} ...", file=sys.stderr)
                runs.append(run_once(config, Path(scratch), seconds, cc_python or Path()))
    medians = {}
    for config in configs:
        mine = [r for r in runs if r["config"] == config]
        medians[config] = {
            "wall_s": statistics.median(r["wall_s"] for r in mine),
            "cpu_s": statistics.median(r["cpu_s"] for r in mine),
            "work_wall_s": statistics.median(r["workload"]["wall_s"] for r in mine),
            "work_cpu_s": statistics.median(r["workload"]["cpu_s"] for r in mine),
            "others_cpu_s": statistics.median(r["others_cpu_s"] for r in mine),
            # What is not the work: start-up and exit (wall), and every CPU second but the
            # work's own thread (the tool's threads and processes, the interpreter's start).
            "outside_work_wall_s": statistics.median(
                r["wall_s"] - r["workload"]["wall_s"] for r in mine
            ),
            "not_work_cpu_s": statistics.median(
                r["cpu_s"] - r["workload"]["thread_cpu_s"] for r in mine
            ),
        }
    checksums = {r["workload"]["checksum"] for r in runs}
    if len(checksums) != 1:
        raise RuntimeError(f"the workload's checksum differs between runs: {checksums}")
    return {"runs": runs, "medians": medians}


# --- a fake powercap tree ------------------------------------------------------------

#: (entry, control type directory, parent entry or None, name, joules added, start µJ)
MAX_UJ = 262_143_328_850
ZONES: tuple[tuple[str, str, str | None, str, float, int], ...] = (
    ("intel-rapl:0", "intel-rapl", None, "package-0", 30.0, MAX_UJ - 5_000_000),  # wraps
    ("intel-rapl:0:0", "intel-rapl", "intel-rapl:0", "core", 18.0, 1_000_000),
    ("intel-rapl:0:1", "intel-rapl", "intel-rapl:0", "uncore", 6.0, 1_000_000),
    ("intel-rapl:0:2", "intel-rapl", "intel-rapl:0", "dram", 4.0, 1_000_000),
    ("intel-rapl:1", "intel-rapl", None, "psys", 45.0, 1_000_000),
    ("intel-rapl-mmio:0", "intel-rapl-mmio", None, "package-0", 30.0, MAX_UJ - 5_000_000),
)


def build_tree(root: Path) -> list[dict[str, Any]]:
    """The kernel's layout: zones nested under devices/virtual/powercap, linked from class/."""
    virtual = root / "devices" / "virtual" / "powercap"
    powercap = root / "class" / "powercap"
    powercap.mkdir(parents=True)
    paths: dict[str, Path] = {}
    zones = []
    for entry, control, parent, name, joules, start in ZONES:
        base = paths[parent] if parent else virtual / control
        path = paths[entry] = base / entry
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")
        (path / "enabled").write_text("1\n")
        (path / "energy_uj").write_text(f"{start:020d}\n")
        (powercap / entry).symlink_to(path)
        zones.append({"entry": entry, "name": name, "path": str(path), "max_uj": MAX_UJ,
                      "now_uj": start, "joules": joules})  # fmt: skip
    for control in ("intel-rapl", "intel-rapl-mmio"):
        (powercap / control).symlink_to(virtual / control)
        (virtual / control / "subsystem").symlink_to(powercap)
    return zones


def fake_rapl(cc_python: Path | None) -> dict[str, Any]:
    """What each tool reports from a fake tree (a fresh one each) advanced by known joules."""
    tests = str(ROOT / "tests")
    found: dict[str, Any] = {"added_joules": {z[0]: z[4] for z in ZONES}}
    with tempfile.TemporaryDirectory(prefix="compare-rapl-") as scratch:
        # jobmeter run, the counters advanced by the command it runs.
        root = Path(scratch) / "run-sysfs"
        zones = build_tree(root)
        env = {**_environment(), "JOBMETER_SYSFS_PATH": str(root), "JOBMETER_PRICE_PER_KWH": "0.25",
               "JOBMETER_CURRENCY": "EUR"}  # fmt: skip
        runs = Path(scratch) / "runs"
        argv = [*_jobmeter(), "run", "--interval", "0.2", "--dir", str(runs), "--",
                sys.executable, "-c", ADVANCE_JOB, tests, json.dumps(zones)]  # fmt: skip
        log = Path(scratch) / "run.log"
        _spawn(argv, env, log)
        summary_lines = [
            line.strip() for line in log.read_text().splitlines()
            if line.strip().startswith(("energy", "cost"))
        ]  # fmt: skip
        found["jobmeter_run"] = {
            "energy_joules": _run_summary(runs).get("energy_joules"),
            "summary_lines": summary_lines,
            "package_wrapped": _wrapped(zones),
        }
        root = Path(scratch) / "block-sysfs"
        zones = build_tree(root)
        found["jobmeter_block"] = _block_energy(root, zones)
        if cc_python is not None:
            root = Path(scratch) / "codecarbon-sysfs"
            zones = build_tree(root)
            argv = [str(cc_python), "-c", CODECARBON_RAPL, tests, str(root), json.dumps(zones)]
            _, _, out = _spawn(argv, _environment(), Path(scratch) / "cc.log")
            found["codecarbon_intel_rapl"] = _last_json(out)
            found["codecarbon_intel_rapl"]["package_wrapped"] = _wrapped(zones)
    return found


def _advance(zone: dict[str, Any]) -> None:
    """Add the zone's joules to its counter, as tests/_support/fake_powercap.py's FakeZone does:
    in place at offset 0, fixed width, wrapping past the maximum."""
    value = (int(zone["now_uj"]) + round(zone["joules"] * 1e6)) % (int(zone["max_uj"]) + 1)
    fd = os.open(Path(zone["path"]) / "energy_uj", os.O_WRONLY)
    try:
        os.pwrite(fd, f"{value:020d}\n".encode(), 0)
    finally:
        os.close(fd)
    zone["now_uj"] = value


def _wrapped(zones: list[dict[str, Any]]) -> bool:
    """Whether the package counter is now below where it started (it went past its maximum)."""
    package = zones[0]
    return int((Path(package["path"]) / "energy_uj").read_text()) < int(package["now_uj"])


def _block_energy(root: Path, zones: list[dict[str, Any]]) -> dict[str, Any]:
    """``jobmeter.operation.energy`` of a ``measure()`` block that the zones rose during, and
    ``HostCollector``'s ``hw.energy`` of each zone, collected before and after it."""
    os.environ["JOBMETER_SYSFS_PATH"] = str(root)
    from opentelemetry.sdk.metrics.export import NumberDataPoint

    import jobmeter
    from jobmeter._energy import FRESH_S
    from jobmeter.testing import in_memory

    with in_memory(service_name="compare-codecarbon") as metrics:
        jobmeter.HostCollector()
        metrics.metrics()  # a first collection: the host's counters start from here
        ops = jobmeter.MetricsCollector("compare")
        with ops.measure("block"):
            for zone in zones:
                _advance(zone)
            time.sleep(FRESH_S * 2)
        found: dict[str, Any] = {
            hw: metrics.value("jobmeter.operation.energy", {"hw.type": hw})
            for hw in ("cpu", "dram", "gpu")
            if metrics.points("jobmeter.operation.energy", {"hw.type": hw})
        }
        found["host_hw_energy"] = [
            {**dict(point.attributes or {}), "joules": point.value}
            for point in metrics.points("hw.energy")
            if isinstance(point, NumberDataPoint)
        ]
        return found


# --- the report ----------------------------------------------------------------------


def _energy_text(record: dict[str, Any]) -> str:
    if record["config"] == "codecarbon":
        row = {k: float(v) for k, v in record["emissions_csv"].items() if _number(v)}
        kwh_to_j = 3.6e6
        return (
            f"{row['energy_consumed'] * kwh_to_j:.0f} J "
            f"(cpu {row['cpu_energy'] * kwh_to_j:.0f} J at {row['cpu_power']:.2f} W, "
            f"ram {row['ram_energy'] * kwh_to_j:.0f} J at {row['ram_power']:.1f} W), "
            f"{row['emissions'] * 1000:.4f} g CO2eq"
        )
    if record["config"] == "jobmeter":
        energy = record["run_json"]["energy_joules"]
        return "none (energy_joules null)" if not energy else json.dumps(energy)
    return "-"


def _number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _print_medians(title: str, medians: dict[str, dict[str, float]]) -> None:
    alone = medians["alone"]
    print(f"\n{title}")
    print(
        f"{'config':<12}{'wall s':>8}{'CPU s':>8}{'wall +s':>9}{'CPU +s':>8}"
        f"{'work wall':>10}{'work CPU':>9}{'outside wall':>13}{'not-work CPU':>13}"
        f"{'others CPU':>11}"
    )
    for config, m in medians.items():
        print(
            f"{config:<12}{m['wall_s']:>8.2f}{m['cpu_s']:>8.2f}"
            f"{m['wall_s'] - alone['wall_s']:>+9.2f}{m['cpu_s'] - alone['cpu_s']:>+8.2f}"
            f"{m['work_wall_s']:>10.2f}{m['work_cpu_s']:>9.2f}"
            f"{m['outside_work_wall_s']:>13.3f}{m['not_work_cpu_s']:>13.3f}"
            f"{m['others_cpu_s']:>11.2f}"
        )


def print_report(result: dict[str, Any]) -> None:
    """The medians, each run, and what each tool said."""
    machine = result["machine"]
    head = f"{machine['cpu_model']}, {machine['cpus']} CPUs, {result['repeats']} repeats (median)"
    if "fixed_cost" in result:
        _print_medians(f"{head}; job of 0 s (start-up and exit)", result["fixed_cost"]["medians"])
    _print_medians(f"{head}; job of {result['seconds']:g} s", result["overhead"]["medians"])
    print("\nenergy reported, each run:")
    for record in result["overhead"]["runs"]:
        wall, cpu, others = record["wall_s"], record["cpu_s"], record["others_cpu_s"]
        print(
            f"  {record['config']:<11} wall {wall:6.2f} s  CPU {cpu:6.2f} s  "
            f"(others {others:5.2f} s)  {_energy_text(record)}"
        )
    cc = [r for r in result["overhead"]["runs"] if r["config"] == "codecarbon"]
    if cc:
        print("\ncodecarbon's log (first run):")
        for line in cc[0]["log"]:
            print(f"  {line}")
    fake = result.get("fake_rapl")
    if fake:
        print("\nfake powercap tree, joules added:", json.dumps(fake["added_joules"]))
        run = fake["jobmeter_run"]
        print(
            f"  jobmeter run energy_joules: {json.dumps(run['energy_joules'])} "
            f"(package wrapped: {run['package_wrapped']})"
        )
        for line in fake["jobmeter_run"]["summary_lines"]:
            print(f"    {line}")
        block = {k: v for k, v in fake["jobmeter_block"].items() if k != "host_hw_energy"}
        print("  jobmeter measure() block:", json.dumps(block))
        for point in fake["jobmeter_block"].get("host_hw_energy", []):
            print("  HostCollector hw.energy:", json.dumps(point))
        if "codecarbon_intel_rapl" in fake:
            cc_rapl = fake["codecarbon_intel_rapl"]
            print(f"  codecarbon CPU(intel_rapl), package wrapped: {cc_rapl['package_wrapped']}")
            for case in ("kernel_layout", "top_level_dram"):
                found = cc_rapl[case]
                print(f"  {case}: CPU energy {found['cpu_joules']:.6f} J, files {found['files']}")
                print(f"    details (J): {found['details_joules']}")
                for line in found["log"]:
                    print(f"    {line}")


def _machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "powercap": Path("/sys/class/powercap").exists(),
    }


def _versions(cc_python: Path | None) -> dict[str, str | None]:
    from jobmeter import __version__

    found: dict[str, str | None] = {"jobmeter": __version__, "codecarbon": None}
    if cc_python is not None:
        out = subprocess.run(
            [str(cc_python), "-c", "import codecarbon; print(codecarbon.__version__)"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        found["codecarbon"] = out.stdout.strip() or None
    return found


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="workload length (nominal)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--codecarbon-python", type=Path, default=DEFAULT_CC_PYTHON)
    parser.add_argument("--no-fake-rapl", dest="fake_rapl", action="store_false")
    parser.add_argument(
        "--no-fixed-cost",
        dest="fixed_cost",
        action="store_false",
        help="skip the runs of a 0 s job (each tool's start-up and exit)",
    )
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "codecarbon.json")
    args = parser.parse_args(argv)
    cc_python: Path | None = args.codecarbon_python
    if cc_python is None or not cc_python.exists():
        print(f"codecarbon: {args.codecarbon_python} is missing, so the codecarbon parts are "
              "skipped (python3 -m venv /tmp/cc-venv && /tmp/cc-venv/bin/pip install "
              "codecarbon==3.3.2)", file=sys.stderr)  # fmt: skip
        cc_python = None
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "versions": _versions(cc_python),
        "seconds": args.seconds,
        "repeats": args.repeats,
    }
    print("overhead runs (one at a time):", file=sys.stderr)
    if args.fixed_cost:
        result["fixed_cost"] = overhead(args.repeats, 0.0, cc_python)
    result["overhead"] = overhead(args.repeats, args.seconds, cc_python)
    if args.fake_rapl:
        result["fake_rapl"] = fake_rapl(cc_python)
    print_report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
