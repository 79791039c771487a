"""What a run held: the tightest cgroup limits on the path to the root, else the machine's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobmeter._rundata.held import cgroup_limits, held_resources, slurm_request

GIB = 2**30


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_tightest_limit_on_the_path(tmp_path: Path) -> None:
    root = tmp_path / "fs" / "cgroup"
    _write(root / "cgroup.controllers", "cpu memory")
    _write(root / "kubepods" / "cpu.max", "400000 100000")  # 4 CPUs
    _write(root / "kubepods" / "memory.max", str(8 * GIB))
    _write(root / "kubepods" / "pod1" / "cpu.max", "150000 100000")  # 1.5 CPUs: tighter
    _write(root / "kubepods" / "pod1" / "memory.max", "max")
    (tmp_path / "cgroup").write_text("0::/kubepods/pod1\n")
    assert cgroup_limits(str(tmp_path), str(tmp_path / "cgroup")) == (1.5, 8 * GIB)
    held = held_resources(64 * GIB, 32, 1, str(tmp_path), str(tmp_path / "cgroup"))
    assert held == {"cpus": 1.5, "cpus_from": "cgroup", "memory_bytes": 8 * GIB,
                    "memory_from": "cgroup", "gpus": 1}  # fmt: skip
    # Limits above what the machine has are the machine's.
    small = held_resources(4 * GIB, 1, 0, str(tmp_path), str(tmp_path / "cgroup"))
    assert small == {"cpus": 1.0, "cpus_from": "machine", "memory_bytes": 4 * GIB,
                     "memory_from": "machine", "gpus": 0}  # fmt: skip


def test_cgroup_v1_quota_and_limit(tmp_path: Path) -> None:
    root = tmp_path / "fs" / "cgroup"
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "200000")
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "100000")
    _write(root / "memory" / "job" / "memory.limit_in_bytes", str(3 * GIB))
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")  # no limit
    (tmp_path / "cgroup").write_text("4:memory:/job\n2:cpu,cpuacct:/job\n1:name=systemd:/\n")
    assert cgroup_limits(str(tmp_path), str(tmp_path / "cgroup")) == (2.0, 3 * GIB)


def test_no_quota_is_no_limit(tmp_path: Path) -> None:
    root = tmp_path / "fs" / "cgroup"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000")
    (tmp_path / "cgroup").write_text("2:cpu:/\n")
    assert cgroup_limits(str(tmp_path), str(tmp_path / "cgroup")) == (None, None)
    assert cgroup_limits(str(tmp_path), str(tmp_path / "missing")) == (None, None)


def test_slurm_allotment_is_the_request_where_no_cgroup_limits(tmp_path: Path) -> None:
    env = {"SLURM_JOB_ID": "4242", "SLURM_CPUS_PER_TASK": "3", "SLURM_MEM_PER_CPU": "2048"}
    assert slurm_request(env) == (3.0, 6 * GIB)
    assert slurm_request({**env, "SLURM_MEM_PER_NODE": "5120"}) == (3.0, 5 * GIB)
    assert slurm_request({"SLURM_CPUS_PER_TASK": "3"}) == (None, None)  # not in a job
    assert slurm_request({"SLURM_JOB_ID": "1", "SLURM_MEM_PER_NODE": "0"}) == (None, None)
    missing = str(tmp_path / "missing")
    held = held_resources(64 * GIB, 32, 0, str(tmp_path), missing, environ=env)
    assert held == {"cpus": 3.0, "cpus_from": "slurm", "memory_bytes": 6 * GIB,
                    "memory_from": "slurm", "gpus": 0}  # fmt: skip


def test_cgroup_limits_win_over_slurm(tmp_path: Path) -> None:
    root = tmp_path / "fs" / "cgroup"
    _write(root / "cgroup.controllers", "cpu memory")
    _write(root / "job" / "cpu.max", "100000 100000")
    _write(root / "job" / "memory.max", "max")
    (tmp_path / "cgroup").write_text("0::/job\n")
    env = {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "4", "SLURM_MEM_PER_NODE": "1024"}
    held = held_resources(64 * GIB, 32, 0, str(tmp_path), str(tmp_path / "cgroup"), environ=env)
    assert (held["cpus"], held["cpus_from"]) == (1.0, "cgroup")
    assert (held["memory_bytes"], held["memory_from"]) == (GIB, "slurm")


def test_a_run_inside_a_slurm_job_records_its_allotment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOBMETER_RUN"))}
    env.update(SLURM_JOB_ID="99", SLURM_CPUS_PER_TASK="1", SLURM_MEM_PER_NODE="512",
               JOBMETER_RUN_DIR=str(tmp_path / "runs"), OTEL_METRICS_EXPORTER="none")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "jobmeter", "run", "--quiet", "--", sys.executable, "-c", "pass"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [run_json] = (tmp_path / "runs").glob("*/run.json")
    held = json.loads(run_json.read_text())["held"]
    cpus_from = held["cpus_from"]  # this machine's cgroup may limit CPUs: that wins
    assert cpus_from in ("slurm", "cgroup")
    if cpus_from == "slurm":
        assert held["cpus"] == 1.0
    if held["memory_from"] == "slurm":
        assert held["memory_bytes"] == 512 * 2**20
    else:
        assert held["memory_from"] == "cgroup"
    # The numbers only: nothing else of the job's environment (its id, 99) is kept.
    assert set(held) == {"cpus", "cpus_from", "memory_bytes", "memory_from", "gpus"}
