"""`jobmeter run -- CMD` with real subprocesses and signals: exit codes, signals, files, truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

MIB = 1024 * 1024


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The wrapper's environment: runs under tmp_path, no metrics port unless asked."""
    return {
        **os.environ,
        "JOBMETER_RUN_DIR": str(tmp_path / "runs"),
        "OTEL_METRICS_EXPORTER": "none",
        **extra,
    }


def _jobmeter(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _only_run(tmp_path: Path) -> Path:
    (run,) = (tmp_path / "runs").iterdir()
    return run


def _record(run: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((run / "run.json").read_text())
    return data


@pytest.mark.parametrize(
    ("code", "expected", "status"),
    [
        ("pass", 0, "succeeded"),
        ("import sys; sys.exit(3)", 3, "failed"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137, "killed"),
    ],
)
def test_exit_status_is_the_commands(tmp_path: Path, code: str, expected: int, status: str) -> None:
    done = _jobmeter(tmp_path, "--quiet", "--", sys.executable, "-c", code)
    assert done.returncode == expected, done.stderr
    record = _record(_only_run(tmp_path))
    assert record["exit_code"] == expected
    assert record["status"] == status
    assert record["end"] is not None


def test_command_not_found_is_127_with_a_message(tmp_path: Path) -> None:
    done = _jobmeter(tmp_path, "--quiet", "--", "no-such-command-jobmeter")
    assert done.returncode == 127
    assert "jobmeter: command not found: no-such-command-jobmeter" in done.stderr
    assert _record(_only_run(tmp_path))["status"] == "not_started"


def test_a_fast_failure_keeps_its_directory_and_logs(tmp_path: Path) -> None:
    code = "import sys; print('partial'); print('boom: bad input', file=sys.stderr); sys.exit(2)"
    done = _jobmeter(tmp_path, "--quiet", "--", sys.executable, "-c", code)
    assert done.returncode == 2
    assert "boom: bad input" in done.stderr  # passed through...
    run = _only_run(tmp_path)
    assert (run / "stderr.log").read_text() == "boom: bad input\n"  # ...and kept
    assert (run / "stdout.log").read_text() == "partial\n"
    assert _record(run)["status"] == "failed"
    assert [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]


def test_arguments_are_not_recorded_unless_asked(tmp_path: Path) -> None:
    secret = "--password=hunter2"
    _jobmeter(tmp_path / "a", "--quiet", "--", sys.executable, "-c", "pass", secret)
    run = _only_run(tmp_path / "a")
    stored = "".join(p.read_text() for p in run.iterdir())
    assert "hunter2" not in stored
    assert _record(run)["command"] == {"executable": Path(sys.executable).name,
                                       "argument_count": 3}  # fmt: skip
    _jobmeter(
        tmp_path / "b", "--quiet", "--record-args", "--", sys.executable, "-c", "pass", secret
    )
    command = _record(_only_run(tmp_path / "b"))["command"]
    assert isinstance(command, dict)
    assert command["argv"] == [sys.executable, "-c", "pass", secret]


def test_sigterm_reaches_the_command_and_the_run_is_complete(tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    child = textwrap.dedent(
        f"""
        import signal, sys, time
        def stop(signum, frame):
            open({str(marker)!r}, "w").write("TERM")
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    env = _env(tmp_path)
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--interval", "0.1", "--",
         sys.executable, "-c", child],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert wrapper.stdout is not None
    assert wrapper.stdout.readline().strip() == "ready"
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=30) == 7
    assert marker.read_text() == "TERM"
    record = _record(_only_run(tmp_path))
    assert record["status"] == "failed"
    summary = record["summary"]
    assert isinstance(summary, dict)
    assert summary["signals_forwarded"] == ["SIGTERM"]


def test_usage_survives_the_wrapper_being_killed(tmp_path: Path) -> None:
    env = _env(tmp_path)
    child = "import os, time; print(os.getpid(), flush=True); time.sleep(30)"
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--no-capture", "--interval", "0.1",
         "--", sys.executable, "-c", child],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert wrapper.stdout is not None
    child_pid = int(wrapper.stdout.readline())
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = list((tmp_path / "runs").glob("*/usage.jsonl"))
            if runs and len(runs[0].read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        wrapper.kill()
        wrapper.wait(timeout=10)
    finally:
        os.kill(child_pid, signal.SIGKILL)
    run = _only_run(tmp_path)
    samples = [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]
    assert len(samples) >= 3
    assert all(s["processes"] >= 1 for s in samples)
    assert _record(run)["status"] == "running"  # the wrapper died: marked incomplete


def test_setsid_grandchild_stays_in_the_tree(tmp_path: Path) -> None:
    """A double-forked, setsid grandchild is adopted, waited for and counted (con-duct #332)."""
    code = textwrap.dedent(
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                held = bytearray(300 * 1024 * 1024)
                time.sleep(1.0)
                os._exit(0)
            os._exit(0)
        os.wait()
        """
    )
    done = _jobmeter(tmp_path, "--json", "--interval", "0.2", "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    summary = _record(_only_run(tmp_path))["summary"]
    assert isinstance(summary, dict)
    assert summary["wall_seconds"] >= 1.0  # the wrapper waited for the grandchild
    assert summary["peak_memory_bytes"] == pytest.approx(300 * MIB, rel=0.10)


def test_known_work_is_measured_exactly(tmp_path: Path) -> None:
    """1 s of CPU, 64 MiB written and fsynced, a 400 MiB spike held 0.2 s: kernel figures."""
    target = tmp_path / "out.bin"
    own = tmp_path / "own-cpu"
    code = textwrap.dedent(
        f"""
        import os, resource, time
        start = time.process_time()
        while time.process_time() - start < 1.0:
            sum(range(10_000))
        with open({str(target)!r}, "wb") as out:
            out.write(os.urandom(64 * 1024 * 1024)); out.flush(); os.fsync(out.fileno())
        spike = bytearray(400 * 1024 * 1024)
        time.sleep(0.2)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        open({str(own)!r}, "w").write(str(usage.ru_utime + usage.ru_stime))
        """
    )
    done = _jobmeter(tmp_path, "--quiet", "--interval", "1", "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    summary = _record(_only_run(tmp_path))["summary"]
    assert isinstance(summary, dict)
    cpu = float(summary["cpu_user_seconds"]) + float(summary["cpu_system_seconds"])
    # The command's own account of its CPU, taken just before it exited.
    assert cpu == pytest.approx(float(own.read_text()), rel=0.05)
    assert cpu >= 1.0
    assert summary["written_bytes"] == pytest.approx(64 * MIB, rel=0.05)
    # Sampled once a second, the 0.2 s spike is invisible to samples; the kernel saw it.
    assert summary["peak_memory_bytes"] >= 400 * MIB
    assert summary["peak_memory_source"] == "kernel (largest process's peak RSS)"


def _gauge(text: str, name: str, job: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'job="{job}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_final_figures_are_pushed_to_a_real_pushgateway(tmp_path: Path) -> None:
    """Grouped by job and host; a failed run keeps the last success's timestamp."""
    from _support.pushgateway import Pushgateway

    with Pushgateway(tmp_path) as gateway:
        env = _env(tmp_path, JOBMETER_PUSHGATEWAY_URL=gateway.url)
        ok = subprocess.run(
            [sys.executable, "-m", "jobmeter", "run", "-q", "--name", "nightly", "--",
             sys.executable, "-c", "pass"], env=env, timeout=60,
        )  # fmt: skip
        assert ok.returncode == 0
        text = gateway.metrics_text()
        success = _gauge(text, "jobmeter_run_last_success_timestamp_seconds", "nightly")
        assert success is not None
        assert _gauge(text, "jobmeter_run_exit_code", "nightly") == 0
        assert f'instance="{os.uname().nodename}"' in text
        failed = subprocess.run(
            [sys.executable, "-m", "jobmeter", "run", "-q", "--name", "nightly", "--",
             sys.executable, "-c", "raise SystemExit(3)"], env=env, timeout=60,
        )  # fmt: skip
        assert failed.returncode == 3
        text = gateway.metrics_text()
        assert _gauge(text, "jobmeter_run_exit_code", "nightly") == 3
        assert _gauge(text, "jobmeter_run_last_success_timestamp_seconds", "nightly") == success


def test_a_dead_pushgateway_does_not_fail_the_run(tmp_path: Path) -> None:
    from _support.ports import refused_endpoint_port

    env = _env(tmp_path, JOBMETER_PUSHGATEWAY_URL=f"http://127.0.0.1:{refused_endpoint_port()}")
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "-q", "--", sys.executable, "-c", "pass"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert "cannot push to the Pushgateway" in done.stderr


def test_figures_are_otel_metrics_while_it_runs(tmp_path: Path) -> None:
    from _support.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        env = _env(
            tmp_path,
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=receiver.http_endpoint,
            OTEL_METRIC_EXPORT_INTERVAL="200",
        )
        code = "import time; held = bytearray(100 * 1024 * 1024); time.sleep(1.5)"
        done = subprocess.run(
            [sys.executable, "-m", "jobmeter", "run", "-q", "--interval", "0.1", "--name", "etl",
             "--", sys.executable, "-c", code], env=env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0
        rss = [p for p in receiver.points("jobmeter.run.memory.usage")
               if p.attributes.get("jobmeter.memory.type") == "rss"]  # fmt: skip
        # Exported during the run, not only at the end.
        assert len({p.value for p in rss}) >= 2
        assert max(p.value or 0 for p in rss) >= 100 * MIB
        assert {p.attributes["jobmeter.run.name"] for p in rss} == {"etl"}
        summary = _record(_only_run(tmp_path))["summary"]
        assert isinstance(summary, dict)
        cpu = receiver.points("jobmeter.run.cpu.time")
        final_user = [p.value for p in cpu if p.attributes["cpu.mode"] == "user"][-1]
        assert final_user == pytest.approx(summary["cpu_user_seconds"])


def test_gpu_memory_of_the_tree_with_a_gpu(tmp_path: Path) -> None:
    """GPU memory of the tree's processes only; the NVML driver is faked (the one allowed fake).

    The run happens in a child interpreter, where the fake driver is told the
    tree's pids at each sample, next to another process on the same GPU.
    """
    gib = 2**30
    probe = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from _support.fake_nvml import FakeGpu, FakeNvml, ProcessInfo
        import jobmeter.run._command as runner
        real_sampler = runner.TreeSampler
        class Tagged(real_sampler):
            def sample(self):
                s = super().sample()
                gpu.compute_processes = [ProcessInfo(p, 2 * {gib}) for p in s.pids] + [
                    ProcessInfo(999_999, 7 * {gib})]
                return s
        gpu = FakeGpu("GPU-a", "NVIDIA H100")
        sys.modules["pynvml"] = FakeNvml([gpu])
        runner.TreeSampler = Tagged
        from jobmeter.run import RunOptions, run_command
        result = run_command([sys.executable, "-c", "import time; time.sleep(0.6)"],
                             RunOptions(interval=0.1, output={str(tmp_path)!r}, capture=False))
        print(json.dumps(result.to_json()))
        """
    )
    env = {**os.environ, "OTEL_METRICS_EXPORTER": "none"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # Only the tree's process counts, not the other process on the same GPU.
    assert summary["peak_gpu_memory_bytes"] == 2 * gib
    run = Path(summary["directory"])
    samples = [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]
    assert 2 * gib in {s["gpu_memory"] for s in samples}


@pytest.mark.parametrize(
    ("visible", "expected_gib"), [(None, 5), ("1", 3), ("GPU-a", 2), ("", None)]
)
def test_gpu_memory_of_the_tree_counts_the_commands_visible_gpus(
    tmp_path: Path, visible: str | None, expected_gib: int | None
) -> None:
    """The command's CUDA_VISIBLE_DEVICES (not the wrapper's) picks the GPUs counted."""
    gib = 2**30
    environment = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    probe = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from _support.fake_nvml import FakeGpu, FakeNvml, ProcessInfo
        import jobmeter.run._command as runner
        real_sampler = runner.TreeSampler
        class Tagged(real_sampler):
            def sample(self):
                s = super().sample()
                first.compute_processes = [ProcessInfo(p, 2 * {gib}) for p in s.pids]
                second.compute_processes = [ProcessInfo(p, 3 * {gib}) for p in s.pids]
                return s
        first, second = FakeGpu("GPU-a", "NVIDIA H100"), FakeGpu("GPU-b", "NVIDIA H100")
        sys.modules["pynvml"] = FakeNvml([first, second])
        runner.TreeSampler = Tagged
        from jobmeter.run import RunOptions, run_command
        result = run_command([sys.executable, "-c", "import time; time.sleep(0.4)"],
                             RunOptions(interval=0.1, output={str(tmp_path)!r}, capture=False,
                                        environment={environment!r}))
        print(json.dumps(result.to_json()))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
        env={**env, "OTEL_METRICS_EXPORTER": "none"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    expected = None if expected_gib is None else expected_gib * gib
    assert summary["peak_gpu_memory_bytes"] == expected


def test_a_small_command_is_not_reported_at_the_wrappers_size(tmp_path: Path) -> None:
    """Regression: ru_maxrss of a forked child starts at the wrapper's RSS (~30 MiB)."""
    done = _jobmeter(tmp_path, "--quiet", "--", "/bin/true")
    assert done.returncode == 0
    summary = _record(_only_run(tmp_path))["summary"]
    assert isinstance(summary, dict)
    assert summary["peak_memory_bytes"] < 8 * MIB


def test_a_command_faster_than_a_sample_uses_at_most_the_machines_cpus(tmp_path: Path) -> None:
    """Regression: `true` ended before the first sample and showed 227 CPUs busy.

    Its CPU time was divided by the microseconds since the sampling loop began,
    not by its life since the run started.
    """
    done = _jobmeter(tmp_path, "--quiet", "--interval", "0.1", "--", "/bin/true")
    assert done.returncode == 0
    run = _only_run(tmp_path)
    summary = _record(run)["summary"]
    assert isinstance(summary, dict)
    cpus = os.cpu_count() or 1
    assert 0 <= summary["cpu_utilization_peak"] <= cpus
    samples = [json.loads(line) for line in (run / "usage.jsonl").read_text().splitlines()]
    assert all(0 <= s["cpu_utilization"] <= cpus for s in samples)


def test_a_run_is_named_after_its_program_by_default(tmp_path: Path) -> None:
    """run.json's name is the program's name unless --name says otherwise, as documented."""
    assert _jobmeter(tmp_path, "--quiet", "--", "/bin/true").returncode == 0
    assert _record(_only_run(tmp_path))["name"] == "true"


def test_no_metrics_leaves_the_port_to_the_command(tmp_path: Path) -> None:
    """With --no-metrics the wrapper opens no endpoint: the command binds the same port."""
    from _support.ports import free_port

    port = free_port()
    code = (
        "import jobmeter, urllib.request; t = jobmeter.configure(); "
        "print(urllib.request.urlopen(t.prometheus_url).status)"
    )
    env = _env(tmp_path, OTEL_METRICS_EXPORTER="prometheus",
               OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
               OTEL_EXPORTER_PROMETHEUS_PORT=str(port))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--no-metrics", "--no-capture",
         "--", sys.executable, "-c", code],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200"
