"""A stand-in for a DuckDB relation: its reads are statements of its connection.

A relation from ``sql()`` (or ``table()``, ``read_parquet()`` ...) runs its
query each time it is read. The methods that read a whole result end the
operation when they return; those that hand out a reader (``to_arrow_reader``)
or an iterator (``iter_rows``) leave it open until it is drained or the
connection's next statement starts. Methods that derive a new relation
(``filter``, ``join`` ...) return a stand-in too, with DuckDB objects passed
through unwrapped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import duckdb

from jobmeter._sql import Fingerprint, fingerprint

if TYPE_CHECKING:
    from jobmeter._duckdb_proxy import ProfiledConnection

UNKNOWN: Final = Fingerprint("", "UNKNOWN", 0, False)
# DuckDB names each relation of a chain with a random suffix; one chain is one shape.
_RELATION_NAME: Final = re.compile(r"unnamed_relation_[0-9a-f]+")

# Connection and relation methods that read a whole result.
CONSUMING: Final = frozenset(
    {"arrow", "df", "fetch_arrow_table", "fetch_df", "fetchall", "fetchdf", "fetchnumpy", "pl",
     "tf", "to_arrow_table", "to_df", "to_dicts", "torch", "show", "write_csv", "to_csv",
     "write_parquet", "to_parquet", "create", "to_table", "insert_into", "insert", "update",
     "materialize", "shape", "execute"}
)  # fmt: skip
# Relation methods that hand out a result to be read later.
STREAMING: Final = frozenset({"to_arrow_reader", "fetch_arrow_reader", "fetch_record_batch"})


def count_rows(result: object) -> int:
    """Rows in what a fetch returned: a list, a DataFrame, an Arrow table, a dict of columns."""
    if type(result) is list:
        return len(result)
    if result is None or isinstance(result, duckdb.DuckDBPyRelation):
        return -1  # nothing fetched; a relation's len() or shape would run a query
    if isinstance(result, dict):  # fetchnumpy(), torch(), tf(): equal-length columns
        for column in result.values():
            return len(column)
        return 0
    rows = getattr(result, "num_rows", None)  # Arrow
    if isinstance(rows, int):
        return rows
    shape = getattr(result, "shape", None)  # pandas, polars
    if isinstance(shape, tuple) and shape and isinstance(shape[0], int):
        return shape[0]
    return -1


class ProfiledRelation:
    """A DuckDB relation whose reads are recorded as statements of its connection."""

    __slots__ = ("__weakref__", "_fp", "_owner", "_rel")

    def __init__(
        self, relation: duckdb.DuckDBPyRelation, owner: ProfiledConnection, fp: Fingerprint | None
    ) -> None:
        self._rel = relation
        self._owner = owner
        self._fp = fp

    def _fingerprint(self) -> Fingerprint:
        if self._fp is None:
            try:
                text = _RELATION_NAME.sub("unnamed_relation", self._rel.sql_query())
                self._fp = fingerprint(text)
            except duckdb.Error:
                self._fp = UNKNOWN
        return self._fp

    def _read(self, call: Callable[[], Any], streaming: bool = False) -> Any:
        owner = self._owner
        fp = self._fingerprint()
        op = owner._start(fp, self)
        try:
            result = call()
        except BaseException as exc:
            owner._fail(op, exc)
            raise
        if not streaming:
            op.fetched(count_rows(result))
            owner._finish()
        return owner._wrap(result)

    def iter_rows(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        rows = self._read(lambda: self._rel.iter_rows(*args, **kwargs), streaming=True)
        owner, op = self._owner, self._owner._pending
        try:
            for row in rows:
                if op is not None:
                    op.fetched(1)
                yield row
        except BaseException as exc:
            if op is not None and owner._pending is op:
                owner._fail(op, exc)
            raise
        if op is not None and owner._pending is op:
            owner._finish()

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._rel)

    def __repr__(self) -> str:
        return repr(self._rel)

    def __str__(self) -> str:
        return str(self._rel)

    def __len__(self) -> int:
        return len(self._rel)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._rel, name)
        if not callable(attribute):
            return attribute
        if name in CONSUMING or name in STREAMING:
            streaming = name in STREAMING
            return lambda *args, **kwargs: self._read(lambda: attribute(*args, **kwargs), streaming)

        def derived(*args: Any, **kwargs: Any) -> Any:
            return self._owner._wrap(unwrap_all(attribute, args, kwargs))

        return derived


def _unwrap(value: Any) -> Any:
    if type(value) is ProfiledRelation:
        return value._rel
    inner = getattr(value, "_jobmeter_wrapped", None)  # a ProfiledConnection
    return value if inner is None else inner


def unwrap_all(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call DuckDB with our stand-ins replaced by what they stand for (joins, unions)."""
    return call(*map(_unwrap, args), **{key: _unwrap(value) for key, value in kwargs.items()})
