"""`jobmeter run` and `jobmeter.Run` when the store or the command misbehaves.

Everything is real: subprocesses, signals, a 1 MiB tmpfs for a full disk
(skipped where mount is not allowed), RLIMIT_FSIZE for a file that may not
grow, a directory removed under a live run. Tests run as root here, so no
test relies on a permission being refused. Each fault keeps the job's exit
code and output, ends within a stated bound, and gives one warning.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobmeter._rundata import routing

PY = sys.executable


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != routing.RUN_ENV}
    env.update(JOBMETER_RUN_DIR=str(root), OTEL_METRICS_EXPORTER="none")
    return env


def _wrapper(root: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "jobmeter", "run", "--quiet", *args],
        env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def _run(root: Path, *args: str, timeout: float = 60, **popen: Any) -> tuple[int, str, str, float]:
    """Exit code, stdout, stderr and seconds of ``jobmeter run --quiet ARGS``."""
    started = time.monotonic()
    wrapper = _wrapper(root, *args, **popen)
    out, err = wrapper.communicate(timeout=timeout)
    return wrapper.returncode, out, err, time.monotonic() - started


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("jobmeter:")]


def _record(root: Path) -> dict[str, Any]:
    (run,) = root.iterdir()
    data: dict[str, Any] = json.loads((run / "run.json").read_text())
    return data


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that fills up."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"no tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


# -- a store for the user only ------------------------------------------------------------------

RECORDS = """
import jobmeter
ops = jobmeter.MetricsCollector("etl")
with ops.measure("load"):
    pass
"""


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")]}  # fmt: skip


def _assert_user_only(root: Path) -> None:
    modes = _modes(root)
    assert any(name.endswith("operations.parquet") for name in modes), modes
    for name, mode in modes.items():
        wanted = 0o700 if (root.parent / name).is_dir() else 0o600
        assert mode == wanted, (name, oct(mode))


def test_jobmeter_run_makes_a_store_for_the_user_only(tmp_path: Path) -> None:
    root = tmp_path / "made" / "runs"
    code, out, err, _ = _run(root, "--", PY, "-c", RECORDS + "print('done')",
                             preexec_fn=lambda: os.umask(0o022))  # fmt: skip
    assert (code, out) == (0, "done\n"), err
    assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == 0o700
    _assert_user_only(root)


def test_run_block_makes_a_store_for_the_user_only(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    code = f"import jobmeter\nwith jobmeter.Run('block', directory={str(root)!r}):\n"
    code += textwrap.indent(RECORDS, "    ")
    done = subprocess.run([PY, "-c", code], env=_env(root), capture_output=True, text=True,
                          timeout=60, preexec_fn=lambda: os.umask(0o002))  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_user_only(root)


# -- the store fails: the job does not ------------------------------------------------------------


def test_a_file_in_the_way_of_the_store(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.write_text("not a directory")
    code, out, err, seconds = _run(root, "--", PY, "-c", "print('out'); raise SystemExit(4)")
    assert (code, out) == (4, "out\n")
    (warning,) = _warnings(err)
    assert "cannot create the run directory" in warning
    assert "not recorded" in warning
    assert seconds < 30


def test_output_bigger_than_the_disk(small_disk: Path) -> None:
    root = small_disk / "runs"
    big = "import sys\nfor _ in range(30000): print('z' * 99)\nsys.exit(5)"
    code, out, err, seconds = _run(root, "--interval", "0.05", "--", PY, "-c", big)
    assert code == 5
    assert out.count("z" * 99) == 30000  # 3 MB on a 1 MiB disk: all of it on the terminal
    (warning,) = _warnings(err)
    assert "stdout.log" in warning, warning
    assert "No space left" in warning, warning
    record = _record(root)
    # run.json could not be rewritten on the full disk: it still says "running" (incomplete).
    assert record["status"] == "running" or record.get("incomplete") is True
    assert seconds < 30


def _no_bigger_than(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death, as a daemon would set it
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_file_that_may_not_grow_marks_the_run_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    big = "import sys\nfor _ in range(3000): print('z' * 99)\nsys.exit(6)"
    code, out, err, _ = _run(root, "--", PY, "-c", big,
                             preexec_fn=lambda: _no_bigger_than(64 * 1024))  # fmt: skip
    assert code == 6
    assert out.count("z" * 99) == 3000
    (warning,) = _warnings(err)
    assert "stdout.log" in warning, warning
    assert "too large" in warning, warning
    record = _record(root)
    assert record["status"] == "failed"
    assert record["exit_code"] == 6
    assert record["incomplete"] is True
    assert "stdout.log" in record["store_error"]
    (run,) = root.iterdir()
    assert (run / "stdout.log").stat().st_size <= 64 * 1024


def test_the_run_directory_removed_under_jobmeter_run(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    child = textwrap.dedent(
        """
        import os, shutil, sys, time
        print("before", flush=True)
        shutil.rmtree(os.environ["JOBMETER_RUN"])
        time.sleep(0.5)
        print("after", flush=True)
        sys.exit(3)
        """
    )
    code, out, err, seconds = _run(root, "--interval", "0.05", "--", PY, "-c", child)
    assert (code, out) == (3, "before\nafter\n")
    (warning,) = _warnings(err)
    assert "was removed" in warning, warning
    assert list(root.iterdir()) == []  # not made again: removing it was somebody's choice
    assert seconds < 30


def _block(root: Path, body: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import os, shutil, sys
        import jobmeter
        ops = jobmeter.MetricsCollector("etl")
        run = jobmeter.Run("block", interval=0.05, directory={str(root)!r})
        with run:
        """
    ) + textwrap.indent(textwrap.dedent(body), "    ")
    code += "\nprint('result', run.status, flush=True)\nsys.exit(9)\n"
    return subprocess.run([PY, "-c", code], env=_env(root), capture_output=True, text=True,
                          timeout=60, **popen)  # fmt: skip


def test_the_run_directory_removed_under_a_run_block(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    done = _block(root, """
        shutil.rmtree(run.directory)
        import time; time.sleep(0.3)
        with ops.measure("after"):
            pass
    """)  # fmt: skip
    assert (done.returncode, done.stdout) == (9, "result succeeded\n"), done.stderr
    (warning,) = _warnings(done.stderr)
    assert "was removed" in warning
    assert list(root.iterdir()) == []


def test_a_full_disk_under_a_run_block(small_disk: Path) -> None:
    root = small_disk / "runs"
    done = _block(root, """
        with open(run.directory / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"0" * 65536); f.flush()
            except OSError:
                pass
        for i in range(200):
            with ops.measure(f"op{i}"):
                pass
    """)  # fmt: skip
    assert (done.returncode, done.stdout) == (9, "result succeeded\n"), done.stderr
    (warning,) = _warnings(done.stderr)
    assert "No space left" in warning or "cannot write" in warning, warning
    # run.json of the start is there, and says the run did not end cleanly.
    assert _record(root)["status"] == "running"


def test_a_run_block_in_a_file_in_the_way(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.write_text("")
    done = _block(root, "print('work', flush=True)")
    assert (done.returncode, done.stdout) == (9, "work\nresult succeeded\n"), done.stderr
    (warning,) = _warnings(done.stderr)
    assert "cannot create the run directory" in warning


# -- the command or the wrapper misbehaves ------------------------------------------------------


def test_the_command_outlives_a_sigkilled_wrapper(tmp_path: Path) -> None:
    """Documented: the command is not killed with the wrapper; the run stays "running"."""
    root = tmp_path / "runs"
    marker = tmp_path / "finished"
    child = "import os, time; print(os.getpid(), flush=True); time.sleep(1.5); "
    child += f"open({str(marker)!r}, 'w').write('done')"
    wrapper = _wrapper(root, "--no-capture", "--interval", "0.05", "--", PY, "-c", child)
    assert wrapper.stdout is not None
    child_pid = int(wrapper.stdout.readline())
    time.sleep(0.3)
    wrapper.kill()
    wrapper.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "done"
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == "zombie"
    assert _record(root)["status"] == "running"


def test_a_captured_command_gets_epipe_after_the_wrapper_is_killed(tmp_path: Path) -> None:
    """Documented: with --capture, the command's output pipe has no reader once the wrapper died."""
    root = tmp_path / "runs"
    marker = tmp_path / "saw"
    child = textwrap.dedent(
        f"""
        import os, time
        print(os.getpid(), flush=True)
        parent = os.getppid()
        while os.getppid() == parent:
            time.sleep(0.02)
        try:
            print("after", flush=True)
            what = "written"
        except BrokenPipeError:
            what = "EPIPE"
        open({str(marker)!r}, "w").write(what)
        """
    )
    wrapper = _wrapper(root, "--interval", "0.05", "--", PY, "-c", child)
    assert wrapper.stdout is not None
    int(wrapper.stdout.readline())
    wrapper.kill()
    wrapper.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "EPIPE"


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    # The shell and its two sleeps ignore SIGTERM: the whole tree must go.
    script = "trap '' TERM; sleep 60 & sleep 60 & echo ready; wait"
    wrapper = _wrapper(root, "--kill-grace", "1", "--interval", "0.2", "--", "sh", "-c", script)
    assert wrapper.stdout is not None
    assert wrapper.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    started = time.monotonic()
    wrapper.send_signal(signal.SIGTERM)
    _, err = wrapper.communicate(timeout=30)
    seconds = time.monotonic() - started
    assert wrapper.returncode == 137
    assert 1.0 <= seconds < 1.0 + 0.2 + 3.0  # grace + one interval + a start-up margin
    (warning,) = _warnings(err)
    assert "sent SIGKILL" in warning
    record = _record(root)
    assert record["status"] == "killed"
    assert record["summary"]["signals_forwarded"] == ["SIGTERM", "SIGKILL"]


def _watch(process: subprocess.Popen[str]) -> tuple[float, int]:
    """Wait for the wrapper: its own CPU seconds (not its children's) and its peak RSS."""
    me = psutil.Process(process.pid)
    cpu, peak = 0.0, 0
    while process.poll() is None:
        try:
            times, rss = me.cpu_times(), me.memory_info().rss
        except psutil.Error:
            break
        cpu, peak = times.user + times.system, max(peak, rss)
        time.sleep(0.02)
    process.communicate()
    return cpu, peak


def _many_children(root: Path, count: int, interval: str) -> dict[str, Any]:
    script = f"i=0; while [ $i -lt {count} ]; do /bin/true; i=$((i+1)); done; exit 5"
    started = time.monotonic()
    wrapper = _wrapper(root, "--interval", interval, "--", "sh", "-c", script)
    cpu, peak = _watch(wrapper)
    assert wrapper.returncode == 5
    record = _record(root)
    (run,) = root.iterdir()
    samples = (run / "usage.jsonl").read_text().splitlines()
    assert record["status"] == "failed"
    assert len(samples) == record["summary"]["samples"] >= 1
    return {"seconds": time.monotonic() - started, "cpu": cpu, "rss_peak": peak,
            "samples": len(samples), "wall": record["summary"]["wall_seconds"],
            "usage_bytes": (run / "usage.jsonl").stat().st_size}  # fmt: skip


def _baseline(root: Path) -> tuple[float, int]:
    """The wrapper's own CPU seconds and peak RSS around a command that does nothing."""
    cpu, peak = _watch(_wrapper(root, "--interval", "0.1", "--", "true"))
    return cpu, peak


def test_thousands_of_short_lived_children(tmp_path: Path) -> None:
    base_cpu, base_rss = _baseline(tmp_path / "base")
    figures = _many_children(tmp_path / "runs", 3000, "0.1")
    print({"base_cpu": base_cpu, "base_rss": base_rss, **figures})
    assert figures["rss_peak"] < base_rss + 16 * 2**20  # no growth with the children
    assert figures["cpu"] < base_cpu + 0.5 * figures["wall"]  # the wrapper is not the busy one


@pytest.mark.soak
def test_tens_of_thousands_of_short_lived_children(tmp_path: Path) -> None:
    base_cpu, base_rss = _baseline(tmp_path / "base")
    figures = _many_children(tmp_path / "runs", 30000, "0.05")
    print({"base_cpu": base_cpu, "base_rss": base_rss, **figures})
    assert figures["rss_peak"] < base_rss + 16 * 2**20
    assert figures["cpu"] < base_cpu + 0.5 * figures["wall"]


def test_a_command_that_closes_stdout_early(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    script = 'exec >&-; i=0; while [ $i -lt 2000 ]; do echo "err $i" >&2; i=$((i+1)); done'
    code, out, err, seconds = _run(root, "--", "sh", "-c", script, timeout=30)
    assert (code, out) == (0, "")
    lines = [line for line in err.splitlines() if line.startswith("err ")]
    assert lines == [f"err {i}" for i in range(2000)]
    (run,) = root.iterdir()
    assert (run / "stderr.log").read_text().splitlines() == lines
    assert (run / "stdout.log").read_text() == ""
    assert seconds < 30
