"""Pushing a backfill's figures to a Prometheus Pushgateway.

The figures go as plain Prometheus metrics with the names the Prometheus
endpoint gives the OTel instruments (``jobmeter_backfill_items_total``, ...),
so a dashboard reads both alike. The grouping key is the backfill's name as
``job`` and the host as ``instance`` (plus stable labels the caller adds; never
a run id: the Pushgateway keeps every group forever). Pushes are POSTs
(``pushadd``), which replace only the metrics pushed: the last-success
timestamp is pushed at a successful end only, so a failed run keeps the
previous success's time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, pushadd_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from jobmeter.backfill._metrics import ASYNC_METRICS, Attrs
from jobmeter.backfill._snapshot import Snapshot

_log = logging.getLogger("jobmeter")

_LAST_SUCCESS = "jobmeter.backfill.last_success.timestamp"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_RESERVED = frozenset({"job", "instance"})


def prometheus_name(name: str, kind: str, unit: str) -> str:
    """The name the OTel Prometheus exporter gives an instrument (without ``_total``)."""
    base = _INVALID.sub("_", name)
    suffix = {"s": "_seconds", "{item}/s": "_per_second", "By": "_bytes"}.get(unit, "")
    return base + suffix


def label_name(key: str) -> str:
    name = _INVALID.sub("_", key)
    # The grouping key owns job and instance; a pushed label of the same name is refused.
    return f"exported_{name}" if name in _RESERVED else name


class _Figures(Collector):
    def __init__(self, base: Attrs, snapshot: Snapshot, success_time: float | None) -> None:
        self._base = base
        self._snapshot = snapshot
        self._success_time = success_time

    def collect(self) -> Iterable[Metric]:
        snapshot = self._snapshot
        if self._success_time is not None:
            snapshot = Snapshot(**{**vars(snapshot), "last_success": self._success_time})
        for name, kind, unit, description, observe in ASYNC_METRICS:
            if name == _LAST_SUCCESS and self._success_time is None:
                continue
            prom = prometheus_name(name, kind, unit)
            typ = "counter" if kind == "counter" else "gauge"
            metric = Metric(prom, description, typ)
            sample_name = prom + "_total" if typ == "counter" else prom
            for point in observe(self._base, snapshot):
                labels = {label_name(k): str(v) for k, v in (point.attributes or {}).items()}
                metric.samples.append(Sample(sample_name, labels, float(point.value)))
            if metric.samples:
                yield metric


class Pusher:
    """Pushes one backfill's figures; a gateway that is down is one warning, never an error."""

    def __init__(
        self,
        url: str,
        job: str,
        grouping_key: Mapping[str, str],
        timeout: float,
    ) -> None:
        self.url = url
        self.job = job
        self.grouping_key = dict(grouping_key)
        self.timeout = timeout
        self._lock = threading.Lock()  # pushes land in order: the final one last
        self._ended = False
        self._warned = False
        self._failing = False
        self.pushes = 0

    def push(
        self,
        base: Attrs,
        snapshot: Snapshot,
        *,
        success_time: float | None = None,
        final: bool = False,
    ) -> bool:
        """Push now; True when the gateway took it. No push follows the final one."""
        registry = CollectorRegistry()
        registry.register(_Figures(base, snapshot, success_time))
        with self._lock:
            if self._ended:
                return False
            self._ended = final
            try:
                pushadd_to_gateway(self.url, job=self.job, grouping_key=self.grouping_key,
                                   registry=registry, timeout=self.timeout)  # fmt: skip
            except Exception as error:  # a gateway that is down must not fail the job
                self._failing = True
                if not self._warned:
                    self._warned = True
                    _log.warning(
                        "jobmeter: backfill %r cannot push to the Pushgateway at %s: %s; the "
                        "backfill goes on and pushes again later", self.job, self.url, error,
                    )  # fmt: skip
                return False
            if self._failing:
                self._failing = False
                _log.info("jobmeter: backfill %r pushes to %s again", self.job, self.url)
            self.pushes += 1
            return True

    def push_bounded(self, base: Attrs, snapshot: Snapshot, success_time: float | None) -> bool:
        """The final push: waits at most the push timeout plus a second, whatever the gateway does.

        A DNS look-up or a push in flight is not bounded by the socket timeout,
        so the push runs in a daemon thread and is abandoned when late.
        """
        done = threading.Event()
        result: list[Any] = []

        def run() -> None:
            try:
                result.append(self.push(base, snapshot, success_time=success_time, final=True))
            finally:
                done.set()

        started = time.monotonic()
        threading.Thread(target=run, name="jobmeter-backfill-push", daemon=True).start()
        if done.wait(self.timeout + 1.0):
            return bool(result and result[0])
        if not self._warned:
            self._warned = True
            _log.warning(
                "jobmeter: backfill %r: the final push to %s did not finish within %.1f s; "
                "given up", self.job, self.url, time.monotonic() - started,
            )  # fmt: skip
        return False
