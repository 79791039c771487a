"""``db.query.summary``: a statement's operations and targets, as the semantic conventions say.

The database conventions define the summary as ``{operation} {target} ...``:
each operation (SELECT, INSERT ...) and what it acts on (tables, views ...),
in the order the statement names them, at most 255 characters and never cut
inside a name. ``INSERT INTO shipping_details SELECT * FROM orders WHERE id = 7``
is ``INSERT shipping_details SELECT orders``; a join is ``SELECT orders customers``;
``SELECT * FROM (SELECT * FROM orders)`` is ``SELECT SELECT orders`` (the outer
SELECT reads no table of its own).

The walk runs over the tokens of DuckDB's own tokenizer (``duckdb.tokenize``),
applied to the statement's *masked* text (``_sql``): every literal is already
``?`` there, so whatever the tokenizer makes of it, no literal can reach a
summary. ``json_serialize_sql`` would give DuckDB's tree, but it serializes
SELECT only, runs a statement on a connection (about 0.5 ms, on the job's
thread), and rejects masked text (``DATE ?``).

Beyond the conventions' examples (docs/duckdb.md lists them): operations are
upper case, as ``db.operation.name`` is; names are as written, quoted ones with
their quotes; a table function is its name (``read_parquet``); a file read by
its path (``FROM 'x.csv'``) has no target; CTE names are not targets, their
bodies' operations and tables are; DDL names its object (``CREATE TABLE t``);
other statements give the name they act on (``PRAGMA table_info``, ``SET threads``).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Final

from jobmeter.duckdb._summary_walk import (
    CLAUSES,
    END,
    EXPECT,
    FROM_FUNCTIONS,
    JOINED,
    LISTED,
    MAX_DEPTH,
    MAX_LENGTH,
    NONE,
    NOT_NAMES,
    SET_MODIFIERS,
    SET_OPERATIONS,
    FullError,
    Walk,
    tokens,
)

__all__ = ["MAX_LENGTH", "summarize", "summarize_all"]

_CACHE_MAX_CHARS: Final = 65_536


def summarize_all(statements: list[tuple[str, str]]) -> str:
    """The summary of (masked text, operation) statements; several are a BATCH, as one.

    ``BATCH SELECT orders`` when they all have that summary, else ``BATCH``.
    """
    try:
        found = {summarize(masked, operation) for masked, operation in statements}
    except Exception:  # DuckDB's tokenizer refused the text: the operation alone
        found = {operation for _, operation in statements}
    if len(statements) == 1:
        return found.pop()
    summary = f"BATCH {found.pop()}" if len(found) == 1 else "BATCH"
    return summary if len(summary) <= MAX_LENGTH else "BATCH"


def summarize(masked: str, operation: str) -> str:
    """The summary of one statement, from its masked text and its ``db.operation.name``."""
    if len(masked) > _CACHE_MAX_CHARS:
        return _summarize(masked, operation)
    return _cached(masked, operation)


@functools.lru_cache(maxsize=4096)
def _cached(masked: str, operation: str) -> str:
    return _summarize(masked, operation)


def _summarize(masked: str, operation: str) -> str:
    walk = _Summary(tokens(masked))
    with contextlib.suppress(FullError):  # long enough: the rest is left out
        walk.query(0, True, operation)
    return " ".join(walk.items) or operation


class _Summary(Walk):
    """The walk through a statement: operations in order, each with its FROM list."""

    __slots__ = ()

    def query(self, depth: int, head: bool, operation: str = "") -> None:
        """Walk one parenthesized level (the statement at depth 0) to its closing ``)``."""
        if depth > MAX_DEPTH:
            self.skip_group()
            return
        tokens = self.tokens
        mode, selected, from_first, start = NONE, False, False, head
        first = depth == 0  # the statement's operation is not named yet
        while self.pos < len(tokens):
            text, kind = tokens[self.pos]
            upper = text.upper() if kind == "kw" else ""
            if start:
                start = False
                state = self.head(upper, first, depth) if upper else None
                if state is not None:
                    mode, selected, from_first, start = state
                    first = first and upper == "WITH"
                    continue
                if first and text != "(":
                    self.emit(operation)
                first = False
            if kind == "op":
                self.pos += 1
                if text == ")":
                    if depth:
                        return
                elif text == "(":
                    previous = tokens[self.pos - 2] if self.pos > 1 else END
                    call = previous[1] == "id" or previous[0].upper() in FROM_FUNCTIONS
                    self.query(depth + 1, not call)
                    if mode == EXPECT:
                        mode = LISTED  # a subquery in FROM: its alias may follow
                elif text == ",":
                    if mode in (LISTED, JOINED):
                        mode = EXPECT
                elif text == "?" and mode == EXPECT:
                    mode = LISTED  # FROM 'file.parquet': read by its path, no name to give
                continue
            if mode == EXPECT and (kind == "id" or upper not in NOT_NAMES):
                self.target()
                mode = LISTED
                continue
            self.pos += 1
            if upper == "SELECT":
                if from_first:
                    from_first = False  # FROM t SELECT a: one query
                else:
                    self.emit("SELECT")
                selected, mode = True, NONE
            elif upper == "FROM":
                if selected:
                    mode = EXPECT
            elif upper == "JOIN":
                if mode:
                    mode = EXPECT
            elif upper == "ON":
                if mode:
                    mode = JOINED
            elif upper == "USING":
                if mode:  # JOIN ... USING (col), USING SAMPLE; else DELETE/MERGE ... USING t
                    mode = JOINED if self.peek()[0] == "(" or self.upper() == "SAMPLE" else EXPECT
            elif upper in SET_OPERATIONS:
                while self.upper() in SET_MODIFIERS:
                    self.pos += 1
                mode, selected, from_first, start = NONE, False, False, True
            elif upper == "WITH":
                self.with_list(depth)
                start = True
            elif upper == "AS" and self.upper() == "FROM":
                start = True  # CREATE TABLE t AS FROM s
            elif upper in CLAUSES:
                mode = NONE
