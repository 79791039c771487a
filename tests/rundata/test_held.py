"""What a run held: the tightest cgroup limits on the path to the root, else the machine's."""

from __future__ import annotations

from pathlib import Path

from jobmeter._rundata.held import cgroup_limits, held_resources

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
