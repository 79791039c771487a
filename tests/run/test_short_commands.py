"""Short commands get their own peak memory and CPU, not the wrapper's or the launcher's.

Ground truth is the command's own ``ru_maxrss`` measured another way
(``_support.maxrss``: GNU time, else a shell's asynchronous child reaped by a
subreaper) and the command's own ``getrusage(RUSAGE_SELF)``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from _support.maxrss import forked_peak_rss_kib, peak_rss_kib

KIB = 1024
MIB = 1024 * KIB
TRUE = "/bin/true"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "OTEL_METRICS_EXPORTER": "none", **extra}


def _jobmeter(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
              **run: Any) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--no-metrics",
         "--dir", str(tmp_path / "runs"), *args],
        env=env or _env(tmp_path), capture_output=True, text=True, timeout=120, **run,
    )  # fmt: skip


def _summary(tmp_path: Path) -> dict[str, Any]:
    (run,) = (tmp_path / "runs").iterdir()
    summary: dict[str, Any] = json.loads((run / "run.json").read_text())["summary"]
    return summary


def _direct(tmp_path: Path) -> dict[str, str]:
    """No cat and no dash on the wrapper's PATH: its launcher probe cannot run, so the
    command is spawned directly, as on a machine without a usable shell."""
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    return _env(tmp_path, PATH=str(empty))


def test_true_reports_its_own_peak(tmp_path: Path) -> None:
    """Regression: `true` showed 16 KiB from the samples, GNU time about 1 MB."""
    done = _jobmeter(tmp_path, "--", TRUE)
    assert done.returncode == 0, done.stderr
    summary = _summary(tmp_path)
    truth = peak_rss_kib([TRUE]) * KIB
    assert abs(summary["peak_memory_bytes"] - truth) <= 512 * KIB, (summary, truth)
    assert summary["peak_memory_source"] == "kernel (largest process's peak RSS)"


def test_python_pass_reports_its_own_peak(tmp_path: Path) -> None:
    """Regression: `python -c "import json"` showed 2.3 MiB, its own peak is about 10 MB."""
    done = _jobmeter(tmp_path, "--", sys.executable, "-c", "pass")
    assert done.returncode == 0, done.stderr
    truth = peak_rss_kib([sys.executable, "-c", "pass"]) * KIB
    assert _summary(tmp_path)["peak_memory_bytes"] == pytest.approx(truth, rel=0.25)


def test_the_ground_truth_helper_agrees_with_gnu_time() -> None:
    """The fallback of _support.maxrss measures what time(1) does (where both exist)."""
    argv = [sys.executable, "-c", "pass"]
    assert forked_peak_rss_kib(argv) == pytest.approx(peak_rss_kib(argv), rel=0.25)


def test_a_spike_freed_before_exit_is_seen(tmp_path: Path) -> None:
    """200 MB touched and freed between two samples: the kernel's peak keeps it."""
    code = "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); del b"
    done = _jobmeter(tmp_path, "--interval", "1", "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    summary = _summary(tmp_path)
    assert summary["peak_memory_bytes"] >= 200 * MIB
    truth = peak_rss_kib([sys.executable, "-c", code]) * KIB
    assert summary["peak_memory_bytes"] == pytest.approx(truth, rel=0.25)


BUSY = textwrap.dedent(
    """
    import json, resource, sys, time
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu": own.ru_utime + own.ru_stime, "maxrss": own.ru_maxrss * 1024}))
    """
)


def test_the_launchers_cpu_and_peak_are_not_the_commands(tmp_path: Path) -> None:
    """The run's CPU is the command's own; its largest peak is the command's, not the
    launcher's (a shell forked from the wrapper, its kernel peak the wrapper's size)."""
    done = _jobmeter(tmp_path, "--interval", "1", "--", sys.executable, "-c", BUSY)
    assert done.returncode == 0, done.stderr
    own = json.loads(done.stdout)
    summary = _summary(tmp_path)
    cpu = summary["cpu_user_seconds"] + summary["cpu_system_seconds"]
    # The command's figure is taken just before it exits: its teardown comes on top.
    assert own["cpu"] <= cpu <= own["cpu"] + 0.02
    assert summary["peak_rss_single_process_bytes"] == pytest.approx(own["maxrss"], rel=0.1)


def test_a_short_busy_command_peaks_at_least_at_its_mean(tmp_path: Path) -> None:
    """Regression: a 0.3 s run showed 0.78 CPUs mean and 0.46 peak."""
    done = _jobmeter(tmp_path, "--interval", "1", "--", sys.executable, "-c", BUSY)
    assert done.returncode == 0, done.stderr
    own = json.loads(done.stdout)
    summary = _summary(tmp_path)
    cpu = summary["cpu_user_seconds"] + summary["cpu_system_seconds"]
    assert summary["cpu_utilization_mean"] == pytest.approx(cpu / summary["wall_seconds"])
    assert summary["cpu_utilization_peak"] >= summary["cpu_utilization_mean"]
    assert summary["cpu_utilization_mean"] >= own["cpu"] / summary["wall_seconds"]


RUN_BLOCK = textwrap.dedent(
    """
    import json, resource, sys, time
    import jobmeter
    with jobmeter.Run("busy", interval=1.0, directory=sys.argv[1]) as run:
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.process_time()
        while time.process_time() - start < 0.3:
            pass
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(json.dumps({"own": cpu, **run.result.to_json()}))
    """
)


def test_a_short_busy_run_block_peaks_at_least_at_its_mean(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", RUN_BLOCK, str(tmp_path / "runs")],
                          env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    cpu = result["cpu_user_seconds"] + result["cpu_system_seconds"]
    # The block's own CPU, as the process saw it from inside; the run's adds its first
    # and last sample, and live CPU times come in 10 ms ticks.
    assert result["own"] - 0.02 <= cpu <= result["own"] + 0.05
    assert result["cpu_utilization_mean"] == pytest.approx(cpu / result["wall_seconds"])
    assert result["cpu_utilization_peak"] >= result["cpu_utilization_mean"]


def test_stdin_reaches_the_command(tmp_path: Path) -> None:
    done = _jobmeter(tmp_path, "--", sys.executable, "-c", "print(input())", input="hello\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n"


ENVIRONMENT = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.mark.parametrize(
    "extra",
    [
        # No PWD at all: a shell would add one.
        {"PWD": None},
        # What a shell resets at start, and a name no shell can hold (bash's exported
        # functions): the launcher gives them back, through env(1) for the last.
        {"IFS": "x", "OPTIND": "4", "PPID": "1", "PWD": "/", "BASH_FUNC_f%%": "() { :; }"},
    ],
)
def test_the_command_gets_exactly_its_environment(
    tmp_path: Path, extra: dict[str, str | None]
) -> None:
    env = _env(tmp_path, JOBMETER_CHECK="a b")
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    done = _jobmeter(tmp_path, "--", sys.executable, "-c", ENVIRONMENT, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    (run,) = (tmp_path / "runs").iterdir()
    assert seen.pop("JOBMETER_RUN") == str(run)
    # What the wrapper's own interpreter adds to os.environ (PEP 538) is the same as today.
    wrapper = json.loads(subprocess.run([sys.executable, "-c", ENVIRONMENT], env=env,
                                        capture_output=True, text=True).stdout)  # fmt: skip
    assert seen == wrapper


def _sig_ignored(status: str) -> set[int]:
    (line,) = [line for line in status.splitlines() if line.startswith("SigIgn:")]
    mask = int(line.split()[1], 16)
    return {signum for signum in range(1, 65) if mask & (1 << (signum - 1))}


@pytest.mark.parametrize("ignored", [False, True])
def test_the_command_keeps_the_wrappers_sigint_and_sigquit(tmp_path: Path, ignored: bool) -> None:
    """Not ignored as a shell's background job would have them; ignored where the wrapper
    started with them ignored (under nohup or `&` in a script), as a direct child would."""
    handling = signal.SIG_IGN if ignored else signal.SIG_DFL

    def start() -> None:
        signal.signal(signal.SIGINT, handling)
        signal.signal(signal.SIGQUIT, handling)

    done = _jobmeter(tmp_path, "--", "/bin/cat", "/proc/self/status", preexec_fn=start)
    assert done.returncode == 0, done.stderr
    seen = _sig_ignored(done.stdout) & {signal.SIGINT, signal.SIGQUIT}
    assert seen == ({signal.SIGINT, signal.SIGQUIT} if ignored else set())


def test_spawned_directly_a_small_command_keeps_todays_rule(tmp_path: Path) -> None:
    """Without the launcher, ru_maxrss of the command starts at the wrapper's size: a
    command below it has no kernel peak, never the wrapper's size."""
    done = _jobmeter(tmp_path, "--", TRUE, env=_direct(tmp_path))
    assert done.returncode == 0, done.stderr
    summary = _summary(tmp_path)
    assert summary["peak_rss_single_process_bytes"] == 0
    assert summary["peak_memory_bytes"] < 8 * MIB


def test_spawned_directly_a_big_command_still_gets_its_kernel_peak(tmp_path: Path) -> None:
    code = "b = bytearray(200 * 2**20); del b"
    done = _jobmeter(tmp_path, "--", sys.executable, "-c", code, env=_direct(tmp_path))
    assert done.returncode == 0, done.stderr
    assert _summary(tmp_path)["peak_memory_bytes"] >= 200 * MIB


SHOW = (
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('EXTRA', 'JOBMETER_RUN')}))"
)
RUN_COMMAND = textwrap.dedent(
    f"""
    import json, sys
    from jobmeter.run import RunOptions, run_command
    options = RunOptions(output=sys.argv[1], capture=False, environment={{"EXTRA": "x y"}})
    result = run_command([sys.executable, "-c", {SHOW!r}], options)
    print(json.dumps({{"directory": str(result.directory), "peak": result.peak_memory_bytes}}))
    """
)


def test_run_options_environment_reaches_the_command(tmp_path: Path) -> None:
    """From Python: RunOptions.environment on top, JOBMETER_RUN naming the run."""
    done = subprocess.run([sys.executable, "-c", RUN_COMMAND, str(tmp_path / "runs")],
                          env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen, result = (json.loads(line) for line in done.stdout.splitlines())
    assert seen == {"EXTRA": "x y", "JOBMETER_RUN": result["directory"]}
    truth = peak_rss_kib([sys.executable, "-c", SHOW]) * KIB
    assert result["peak"] == pytest.approx(truth, rel=0.25)
