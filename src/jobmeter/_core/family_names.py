"""The names a metric family takes on a page, and what a clash with jobmeter's families does.

The endpoint serves jobmeter's families and, beside them, the families of
prometheus_client's default registry (``default_registry``). Two families
clash when they take a common name: a family takes its own name and the names
of the samples its type writes, the rule by which prometheus_client's own
registry refuses a second collector (``CollectorRegistry._get_names``). A
page holding both would repeat a HELP and TYPE, split a family in two, or give
one sample name two types; so jobmeter's family is served, the registry's is
left out, and one warning per name says so. In strict mode the clash is a
``ConfigurationError`` instead, which the scrape that finds it answers with
HTTP 500 (the server goes on serving).

Standard library only: the shared endpoint's merge (``shared_endpoint``) uses
it in ``jobmeter run``'s wrapper before the SDK loads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Final

from jobmeter._core import reset
from jobmeter._core.errors import ConfigurationError
from jobmeter._core.variables import PROMETHEUS_DEFAULT_REGISTRY

_log = logging.getLogger("jobmeter")

# The sample names of each type, after the family's name (prometheus_client's table).
SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}
#: Families of the text format that prometheus_client writes after a family's own.
SIDE_SUFFIXES: Final = ("_created", "_gsum", "_gcount")
#: In a shared endpoint's text pages, the line before a process's default-registry families.
DEFAULT_MARK: Final = "# jobmeter: default registry"
#: In a shared endpoint's text pages, a strict clash a member found: the line and its detail.
CLASH_MARK: Final = "# jobmeter: clash "
_ACCEPTED: Final = (
    "metric names that jobmeter's families do not take (rename the metric), or false to "
    "serve none of the registry"
)

_lock = threading.Lock()
_reported: set[str] = set()  # the registry's names already warned about: once each per process


def names_of(name: str, kind: str) -> tuple[str, ...]:
    """Every name a family of this OpenMetrics name and type takes."""
    return (name, *(name + suffix for suffix in SUFFIXES.get(kind, ())))


def text_family(name: str, kind: str) -> tuple[str, str]:
    """(OpenMetrics name, type) of a family headed ``# TYPE name kind`` in text format 0.0.4."""
    if kind == "counter" and name.endswith("_total"):
        return name[:-6], kind
    return name, "unknown" if kind == "untyped" else kind


def taken_by(families: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Each name that these (name, type) families take -> the family that takes it."""
    taken: dict[str, tuple[str, str]] = {}
    for name, kind in families:
        for each in names_of(name, kind):
            taken.setdefault(each, (name, kind))
    return taken


def clash(name: str, kind: str, taken: Mapping[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The jobmeter family that the registry's family ``name`` clashes with, or None."""
    for each in names_of(name, kind):
        found = taken.get(each)
        if found is not None:
            return found
    return None


def detail(name: str, kind: str, owner: tuple[str, str]) -> str:
    """What clashes with what, in words."""
    return (
        f"the default prometheus_client registry's {kind} {name} takes a name of jobmeter's "
        f"{owner[1]} {owner[0]}"
    )


class ClashError(ConfigurationError):
    """A clash in strict mode; ``line`` carries it in a shared endpoint's text page."""

    def __init__(self, mode: str, what: str) -> None:
        super().__init__(PROMETHEUS_DEFAULT_REGISTRY, mode, _ACCEPTED, what)
        self.detail = what

    @property
    def line(self) -> str:
        """The CLASH_MARK line of this error."""
        return f"{CLASH_MARK}{self.value} {self.detail}"

    @classmethod
    def from_line(cls, line: str) -> ClashError:
        """The error of a member's CLASH_MARK line (its mode, then its detail)."""
        mode, _, what = line[len(CLASH_MARK) :].partition(" ")
        return cls(mode, what)


def report(name: str, kind: str, owner: tuple[str, str], mode: str, *, strict: bool) -> None:
    """One clash found: warn once for ``name`` (the registry's family is left out), or raise."""
    reset.on_reset(_forget, reset.TELEMETRY)
    what = detail(name, kind, owner)
    with _lock:
        first = name not in _reported
        _reported.add(name)
    if strict:
        error = ClashError(mode, what)
        if first:
            _log.error("jobmeter: %s; the scrapes fail until it is gone", error)
        raise error
    if first:
        _log.warning(
            "jobmeter: %s; the endpoint serves jobmeter's %s and leaves the registry's %s out "
            "(rename the %s, or set %s=false to serve none of the registry)",
            what, owner[1], kind, kind, PROMETHEUS_DEFAULT_REGISTRY,
        )  # fmt: skip


def _forget() -> None:
    with _lock:
        _reported.clear()
