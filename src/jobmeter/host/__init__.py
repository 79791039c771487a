"""``HostCollector``: process and system metrics from psutil, under OTel semantic conventions.

Every instrument is asynchronous: nothing runs between collections, and a
Prometheus scrape or an OTLP export reads the machine at that moment. The
several callbacks of one collection share one sample of each group (psutil is
called once per group, not once per metric), and no network connection table
is ever read: that is where the contrib system-metrics instrumentation spends
most of its time.
"""

from __future__ import annotations

from jobmeter._core.facade import publish
from jobmeter.host._collector import HostCollector, start_host_metrics
from jobmeter.host._gpu import GPUCollector

__all__ = [
    "GPUCollector",
    "HostCollector",
    "start_host_metrics",
]

publish(globals())
