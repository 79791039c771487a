"""HostCollector's energy group: hw.energy of each CPU package and DRAM zone, beside the GPUs'.

The points are the fake counters' rise since the first read, per zone, with
``hw.id`` the zone (``intel-rapl:0``), ``hw.name`` its name and ``hw.type``
``cpu`` or ``dram``; core, uncore and psys are not reported (they overlap
the packages). On one scrape page the CPU and GPU ``hw.energy`` series are
one valid family.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import NumberDataPoint
from prometheus_client.parser import text_string_to_metric_families

import jobmeter
from _support.fake_nvml import FakeGpu, FakeNvml
from _support.fake_powercap import FakePowercap
from jobmeter._core import nvml
from jobmeter.testing import in_memory

ENERGY = "hw.energy"
APPROX = 1e-6


@pytest.fixture
def server(powercap: FakePowercap) -> FakePowercap:
    return powercap.intel_server(sockets=2)


def test_each_package_and_dram_zone_is_a_series(server: FakePowercap) -> None:
    with in_memory() as recorded:
        jobmeter.HostCollector(cpu=False, memory=False, disk=False, network=False,
                               filesystem=False, load=False, process=False, gpu=False)  # fmt: skip
        recorded.metrics()  # the first read: every zone counts from here
        server.zones["intel-rapl:0"].add(30.0)
        server.zones["intel-rapl:1"].add(20.0)
        server.zones["intel-rapl:1:2"].add(2.5)
        server.zones["intel-rapl:0:0"].add(25.0)  # core of package 0: not a series
        server.zones["intel-rapl:2"].add(90.0)  # psys: not a series
        package0 = recorded.value(ENERGY, {"hw.id": "intel-rapl:0"})
        points = recorded.points(ENERGY)
    assert package0 == pytest.approx(30.0, abs=APPROX)
    found = {(dict(p.attributes or {})["hw.id"], dict(p.attributes or {})["hw.type"]): p.value
             for p in points if isinstance(p, NumberDataPoint)}  # fmt: skip
    assert found == {
        ("intel-rapl:0", "cpu"): pytest.approx(30.0, abs=APPROX),
        ("intel-rapl:1", "cpu"): pytest.approx(20.0, abs=APPROX),
        ("intel-rapl:0:2", "dram"): pytest.approx(0.0, abs=APPROX),
        ("intel-rapl:1:2", "dram"): pytest.approx(2.5, abs=APPROX),
    }
    names = {dict(p.attributes or {})["hw.name"] for p in points}
    assert names == {"package-0", "package-1", "dram"}


def test_without_counters_the_group_reports_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMETER_SYSFS_PATH", str(tmp_path))
    with in_memory() as recorded:
        jobmeter.HostCollector(process=False, gpu=False)
        assert recorded.points("system.cpu.time")
        assert not recorded.points(ENERGY)


def test_energy_group_can_be_turned_off(
    server: FakePowercap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBMETER_HOST_METRICS", "cpu")
    with in_memory() as recorded:
        jobmeter.HostCollector()
        assert recorded.points("system.cpu.time")
        assert not recorded.points(ENERGY)


def test_cpu_and_gpu_energy_are_one_family_on_the_scrape_page(
    server: FakePowercap, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu("GPU-a", "NVIDIA H100", energy_mj=7_000_000)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([gpu]))
    nvml._reset_for_tests()
    telemetry = jobmeter.configure(prometheus_host="127.0.0.1", prometheus_port=0)
    jobmeter.start_host_metrics()
    assert telemetry.prometheus_url is not None
    with urllib.request.urlopen(telemetry.prometheus_url, timeout=10) as response:
        page = response.read().decode()
    families = [f for f in text_string_to_metric_families(page) if f.name == "hw_energy_joules"]
    assert len(families) == 1, page
    samples = {(s.labels["hw_type"], s.labels["hw_id"]): s.value for s in families[0].samples}
    assert samples[("gpu", "GPU-a")] == 7000.0
    assert ("cpu", "intel-rapl:0") in samples
    assert ("dram", "intel-rapl:1:2") in samples
