"""The Prometheus page of OTel points, written straight to text.

OTel's Prometheus reader turns each collection into prometheus_client metric
families (a ``Sample`` namedtuple and a label dict per line), and
prometheus_client formats every line again at every scrape: for 1,000
operations, 33,000 lines, most of a scrape's time. ``Exposition`` writes the
same page from the points themselves, in text format 0.0.4 or OpenMetrics 1.0,
byte for byte what the two would write (tests/core/test_exposition.py
compares them): the same name translation (``otel_private.prometheus_name``:
unit suffixes, ``_total``), the same ``target_info`` and ``otel_scope_*``
labels, the same label padding, order and escaping, the same number format.
What changes between scrapes is only numbers: each series' label text and each
histogram's bucket line prefixes are made once and kept.

``write`` answers None where the page would need prometheus_client's name
escaping (a name or label outside the legacy character set): the caller then
serves prometheus_client's page. Its ``tail`` writes what follows jobmeter's
families (prometheus_client's default registry, ``default_registry``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    MetricsData,
    Sum,
)
from prometheus_client.utils import floatToGoString

from jobmeter._core import otel_private

# What OTel's reader writes (opentelemetry-exporter-prometheus 0.66).
_TARGET: Final = ("target", "Target metadata")
_SCOPE_LABELS: Final = ("otel_scope_name", "otel_scope_version", "otel_scope_schema_url")
_SCOPE_PREFIX: Final = "otel_scope_"
# prometheus_client's legacy names; outside them it escapes, and we hand the page back.
_METRIC_NAME: Final = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_LABEL: Final = re.compile(r"^__.*$")
#: Label texts and bucket prefixes kept at most; past it the caches start over.
CACHE_LIMIT: Final = 100_000
#: What follows the families on a page: their (name, type) and target_info's labels -> text.
Tail = Callable[[list[tuple[str, str]], dict[str, str]], str]


class _Family:
    """One metric family: its header lines and sample lines, in order."""

    __slots__ = ("keys", "kind", "lines", "name", "openmetrics_header", "text_header")

    def __init__(
        self, name: str, kind: str, documentation: str, unit: str, keys: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.kind = kind
        # The label names of the first metric of the family: prometheus_client zips the
        # label values of every later one with them (OTel's reader, as it is).
        self.keys = keys
        sample = {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)
        text_kind = {"info": "gauge"}.get(kind, kind)
        text_doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.text_header = f"# HELP {sample} {text_doc}\n# TYPE {sample} {text_kind}\n"
        om_doc = _escape(documentation)
        unit_line = f"# UNIT {name} {unit}\n" if unit else ""
        self.openmetrics_header = f"# HELP {name} {om_doc}\n# TYPE {name} {kind}\n{unit_line}"
        self.lines: list[str] = []


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """prometheus_client's ``floatToGoString``, without its float() for small ints."""
    if type(value) is int and -(10**15) < value < 1_000_000:
        return f"{value}.0"
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _label_value(value: Any) -> str:
    """OTel's reader: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


class Exposition:
    """Writes the page OTel's Prometheus reader and prometheus_client would serve.

    Args:
        resource_filter: which resource attributes become labels of every
            series (the reader's ``resource_attribute_filter``); None for none.
    """

    def __init__(self, resource_filter: Callable[[str], bool] | None = None) -> None:
        self._filter = resource_filter
        self._names: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self._label_names: dict[str, str | None] = {}
        self._texts: dict[tuple[Any, ...], Any] = {}
        # (resources, their target_info line, its labels)
        self._target: tuple[Any, str, dict[str, str]] | None = None

    def write(
        self, data: MetricsData | None, openmetrics: bool, tail: Tail | None = None
    ) -> bytes | None:
        """The page of one collection; None where prometheus_client must write it.

        ``tail`` writes what follows the families (before OpenMetrics' ``# EOF``),
        given their (name, type) and target_info's labels.
        """
        if len(self._texts) > CACHE_LIMIT:
            self._texts = {}
        families: dict[str, _Family] = {}
        if data is not None:
            try:
                if not self._translate(data, families):
                    return None
            except _UnwritableError:
                return None
        out: list[str] = []
        for family in families.values():
            out.append(family.openmetrics_header if openmetrics else family.text_header)
            out.extend(family.lines)
        if tail is not None:
            labels = self._target[2] if data is not None and self._target is not None else {}
            out.append(tail([(f.name, f.kind) for f in families.values()], labels))
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode("utf-8")

    def _translate(self, data: MetricsData, families: dict[str, _Family]) -> bool:
        resources = data.resource_metrics
        target = families["target"] = _Family("target", "info", _TARGET[1], "")
        target.lines.append(self._target_info(resources))
        for rm in resources:
            resource_labels = self._resource_labels(rm.resource.attributes)
            for sm in rm.scope_metrics:
                scope = sm.scope
                scope_labels = [(_SCOPE_PREFIX + k, v) for k, v in (scope.attributes or {}).items()]
                own = (scope.name or "", scope.version or "", scope.schema_url or "")
                scope_labels += zip(_SCOPE_LABELS, own, strict=True)
                for metric in sm.metrics:
                    self._metric(metric, [*resource_labels, *scope_labels], families)
        return True

    def _target_info(self, resources: Iterable[Any]) -> str:
        """The target_info line of the first collection's resources (a fork's are new)."""
        resources = list(resources)
        key = tuple(rm.resource for rm in resources)
        if self._target is None or self._target[0] != key:
            attributes: dict[str, Any] = {}
            for rm in resources:
                attributes = {**attributes, **rm.resource.attributes}
            labels = {self._label(k): _label_value(v) for k, v in attributes.items()}
            self._target = (key, f"target_info{_braces(labels)} 1.0\n", labels)
        return self._target[1]

    def _resource_labels(self, attributes: Any) -> list[tuple[str, Any]]:
        if self._filter is None:
            return []
        return [(k, v) for k, v in attributes.items() if self._filter(k)]

    def _metric(
        self, metric: Any, common: list[tuple[str, Any]], families: dict[str, _Family]
    ) -> None:
        data = metric.data
        if isinstance(data, Sum):
            gauge = not data.is_monotonic and (
                data.aggregation_temporality == AggregationTemporality.CUMULATIVE
            )
            kind = "gauge" if gauge else "counter"
        elif isinstance(data, Gauge):
            kind = "gauge"
        elif isinstance(data, Histogram):
            kind = "histogram"
        else:
            raise _UnwritableError  # OTel's reader warns and skips it: leave that to it
        description = metric.description or ""
        found = self._family_name(metric.name, metric.unit or "", kind)
        if found is None:
            raise _UnwritableError
        base, unit = found
        rows = []
        keys: set[str] = set()
        for point in data.data_points:
            labels: dict[str, str] = {}
            for key, value in (*common, *point.attributes.items()):
                labels[self._label(key)] = _label_value(value)
            keys.update(labels)
            rows.append((labels, point))
        label_keys = tuple(sorted(keys))
        family_id = f"{base}|{description}|{unit}|{kind}"
        family = families.get(family_id)
        if family is None:
            name = base[:-6] if kind == "counter" and base.endswith("_total") else base
            if unit and not name.endswith("_" + unit):
                name += "_" + unit
            family = families[family_id] = _Family(name, kind, description, unit, label_keys)
        names, lines = family.keys, family.lines
        if kind == "histogram":
            if "le" in names:
                raise _UnwritableError
            for labels, point in rows:
                values = tuple(labels.get(k, "") for k in label_keys)
                lines.extend(self._histogram(family.name, names, values, point))
            return
        sample = f"{family.name}_total" if kind == "counter" else family.name
        texts = self._texts
        for labels, point in rows:
            key = (sample, names, tuple(labels.get(k, "") for k in label_keys))
            text = texts.get(key)
            if text is None:
                text = texts[key] = f"{sample}{_braces(dict(zip(names, key[2], strict=False)))} "
            lines.append(text + _number(point.value) + "\n")

    def _histogram(
        self, name: str, names: tuple[str, ...], values: tuple[str, ...], point: Any
    ) -> list[str]:
        bounds = tuple(point.explicit_bounds)
        key = (name, names, values, bounds)
        prefixes = self._texts.get(key)
        if prefixes is None:
            padded = dict(zip(names, values, strict=False))  # as prometheus_client zips
            prefixes = [
                f"{name}_bucket{_braces({**padded, 'le': f'{bound}'})} "
                for bound in (*bounds, "+Inf")
            ]
            plain = _braces(padded)
            prefixes += [f"{name}_count{plain} ", f"{name}_sum{plain} "]
            self._texts[key] = prefixes
        lines = []
        total = 0
        for prefix, count in zip(prefixes, point.bucket_counts, strict=False):
            total += count
            lines.append(prefix + _number(total) + "\n")
        if bounds and bounds[0] < 0:
            return lines  # prometheus_client writes no count and sum then
        lines.append(prefixes[-2] + _number(total) + "\n")
        lines.append(prefixes[-1] + _number(point.sum) + "\n")
        return lines

    def _family_name(self, name: str, unit: str, kind: str) -> tuple[str, str] | None:
        key = (name, unit, kind)
        if key not in self._names:
            base, suffix = otel_private.prometheus_name(name, unit)
            full = base[:-6] if kind == "counter" and base.endswith("_total") else base
            full += f"_{suffix}" if suffix and not full.endswith("_" + suffix) else ""
            samples = [full + s for s in ("_total", "_info", "_bucket", "_count", "_sum", "")]
            valid = all(_METRIC_NAME.match(s) for s in samples) and ":" not in full
            self._names[key] = (base, suffix) if valid else None
        return self._names[key]

    def _label(self, key: str) -> str:
        label = self._label_names.get(key)
        if label is None:
            if key in self._label_names:
                raise _UnwritableError
            if len(self._label_names) > CACHE_LIMIT:
                self._label_names = {}
            label = otel_private.prometheus_label(key)
            valid = _LABEL_NAME.match(label) and not _RESERVED_LABEL.match(label)
            self._label_names[key] = label if valid else None
            if not valid:
                raise _UnwritableError
        return label


class _UnwritableError(Exception):
    """The page needs prometheus_client's escaping (or holds what OTel's reader skips)."""


def _braces(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"
