"""A backfill's figures for the Pushgateway, as the Prometheus endpoint names them.

The group is the backfill's name as ``job`` and the host as ``instance`` (plus
stable labels the caller adds). The last-success timestamp is pushed at a
successful end only, so that a failed run keeps the previous success's time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from prometheus_client.metrics_core import Metric

from jobmeter._core import pushgateway
from jobmeter.backfill._metrics import ASYNC_METRICS, Attrs
from jobmeter.backfill._snapshot import Snapshot

_LAST_SUCCESS = "jobmeter.backfill.last_success.timestamp"
AGAIN = "the backfill goes on and pushes again later"


def families(base: Attrs, snapshot: Snapshot, success_time: float | None) -> list[Metric]:
    """The pushed metrics of one backfill: its OTel figures, under their Prometheus names."""
    if success_time is not None:
        snapshot = replace(snapshot, last_success=success_time)
    found = []
    for instrument, observe in ASYNC_METRICS:
        if instrument.name == _LAST_SUCCESS and success_time is None:
            continue
        points = ((point.value, point.attributes or {}) for point in observe(base, snapshot))
        metric = pushgateway.family(instrument, points)
        if metric is not None:
            found.append(metric)
    return found


class Pusher:
    """Pushes one backfill's figures; a gateway that is down is one warning, never an error."""

    def __init__(self, url: str, job: str, grouping_key: Mapping[str, str], timeout: float) -> None:
        self.gateway = pushgateway.Pushgateway(
            url, job, pushgateway.grouping_key(grouping_key), timeout, who=f"backfill {job!r}"
        )

    @property
    def pushes(self) -> int:
        """Pushes the gateway took."""
        return self.gateway.pushes

    def push(self, base: Attrs, snapshot: Snapshot) -> bool:
        """Push the figures now; True when the gateway took them."""
        return self.gateway.push(families(base, snapshot, None), again=AGAIN)

    def push_final(self, base: Attrs, snapshot: Snapshot, success_time: float | None) -> bool:
        """The last push, bounded by the push timeout plus a second."""
        return self.gateway.push_final(families(base, snapshot, success_time))
