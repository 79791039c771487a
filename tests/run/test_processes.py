"""The per-process view of `jobmeter run`: each sample's heaviest processes, checked against truth.

A real run of a process family: a parent that starts a child holding 120 MiB
(touched, private) and a child busy on CPU for 1.5 s. The children write what
they know of themselves (VmRSS read from /proc/self/status, their own CPU time)
and the samples' figures are held to that; names are the executables', never
their arguments unless ``--record-args``; ``--processes N`` bounds the list
and sums the rest; the summary's ``average_rss_bytes`` is the time-weighted
mean the test computes from usage.jsonl; the report names the big child.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jobmeter.run._processes import DEFAULT_PROCESSES

MIB = 2**20
MARKER = "secret-token-4f1d"  # an argument of every process: never stored without --record-args

BIG = textwrap.dedent(
    """
    import json, os, sys, time
    held = bytearray(120 * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    with open("/proc/self/status") as status:
        rss = int(status.read().split("VmRSS:")[1].split()[0]) * 1024
    truth = {"pid": os.getpid(), "t": time.time(), "vmrss": rss}
    with open(sys.argv[1] + "/big.json", "w") as out:
        json.dump(truth, out)
    time.sleep(1.5)
    """
)
BUSY = textwrap.dedent(
    """
    import json, os, sys, time
    start, cpu = time.time(), time.process_time()
    while time.time() - start < 1.5:
        pass
    truth = {"pid": os.getpid(), "start": start, "end": time.time(),
             "cpu": time.process_time() - cpu}
    with open(sys.argv[1] + "/busy.json", "w") as out:
        json.dump(truth, out)
    """
)
PARENT = textwrap.dedent(
    f"""
    import json, os, subprocess, sys
    truth, marker = sys.argv[1], sys.argv[2]
    children = [subprocess.Popen([sys.executable, "-c", code, truth, marker])
                for code in ({BIG!r}, {BUSY!r})]
    for child in children:
        child.wait()
    with open(truth + "/parent.json", "w") as out:
        json.dump({{"pid": os.getpid()}}, out)
    """
)


def _jobmeter(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBMETER_RUN_DIR": str(tmp_path / "runs"),
           "OTEL_METRICS_EXPORTER": "none"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "jobmeter", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def _run_dir(tmp_path: Path) -> Path:
    (run,) = [path for path in (tmp_path / "runs").iterdir() if not path.name.startswith(".")]
    return run


def _samples(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]


def _listed(samples: list[dict[str, Any]], pid: int) -> list[tuple[float, dict[str, Any]]]:
    """(t, entry) of each sample whose top processes list ``pid``."""
    return [(s["t"], p) for s in samples for p in s["top_processes"] or [] if p["pid"] == pid]


def _names() -> set[str]:
    """What the kernel names a process exec'd from this interpreter: its file's name."""
    return {
        os.path.basename(sys.executable)[:15],
        os.path.basename(os.path.realpath(sys.executable)),
    }


class Family:
    """One run of the family, its run directory and what the processes said of themselves."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        self.tmp = tmp_path
        truth = tmp_path / "truth"
        truth.mkdir()
        script = tmp_path / "family.py"
        script.write_text(PARENT)
        self.script = script
        done = _jobmeter(tmp_path, "run", "-q", "-i", "0.1", "--no-capture", *options, "--",
                         sys.executable, str(script), str(truth), MARKER)  # fmt: skip
        assert done.returncode == 0, done.stderr
        self.run = _run_dir(tmp_path)
        self.samples = _samples(self.run)
        self.big, self.busy, self.parent = (
            json.loads((truth / f"{name}.json").read_text()) for name in ("big", "busy", "parent")
        )

    def report(self) -> dict[str, Any]:
        done = _jobmeter(self.tmp, "report", "--json")
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Family:
    """The family under the default options."""
    return Family(tmp_path_factory.mktemp("family"))


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Family:
    """The family with one process listed per sample, and its arguments recorded."""
    return Family(tmp_path_factory.mktemp("bounded"), "--processes", "1", "--record-args")


def test_the_big_childs_rss_is_its_own_vmrss_and_its_pss_close(family: Family) -> None:
    """Once it has touched its 120 MiB, every sample lists the big child at its own VmRSS."""
    truth = family.big
    # From its reading of VmRSS until it exits, 1.5 s later (its exit frees the memory).
    held = [(t, p) for t, p in _listed(family.samples, truth["pid"])
            if truth["t"] < t < truth["t"] + 1.4]  # fmt: skip
    assert len(held) >= 5  # it sleeps 1.5 s after reading its VmRSS; samples every 0.1 s
    for _, process in held:
        assert abs(process["rss"] - truth["vmrss"]) <= 4 * MIB, (process, truth)
        # Its 120 MiB are its own: PSS counts them whole, and only shared pages less.
        assert 120 * MIB <= process["pss"] <= process["rss"]
        assert process["hwm"] >= process["rss"]


def test_the_busy_child_uses_a_cpu_and_the_others_none(family: Family) -> None:
    """CPU share since the sample before, in percent of one CPU, against the child's own time."""
    busy = family.busy
    shares = [p["cpu_percent"] for t, p in _listed(family.samples, busy["pid"])[1:]
              if t <= busy["end"]]  # fmt: skip
    assert len(shares) >= 5
    own = busy["cpu"] / (busy["end"] - busy["start"]) * 100  # the share it had of a CPU
    if own > 70:  # it had the CPU (a busy machine shares it): the samples say so
        assert statistics.median(shares) > 50, shares
    assert abs(statistics.mean(shares) - own) < 30, (shares, own)
    # The CPU seconds last seen: its own process time, less what ran after that sample.
    last = _listed(family.samples, busy["pid"])[-1][1]
    assert busy["cpu"] - 0.3 <= last["cpu_seconds"] <= busy["cpu"] + 0.05
    # The parent waits once both children run, and the big child sleeps once its memory is
    # touched.
    idle = [p["cpu_percent"] for t, p in _listed(family.samples, family.parent["pid"])
            if t > busy["start"] + 0.15]  # fmt: skip
    idle += [p["cpu_percent"] for t, p in _listed(family.samples, family.big["pid"])
             if t > family.big["t"] + 0.15]  # fmt: skip
    assert idle
    assert max(idle) < 15, idle  # one 10 ms tick over a 0.1 s sample is 10 %
    assert statistics.mean(idle) < 3, idle


def test_names_are_executables_and_no_argument_is_stored(family: Family) -> None:
    listed = [p for s in family.samples for p in s["top_processes"] or []]
    pids = {p["pid"] for p in listed}
    assert {family.big["pid"], family.busy["pid"], family.parent["pid"]} <= pids
    # The parent's pid may be listed under the launcher's shell's name before its exec.
    named = {p["name"] for p in listed if p["pid"] in (family.big["pid"], family.busy["pid"])}
    assert named <= _names(), named
    assert all("args" not in p for p in listed)
    text = (family.run / "usage.jsonl").read_text() + (family.run / "run.json").read_text()
    assert MARKER not in text
    assert str(family.script) not in text


def test_the_list_is_bounded_and_the_rest_summed(bounded: Family) -> None:
    """--processes 1: one process listed, the others one entry whose figures are theirs."""
    several = [s for s in bounded.samples if s["processes"] > 1]
    assert len(several) >= 5
    for sample in bounded.samples:
        assert len(sample["top_processes"]) == min(sample["processes"], 1)
    for sample in several:
        (top,) = sample["top_processes"]
        rest = sample["other_processes"]
        assert rest["count"] == sample["processes"] - 1
        assert rest["rss"] == sample["rss"] - top["rss"]  # the tree's sum less the one listed
        assert rest["pss"] == sample["pss"] - top["pss"]
    held = [s for s in several if bounded.big["t"] < s["t"] < bounded.big["t"] + 1.4]
    assert held
    assert all(s["top_processes"][0]["pid"] == bounded.big["pid"] for s in held)


def test_with_record_args_the_listed_processes_have_their_command_lines(bounded: Family) -> None:
    listed = [p for s in bounded.samples for p in s["top_processes"]]
    big = [p for p in listed if p["pid"] == bounded.big["pid"]]
    assert big
    (args,) = {tuple(p["args"]) for p in big}
    assert args[0] == sys.executable
    assert args[-2:] == (str(bounded.tmp / "truth"), MARKER)


def test_average_rss_is_the_time_weighted_mean_of_the_samples(family: Family) -> None:
    """The trapezoids under the tree's RSS between samples, over the samples' time span."""
    points = sorted((s["t"], s["rss"]) for s in family.samples)
    area = sum((r0 + r1) / 2 * (t1 - t0) for (t0, r0), (t1, r1) in itertools.pairwise(points))
    expected = area / (points[-1][0] - points[0][0])
    summary = json.loads((family.run / "run.json").read_text())["summary"]
    assert abs(summary["average_rss_bytes"] - expected) <= 1
    # Most of the run holds the big child: the mean is above its 120 MiB less the start.
    assert 60 * MIB < summary["average_rss_bytes"] < summary["peak_rss_sampled_bytes"]
    report = family.report()
    assert report["figures"]["average_rss_bytes"] == summary["average_rss_bytes"]


def test_the_report_names_the_big_child_heaviest(family: Family) -> None:
    report = family.report()
    heaviest = report["processes"][0]
    assert heaviest["pid"] == family.big["pid"]
    assert heaviest["name"] in _names()
    assert heaviest["peak_rss_bytes"] >= family.big["vmrss"] - 4 * MIB
    assert heaviest["peak_pss_bytes"] >= 120 * MIB
    busy = next(p for p in report["processes"] if p["pid"] == family.busy["pid"])
    assert busy["cpu_seconds"] == max(p["cpu_seconds"] for p in report["processes"])
    assert report["processes_seen"] >= 3
    done = _jobmeter(family.tmp, "report")
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("heaviest processes by peak RSS", 1)[1].splitlines()
    header, *rows = [line.split() for line in table[1:] if line.strip() and line[0] != "─"]
    assert header[:3] == ["process", "pid", "peak"]
    assert rows[0][:2] == [heaviest["name"], str(family.big["pid"])]


def test_a_command_shorter_than_an_interval_is_listed_in_the_last_sample(tmp_path: Path) -> None:
    """It ended before the second sample: the last one lists it as reaped, with its CPU time."""
    pid_file = tmp_path / "pid"
    code = f"import os; open({str(pid_file)!r}, 'w').write(str(os.getpid()))"
    done = _jobmeter(tmp_path, "run", "-q", "-i", "5", "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    samples = _samples(_run_dir(tmp_path))
    pid = int(pid_file.read_text())
    (ended,) = [p for p in samples[-1]["ended_processes"] if p["pid"] == pid]
    assert ended["name"] in _names()
    assert ended["cpu_seconds"] >= 0
    assert samples[-1]["processes"] == 0
    report = _jobmeter(tmp_path, "report", "--json")
    assert pid in [p["pid"] for p in json.loads(report.stdout)["processes"]]


def test_processes_0_lists_none(tmp_path: Path) -> None:
    done = _jobmeter(tmp_path, "run", "-q", "-i", "0.1", "--processes", "0", "--",
                     sys.executable, "-c", "import time; time.sleep(0.3)")  # fmt: skip
    assert done.returncode == 0, done.stderr
    samples = _samples(_run_dir(tmp_path))
    assert len(samples) >= 2
    for sample in samples:
        assert sample["top_processes"] is None
        assert sample["other_processes"] is None
        assert sample["ended_processes"] is None
    report = json.loads(_jobmeter(tmp_path, "report", "--json").stdout)
    assert report["processes"] == []
    assert "heaviest processes" not in _jobmeter(tmp_path, "report").stdout


def test_a_run_block_lists_its_own_process(tmp_path: Path) -> None:
    """jobmeter.Run samples the program itself: its own pid is listed, under its name."""
    code = textwrap.dedent(
        f"""
        import os, time, jobmeter
        with jobmeter.Run("self", interval=0.1, directory={str(tmp_path / "runs")!r}) as run:
            time.sleep(0.3)
        print(os.getpid())
        """
    )
    env = {**os.environ, "OTEL_METRICS_EXPORTER": "none"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    samples = _samples(_run_dir(tmp_path))
    listed = _listed(samples, pid)
    assert len(listed) == len(samples)
    assert {p["name"] for _, p in listed} <= _names()


def test_the_cli_default_is_the_samplers() -> None:
    from jobmeter.cli._run_command import RunArguments

    assert RunArguments().processes == DEFAULT_PROCESSES


@pytest.mark.parametrize("processes", [-1, 2.5, True])
def test_a_wrong_processes_argument_raises_before_anything_runs(
    tmp_path: Path, processes: object
) -> None:
    from jobmeter.run import RunOptions, run_command

    marker = tmp_path / "ran"
    options = RunOptions(output=tmp_path / "runs", processes=processes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="processes must be a whole number"):
        run_command(["touch", str(marker)], options)
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()


def test_a_summary_without_average_rss_gets_it_from_the_samples(
    family: Family, tmp_path: Path
) -> None:
    """A run recorded before average_rss_bytes existed: the report computes it from usage.jsonl."""
    copy = tmp_path / "runs" / family.run.name
    shutil.copytree(family.run, copy)
    record = json.loads((copy / "run.json").read_text())
    recorded = record["summary"].pop("average_rss_bytes")
    (copy / "run.json").write_text(json.dumps(record))
    report = json.loads(_jobmeter(tmp_path, "report", "--json").stdout)
    assert abs(report["figures"]["average_rss_bytes"] - recorded) <= 1
