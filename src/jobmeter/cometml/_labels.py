"""Counting label values for ``jobmeter.cometml.log_label_distribution`` (no comet_ml here).

A DuckDB relation, or a query on a connection, is counted by DuckDB itself
(``GROUP BY``): millions of labels never come into Python one by one.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

ACCEPTED = (
    "a list or other iterable of labels, a pandas Series, a mapping of label to count, "
    "a DuckDB relation of one column, or a (connection, SQL) pair"
)


def count(values: Any) -> list[tuple[Any, int]]:
    """(label, count) pairs, most frequent first, then by label; NaN counts as None.

    Raises:
        TypeError: values is none of the accepted kinds, or a label is unhashable.
        ValueError: a relation has more than one column, or a mapping's count is
            not a whole number of 0 or more.
    """
    if isinstance(values, str | bytes):
        raise TypeError(f"values must be {ACCEPTED}; got a single {type(values).__name__}")
    if isinstance(values, tuple) and len(values) == 2 and hasattr(values[0], "sql"):
        connection, sql = values
        if not isinstance(sql, str):
            raise TypeError(f"the SQL of a (connection, SQL) pair must be a string, "
                            f"got {type(sql).__name__}")  # fmt: skip
        return _sorted(_relation_counts(connection.sql(sql)))
    if hasattr(values, "columns") and hasattr(values, "aggregate"):
        return _sorted(_relation_counts(values))
    if isinstance(values, Mapping):
        return _sorted(_mapping_counts(values))
    if hasattr(values, "value_counts") and hasattr(values, "tolist"):
        values = values.tolist()  # a pandas Series (or Index): plain Python labels
    if not isinstance(values, Iterable):
        raise TypeError(f"values must be {ACCEPTED}; got {type(values).__name__}")
    try:
        counted = Counter(_plain(value) for value in values)
    except TypeError as error:
        raise TypeError(f"every label must be hashable (a string, number, bool or None): "
                        f"{error}") from None  # fmt: skip
    return _sorted(counted.items())


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None  # NaN != NaN: every NaN would be its own label
    item = getattr(value, "item", None)  # numpy scalars: their Python value
    return _plain(item()) if callable(item) and not isinstance(value, int | float) else value


def _relation_counts(relation: Any) -> list[tuple[Any, int]]:
    columns = list(relation.columns)
    if len(columns) != 1:
        raise ValueError(f"a relation of labels must have exactly one column, "
                         f"got {len(columns)}: {columns}")  # fmt: skip
    column = '"' + str(columns[0]).replace('"', '""') + '"'
    rows = relation.aggregate(f"{column}, count(*)", column).fetchall()
    return [(_plain(label), int(n)) for label, n in rows]


def _mapping_counts(counts: Mapping[Any, Any]) -> list[tuple[Any, int]]:
    out = []
    for label, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"the count of label {label!r} must be a whole number of 0 or "
                             f"more, got {n!r}")  # fmt: skip
        out.append((label, n))
    return out


def _sorted(pairs: Iterable[tuple[Any, int]]) -> list[tuple[Any, int]]:
    return sorted(pairs, key=lambda pair: (-pair[1], str(pair[0])))


def numeric(labels: list[Any]) -> bool:
    """True when every label is a number (not a bool): the histogram uses the values."""
    return bool(labels) and all(
        isinstance(label, int | float) and not isinstance(label, bool) for label in labels
    )


def file_name(name: str) -> str:
    """A safe asset name for a distribution's table."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "labels"
