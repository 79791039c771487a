"""prometheus_client's default registry, served on the endpoint beside jobmeter's families.

A program moving to jobmeter keeps its prometheus_client metrics on
``prometheus_client.REGISTRY``; the endpoint serves them after jobmeter's own,
as ``JOBMETER_PROMETHEUS_DEFAULT_REGISTRY`` says: ``true`` (the default) the
program's collectors, ``all`` also prometheus_client's process, gc and
platform collectors (which every REGISTRY holds from import), ``false`` none.
``true`` leaves those three out because jobmeter has its own figures of the
process (HostCollector's ``process.*``, the resource in ``target_info``), and
under ``jobmeter run`` every process of the job would serve them again
(docs/architecture.md).

A family that takes a name of one of jobmeter's is left out, with one warning
(``family_names``). Where processes share an endpoint, each sample gets its
process's identity labels (as jobmeter's series there), read from target_info.
The collectors are called at each scrape, as prometheus_client's own endpoint
calls them; one that raises is left out of the scrapes while it fails, with one
warning.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from jobmeter._core.family_names import DEFAULT_MARK, ClashError, clash, report, taken_by

_log = logging.getLogger("jobmeter")

#: prometheus_client's own collectors on REGISTRY, served only with ``all``.
BUILTIN: Final = (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR)
_EOF: Final = "# EOF\n"


class Families:
    """Families already collected, as a collector (what prometheus_client's writers read)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Sequence[Metric]:
        """The families, as they are."""
        return self.families


class DefaultRegistry:
    """What the endpoint serves of a prometheus_client registry (REGISTRY by default).

    Args:
        mode: ``true`` (the registry's collectors but prometheus_client's own
            three) or ``all``.
        strict: a clash is a ``ClashError`` instead of a warning.
        identity: the labels of target_info that every sample gets (a shared endpoint's).
        registry: the registry read.
    """

    def __init__(
        self,
        mode: str = "true",
        *,
        strict: bool = False,
        identity: Sequence[str] = (),
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        if mode not in ("true", "all"):
            raise ValueError(f"mode must be 'true' or 'all', not {mode!r}")
        self.mode = mode
        self.strict = strict
        self.identity = tuple(identity)
        self.registry = registry
        self._failing: set[str] = set()

    def families(
        self, jobmeter: Iterable[tuple[str, str]], target_labels: Mapping[str, str]
    ) -> list[Metric]:
        """The registry's families that take no name of ``jobmeter``'s (name, type) families."""
        found = self._collect()
        if not found:
            return []
        taken = taken_by(jobmeter)
        labels = self._labels(target_labels)
        served = []
        for metric in found:
            owner = clash(metric.name, metric.type, taken)
            if owner is not None:
                report(metric.name, metric.type, owner, self.mode, strict=self.strict)
                continue
            if labels:
                metric = copy.copy(metric)
                metric.samples = [s._replace(labels={**s.labels, **labels}) for s in metric.samples]
            served.append(metric)
        return served

    def text(
        self,
        jobmeter: Iterable[tuple[str, str]],
        target_labels: Mapping[str, str],
        *,
        openmetrics_format: bool = False,
        escaping: str = openmetrics.UNDERSCORES,
        mark: bool = False,
    ) -> str:
        """The served families as text, to follow jobmeter's (no ``# EOF``).

        ``mark``: a shared endpoint's page, where DEFAULT_MARK heads them and a
        strict clash is its CLASH_MARK line (the host's merge raises it).
        """
        try:
            families = self.families(jobmeter, target_labels)
        except ClashError as error:
            if not mark:
                raise
            return error.line + "\n"
        if not families:
            return ""
        if openmetrics_format:
            written = openmetrics.generate_latest(  # type: ignore[no-untyped-call]
                Families(families), escaping=escaping, version="1.0.0"
            )
            page = written.decode("utf-8").removesuffix(_EOF)
        else:
            page = generate_latest(Families(families), escaping=escaping).decode("utf-8")
        return f"{DEFAULT_MARK}\n{page}" if mark else page

    def _collect(self) -> list[Metric]:
        collectors, with_target = self._collectors()
        found: list[Metric] = []
        target = self.registry.get_target_info() if with_target else None
        if target:
            info = Metric("target", "Target metadata", "info")
            info.add_sample("target_info", dict(target), 1)
            found.append(info)
        for collector in collectors:
            try:
                found.extend(collector.collect())
            except Exception as error:  # the user's collector: it must not stop the scrape
                self._failed(collector, error)
        return found

    def _collectors(self) -> tuple[list[Collector], bool]:
        registry: Any = self.registry
        try:
            # Its collectors, without calling the three left out (the process one reads /proc);
            # prometheus_client's RestrictedRegistry reads them so too.
            with registry._lock:
                collectors: list[Collector] = list(registry._collector_to_names)
        except AttributeError:  # a prometheus_client that keeps them elsewhere: all of it
            return [registry], False
        if self.mode != "all":
            collectors = [c for c in collectors if not any(c is b for b in BUILTIN)]
        return collectors, True

    def _labels(self, target_labels: Mapping[str, str]) -> dict[str, str]:
        labels = {k: target_labels[k] for k in self.identity if k in target_labels}
        if self.identity and "process_pid" not in labels:
            labels["process_pid"] = str(os.getpid())
        return labels

    def _failed(self, collector: Collector, error: Exception) -> None:
        name = type(collector).__qualname__
        if name not in self._failing:
            self._failing.add(name)
            _log.warning("jobmeter: a collector of the default prometheus_client registry "
                         "(%s) failed: %s; its metrics are left out of the scrapes while it "
                         "fails", name, error)  # fmt: skip


def target_labels(families: Iterable[Metric]) -> dict[str, str]:
    """The labels of the target_info among ``families`` (empty without one)."""
    for metric in families:
        if metric.name == "target" and metric.type == "info" and metric.samples:
            return dict(metric.samples[0].labels)
    return {}


def text_with_registry(
    own: Collector, default: DefaultRegistry | None, *, mark: bool = False
) -> bytes:
    """``own``'s families in text format 0.0.4, then the default registry's."""
    families = list(own.collect())
    page = generate_latest(Families(families))
    if default is None:
        return page
    names = [(m.name, m.type) for m in families]
    return page + default.text(names, target_labels(families), mark=mark).encode("utf-8")


class Served:
    """What prometheus_client's app serves on the endpoint: ``own``, then the default registry's.

    ``restricted_registry`` (the ``name[]`` filters) keeps the samples of those names.
    """

    def __init__(
        self,
        own: CollectorRegistry,
        default: DefaultRegistry | None,
        names: frozenset[str] | None = None,
    ) -> None:
        self.own = own
        self.default = default
        self.names = names

    def collect(self) -> list[Metric]:
        """Both registries' families, the default registry's without the clashing ones."""
        found = list(self.own.collect())
        if self.default is not None:
            jobmeter = [(m.name, m.type) for m in found]
            found += self.default.families(jobmeter, target_labels(found))
        if self.names is None:
            return found
        return [m for m in (_restricted(m, self.names) for m in found) if m is not None]

    def restricted_registry(self, names: Iterable[str]) -> Served:
        """The same, with only the samples named."""
        return Served(self.own, self.default, frozenset(names))


def _restricted(metric: Metric, names: frozenset[str]) -> Metric | None:
    samples = [s for s in metric.samples if s.name in names]
    if not samples:
        return None
    kept = copy.copy(metric)
    kept.samples = samples
    return kept
