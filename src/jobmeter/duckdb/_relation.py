"""A stand-in for a DuckDB relation: its reads are statements of its connection.

A relation from ``sql()`` (or ``table()``, ``read_parquet()`` ...) runs its
query each time it is read. The methods that read a whole result end the
operation when they return; those that hand out a reader (``to_arrow_reader``)
or an iterator (``iter_rows``) leave it open until it is drained or the
connection's next statement starts, and time each batch or row they read:
the operation's duration is the time inside DuckDB, as on the connection.
Methods that derive a new relation (``filter``, ``join`` ...) return a
stand-in too, with DuckDB objects passed through unwrapped.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any, Final

import duckdb

from jobmeter.duckdb._operation import UNKNOWN, Operation, StatementOwner
from jobmeter.duckdb._sql import Fingerprint, fingerprint

# DuckDB names each relation of a chain with a random suffix; one chain is one shape.
_RELATION_NAME: Final = re.compile(r"unnamed_relation_[0-9a-f]+")

# Connection and relation methods that read a whole result.
CONSUMING: Final = frozenset(
    {"arrow", "df", "fetch_arrow_table", "fetch_df", "fetchall", "fetchdf", "fetchnumpy", "pl",
     "tf", "to_arrow_table", "to_df", "to_dicts", "torch", "show", "write_csv", "to_csv",
     "write_parquet", "to_parquet", "create", "to_table", "insert_into", "insert", "update",
     "materialize", "execute"}
)  # fmt: skip
# Methods that hand out a result to be read later (__arrow_c_stream__: pa.table(rel)).
STREAMING: Final = frozenset(
    {"to_arrow_reader", "fetch_arrow_reader", "fetch_record_batch", "__arrow_c_stream__"}
)
# Methods DuckDB warns about (deprecated, or a result it had to run again).
WARNING_METHODS: Final = frozenset(
    {"fetch_arrow_table", "fetch_arrow_reader", "fetch_record_batch", "to_arrow_table",
     "to_arrow_reader"}
)  # fmt: skip


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
        self, relation: duckdb.DuckDBPyRelation, owner: StatementOwner, fp: Fingerprint | None
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

    def _read(self, call: Callable[[], Any], streaming: bool = False, warns: bool = False) -> Any:
        owner = self._owner
        fp = self._fingerprint()
        op = owner._start(fp, self)
        started = perf_counter()
        try:
            result = passing_warnings(call, 4) if warns else call()
        except BaseException as exc:
            op.elapsed += perf_counter() - started
            owner._fail(op, exc)
            raise
        op.elapsed += perf_counter() - started
        if streaming:
            return timed_reader(result, owner, op)
        op.fetched(count_rows(result))
        owner._finish()
        return owner._wrap(result)

    def iter_rows(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        owner = self._owner
        op = owner._start(self._fingerprint(), self)  # on the first next(), as DuckDB runs it
        rows = iter(self._rel.iter_rows(*args, **kwargs))  # a generator: runs nothing yet
        yield from _timed(rows.__next__, owner, op, _one)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._rel)

    def __repr__(self) -> str:
        return repr(self._rel)

    def __str__(self) -> str:
        return str(self._rel)

    def __len__(self) -> int:
        return self._read(lambda: len(self._rel))  # type: ignore[no-any-return]

    def __getitem__(self, key: Any) -> Any:
        return self._owner._wrap(self._rel[key])

    def __contains__(self, key: Any) -> bool:
        return key in self._rel

    def __getattr__(self, name: str) -> Any:
        if name == "shape":  # a property that runs a count
            return self._read(lambda: self._rel.shape)
        attribute = getattr(self._rel, name)
        if not callable(attribute):
            if isinstance(attribute, duckdb.DuckDBPyRelation):  # rel.some_column
                return ProfiledRelation(attribute, self._owner, None)
            return attribute
        if name in CONSUMING or name in STREAMING:
            streaming = name in STREAMING
            warns = name in WARNING_METHODS
            return lambda *args, **kwargs: self._read(
                lambda: attribute(*args, **kwargs), streaming, warns
            )

        def derived(*args: Any, **kwargs: Any) -> Any:
            return self._owner._wrap(unwrap_all(attribute, args, kwargs))

        return derived


def timed_reader(result: Any, owner: StatementOwner, op: Operation) -> Any:
    """``result`` (an Arrow reader, or a stream capsule) read through a timing generator.

    DuckDB runs the query as the batches are read, so each read is the
    statement's time; the last one ends it. Anything else comes back as it is.
    """
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return result
    capsule = type(result).__name__ == "PyCapsule"
    try:
        reader = pa.RecordBatchReader.from_stream(_Capsule(result)) if capsule else result
        if not isinstance(reader, pa.RecordBatchReader):
            return result
        batches = _timed(reader.read_next_batch, owner, op, _num_rows)
        timed = pa.RecordBatchReader.from_batches(reader.schema, batches)
        return timed.__arrow_c_stream__() if capsule else timed
    except Exception:  # an older pyarrow: the reads go untimed, the result is DuckDB's
        return result


def _one(row: object) -> int:
    return 1


def _num_rows(batch: Any) -> int:
    rows: int = batch.num_rows
    return rows


def _timed(
    read: Callable[[], Any], owner: StatementOwner, op: Operation, rows_of: Callable[[Any], int]
) -> Iterator[Any]:
    """What ``read()`` hands out until StopIteration, each read timed as ``op``'s.

    Each read is the statement's time (DuckDB runs the query as it is read);
    the caller's work between two reads is not. The last read ends ``op``.
    """
    while True:
        started = perf_counter()
        try:
            item = read()
        except StopIteration:
            op.elapsed += perf_counter() - started
            if owner._pending is op:
                owner._finish()
            return
        except BaseException as exc:
            op.elapsed += perf_counter() - started
            if owner._pending is op:
                owner._fail(op, exc)
            raise
        op.elapsed += perf_counter() - started
        op.fetched(rows_of(item))
        yield item


class _Capsule:
    """A stream capsule DuckDB handed out, as pyarrow's from_stream() takes it."""

    __slots__ = ("capsule",)

    def __init__(self, capsule: object) -> None:
        self.capsule = capsule

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self.capsule


def passing_warnings(call: Callable[[], Any], stacklevel: int) -> Any:
    """Run ``call``, then re-issue its warnings at the user's line, not at ours."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=stacklevel)
    return result


def _unwrap(value: Any) -> Any:
    if type(value) is ProfiledRelation:
        return value._rel
    inner = getattr(value, "_jobmeter_wrapped", None)  # a ProfiledConnection
    return value if inner is None else inner


def unwrap_all(call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call DuckDB with our stand-ins replaced by what they stand for (joins, unions)."""
    return call(*map(_unwrap, args), **{key: _unwrap(value) for key, value in kwargs.items()})


# DuckDB resolves `SELECT * FROM my_frame` by looking for `my_frame` in the first
# Python frame whose module is not `duckdb` or `duckdb.*`; see _duckdb_proxy.
__name__ = "duckdb._jobmeter_relation"
