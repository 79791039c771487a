"""The point attributes of each DuckDB query series, built once per series and capped.

A series is a statement's database, operation and ``db.query.summary`` (and
its error type when it failed); the masked shapes of one summary share it. Its
attributes are one dict, shared by every point of the series: the query
instruments key their per-series totals by its id. Past ``MAX_SHAPES``
distinct summaries, the rest share ``OTHER_SHAPES``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Final

from opentelemetry.util.types import AttributeValue

_log = logging.getLogger("jobmeter")

Attributes = dict[str, AttributeValue]
ShapeKey = tuple[str, str, str, str | None]

# Distinct summaries per collector; the rest share one. Summaries (operations and
# tables) are far fewer than shapes, but generated table names (one per day) grow
# without end. The SDK keeps at most 2000 points per instrument; phase time has four each.
MAX_SHAPES: Final = 400
OTHER_SHAPES: Final = "(other)"


class ShapeAttributes:
    """A collector's point attributes per query shape, built once each and capped."""

    def __init__(self, base: Mapping[str, AttributeValue]) -> None:
        self._lock = threading.Lock()
        self._base = dict(base)
        self._attributes: dict[ShapeKey, Attributes] = {}
        self._summaries: set[str] = set()
        self._warned_shapes = False

    def attributes(
        self, namespace: str, operation: str, summary: str, error: str | None
    ) -> Attributes:
        """The points' attributes for one query, built once per shape (and capped)."""
        key = (namespace, operation, summary, error)
        found = self._attributes.get(key)
        if found is not None:
            return found
        with self._lock:
            if summary not in self._summaries:
                if len(self._summaries) >= MAX_SHAPES:
                    # Cached under the overflow key only, so the cache stays bounded too.
                    self._warn_shapes()
                    summary = OTHER_SHAPES
                    key = (namespace, operation, summary, error)
                    found = self._attributes.get(key)
                    if found is not None:
                        return found
                else:
                    self._summaries.add(summary)
            found = {
                **self._base,
                "db.system.name": "duckdb",
                "db.namespace": namespace,
                "db.operation.name": operation,
                "db.query.summary": summary,
            }
            if error is not None:
                found["error.type"] = error
            self._attributes[key] = found
        return found

    def _warn_shapes(self) -> None:
        if not self._warned_shapes:
            self._warned_shapes = True
            _log.warning(
                "jobmeter: more than %d DuckDB query shapes; the rest are counted under "
                "db.query.summary=%r",
                MAX_SHAPES, OTHER_SHAPES,
            )  # fmt: skip
