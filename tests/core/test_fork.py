"""A forked child measures itself: its own pid and instance id, none of its parent's counts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from _support.otlp_receiver import OtlpReceiver

SCRIPT = textwrap.dedent(
    """
    import os
    import jobmeter

    telemetry = jobmeter.configure()
    ops = jobmeter.MetricsCollector("etl")
    for _ in range(3):
        with ops.measure("parent-work"):
            pass
    with ops.measure("spans-fork"):
        pid = os.fork()
    if pid == 0:
        for _ in range(2):
            with ops.measure("child-work"):
                pass
        telemetry.shutdown()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print(pid)
    """
)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_forked_child_exports_only_its_own_points(protocol: str) -> None:
    with OtlpReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        env = {
            **os.environ,
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        }
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        child_pid = int(done.stdout.strip())

        def both_exported() -> bool:
            points = receiver.points("jobmeter.operation.duration")
            return len({p.resource["process.pid"] for p in points}) == 2

        receiver.wait_for(both_exported)
        points = receiver.points("jobmeter.operation.duration")
        by_pid: dict[object, dict[str, int]] = {}
        instance_ids: dict[object, object] = {}
        for point in points:
            pid = point.resource["process.pid"]
            instance_ids[pid] = point.resource["service.instance.id"]
            counts = by_pid.setdefault(pid, {})
            counts[str(point.attributes["operation.name"])] = point.count or 0
        assert by_pid.pop(child_pid) == {"child-work": 2}
        ((parent_pid, parent_counts),) = by_pid.items()
        assert parent_pid != child_pid
        # The block that spans the fork is the parent's alone.
        assert parent_counts == {"parent-work": 3, "spans-fork": 1}
        assert instance_ids[child_pid] != instance_ids[parent_pid]
