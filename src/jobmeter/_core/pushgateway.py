"""The one Pushgateway client: where the gateway is, how a group is named, and a push that
never stops the job.

Figures go as plain Prometheus metrics named as the Prometheus endpoint names
OTel instruments, by the exporter's own translation (``jobmeter.backfill.rate``
in ``{item}/s`` becomes ``jobmeter_backfill_rate_per_second``; a counter gets
``_total``), so that a dashboard reads pushed and scraped series alike.
Pushes are POSTs (``pushadd``): they replace only the metrics pushed, so a
last-success timestamp pushed on success alone survives a failed run. The
grouping key is a job name and stable labels, the host as ``instance``; never
a run id, since the gateway keeps every group forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, pushadd_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from jobmeter._core import otel_private, waits
from jobmeter._core.environment import read
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.instruments import Instrument
from jobmeter._core.machine import host_name
from jobmeter._core.parse import parse_pushgateway_url
from jobmeter._core.variables import PUSHGATEWAY_URL

_log = logging.getLogger("jobmeter")

#: Labels the grouping key owns; a pushed label of the same name is renamed ``exported_*``.
RESERVED: Final = frozenset({"job", "instance"})
#: How far past its timeout the final push may keep the job waiting.
FINAL_GRACE_S: Final = 1.0

Points = Iterable[tuple[float, Mapping[str, object]]]


def gateway_url(value: str | None = None, setting: str = "pushgateway") -> str | None:
    """The Pushgateway URL: ``value`` (named ``setting``), else JOBMETER_PUSHGATEWAY_URL, else None.

    A variable that cannot be used is one warning and no push (an error in
    strict mode).

    Raises:
        ConfigurationError: ``value`` is not an http(s) URL with a host.
    """
    if value is None:
        return read(PUSHGATEWAY_URL, parse_pushgateway_url, None, "nothing is pushed")
    if not isinstance(value, str):  # the user's argument, unchecked by the type checker
        raise ConfigurationError(setting, value, "a URL such as http://pushgateway:9091")
    return parse_pushgateway_url(setting, value)


def grouping_key(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The group of a per-machine job: the host as ``instance``, plus stable ``extra`` labels.

    The host is as ``JOBMETER_HOST_NAME`` shows it; ``omit`` leaves ``instance`` out.
    """
    name = host_name()
    return {**({} if name is None else {"instance": name}), **(extra or {})}


def label_name(key: str) -> str:
    """The Prometheus label of an attribute, as the endpoint writes it."""
    name = otel_private.prometheus_label(key)
    return f"exported_{name}" if name in RESERVED else name


def family(instrument: Instrument, points: Points) -> Metric | None:
    """The Prometheus metric of one instrument's points, or None without points."""
    name, unit = otel_private.prometheus_name(instrument.name, instrument.unit)
    counter = instrument.kind == "counter"  # up-down counters are gauges, as on the endpoint
    metric = Metric(name, instrument.description, "counter" if counter else "gauge", unit)
    sample_name = metric.name + "_total" if counter else metric.name
    for value, attributes in points:
        labels = {label_name(key): str(v) for key, v in attributes.items()}
        metric.samples.append(Sample(sample_name, labels, float(value)))
    return metric if metric.samples else None


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


class Pushgateway:
    """Pushes one job's group; a gateway that is down is one warning, never an error.

    Args:
        url: the gateway (see ``gateway_url``).
        job: the ``job`` of the group.
        grouping_key: the group's other labels (see ``grouping_key``).
        timeout: seconds one push may take.
        who: who pushes, for the warnings (``"backfill 'orders'"``); None for a plain message.
    """

    def __init__(
        self,
        url: str,
        job: str,
        grouping_key: Mapping[str, str],
        timeout: float,
        who: str | None = None,
    ) -> None:
        self.url = url
        self.job = job
        self.grouping_key = dict(grouping_key)
        self.timeout = timeout
        self._who = who
        self._lock = threading.Lock()  # pushes land in order: the final one last
        self._ended = False
        self._warned = False
        self._failing = False
        self.pushes = 0

    def push(self, families: Iterable[Metric], *, final: bool = False, again: str = "") -> bool:
        """Push now; True when the gateway took it. No push follows the final one.

        ``again`` ends the first failure's warning (what happens next, such as
        "the backfill goes on and pushes again later").
        """
        registry = CollectorRegistry()
        registry.register(_Families(families))
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
                    _log.warning("jobmeter: %scannot push to the Pushgateway at %s: %s%s",
                                 self._subject(" "), self.url, error,
                                 f"; {again}" if again else "")  # fmt: skip
                return False
            if self._failing:
                self._failing = False
                _log.info("jobmeter: %spushes to %s again", self._subject(" "), self.url)
            self.pushes += 1
            return True

    def push_final(self, families: Iterable[Metric]) -> bool:
        """The last push: the job waits at most the timeout plus ``FINAL_GRACE_S``.

        A DNS look-up or a push in flight is not bounded by the socket
        timeout, so the push runs in a daemon thread and is abandoned when late.
        """
        pushed = list(families)
        limit = self.timeout + FINAL_GRACE_S
        outcome = waits.bounded(lambda: self.push(pushed, final=True), limit, "jobmeter-push")
        if outcome.finished:
            return bool(outcome.value)
        if not self._warned:
            self._warned = True
            _log.warning("jobmeter: %sthe final push to %s did not finish within %.1f s; given up",
                         self._subject(": "), self.url, limit)  # fmt: skip
        return False

    def _subject(self, separator: str) -> str:
        return f"{self._who}{separator}" if self._who else ""
