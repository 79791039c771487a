"""SQL fingerprints: a statement's masked shape, its summary and its operation.

Query text cannot be kept as is: its literals may hold personal data
(``WHERE email = '...'``) and every distinct literal would start a new time
series. ``fingerprint()`` replaces every literal (strings, numbers, blobs, dollar
quotes) with ``?``, drops comments, folds lists of any length into one element
and normalizes case and spacing: the *shape*, kept with a short hash in the run
store. From the same masked tokens, with names as written, ``_summary`` makes
``db.query.summary`` (operations and tables, as the semantic conventions define
it), the metrics attribute. It also names the operation (``db.operation.name``),
counts statements, and tells whether a statement changes DuckDB's profiling
settings, which the profiling collector relies on.

Spacing: tokens are joined by one space, except none after ``(`` ``[`` ``{``
``.`` ``::``, none before ``,`` ``)`` ``]`` ``}`` ``.`` ``::`` ``:``, and none
between a name and its ``(`` or ``[`` (calls, subscripts). Keywords are upper
case, other words lower case, quoted names as written. A sign before a number
folds into its ``?`` unless it follows a value (``x - ?`` stays binary). So
whitespace, comments and case never change a shape.

One compiled regular expression tokenizes in a single pass; results are cached
on the exact text, as the DuckDB connection wrapper calls this on every query.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from jobmeter.duckdb._summary import MAX_LENGTH, summarize_all

MAX_SHAPE: Final = 2048  # longer shapes are cut (and end in …); the hash covers the whole
_CACHE_MAX_CHARS: Final = 65_536  # bigger texts are not kept alive by the cache
_MAX_COLLAPSE_PASSES: Final = 8  # bounds the work on pathological nesting


@dataclass(frozen=True, slots=True)
class Fingerprint:
    summary: str  # `db.query.summary`: operations and tables (`SELECT orders`)
    operation: str  # `db.operation.name`: SELECT, INSERT, ..., BATCH [op], UNKNOWN
    statements: int  # statements in the text; 0 for empty or comment-only text
    touches_profiling: bool  # a SET / RESET / PRAGMA naming a profiling setting
    shape: str  # masked, normalized SQL, at most MAX_SHAPE characters (+ "…")
    shape_hash: str  # 12 hex digits of blake2b of the whole shape: the shape's key


def shape_hash(shape: str) -> str:
    """The 12 hex digits that name a shape (blake2b, 6-byte digest)."""
    return hashlib.blake2b(shape.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def batched(fp: Fingerprint) -> Fingerprint:
    """``executemany()`` of one statement: ``BATCH`` before its operation and summary."""
    summary = f"BATCH {fp.summary}"
    return Fingerprint(
        summary if len(summary) <= MAX_LENGTH else "BATCH", f"BATCH {fp.operation}", 1,
        fp.touches_profiling, fp.shape, fp.shape_hash,
    )  # fmt: skip


# One match per token, whitespace and line comments skipped in front of it.
# Alternatives are tried in order: string prefixes (E'', X'') before words,
# dollar quotes before $1/$name parameters, block comments before operators.
_TOKEN: Final = re.compile(
    r"""[\s\x00-\x1f\x7f]*(?:--[^\n\r]*[\s\x00-\x1f\x7f]*)*
    (?:
      (?P<str>[eE]'[^'\\]*(?:(?:\\[\s\S]?|'')[^'\\]*)*'?
        | (?:[xXbB]|[uU]&)?'[^']*(?:''[^']*)*'?)
    | (?P<word>[^\W\d]\w*)
    | (?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+
        | (?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)
    | (?P<qid>"[^"]*(?:""[^"]*)*")
    | (?P<open>"[\s\S]*)  # a quoted name never closed: masked to the end, like a string
    | (?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$[\s\S]*?(?:\$(?P=tag)\$|\Z))
    | (?P<param>\?\d*|\$\d+|\$[^\W\d]\w*)
    | (?P<block>/\*)
    | (?P<op>::|->>|<=|>=|<>|!=|==|\|\||->|<<|>>|\*\*|//|!~~\*?|~~\*?|\^@|@>|<@|&&|:=|=>|[\s\S])
    | (?P<eos>\Z)
    )""",
    re.VERBOSE,
)
_COMMENT_EDGE: Final = re.compile(r"/\*|\*/")

_KEYWORD_TEXT: Final = """
    SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET JOIN LEFT RIGHT INNER OUTER FULL
    CROSS ON USING AS AND OR NOT IN IS NULL LIKE ILIKE BETWEEN CASE WHEN THEN ELSE END
    DISTINCT UNION ALL EXCEPT INTERSECT WITH RECURSIVE INSERT INTO VALUES UPDATE SET DELETE
    CREATE REPLACE TABLE VIEW TEMP TEMPORARY INDEX DROP ALTER COPY TO FORMAT ATTACH DETACH
    PRAGMA RESET CALL EXPLAIN ANALYZE DESCRIBE SHOW SUMMARIZE PIVOT UNPIVOT EXPORT IMPORT
    DATABASE INSTALL LOAD USE BEGIN COMMIT ROLLBACK TRANSACTION CHECKPOINT VACUUM MERGE
    TRUNCATE RETURNING OVER PARTITION WINDOW ROWS RANGE PRECEDING FOLLOWING CURRENT ROW
    UNBOUNDED FILTER QUALIFY ASC DESC NULLS FIRST LAST IF EXISTS PRIMARY KEY UNIQUE CHECK
    DEFAULT REFERENCES CAST TRUE FALSE INTERVAL DATE TIMESTAMP SEMI ANTI ASOF LATERAL NATURAL
    MATERIALIZED ANY SOME ESCAPE COLLATE SAMPLE TABLESAMPLE GROUPING SETS ROLLUP CUBE START
    ABORT CONFLICT DO NOTHING FOR SCHEMA SEQUENCE MACRO FUNCTION TYPE SECRET PREPARE EXECUTE"""
_KEYWORDS: Final = frozenset(_KEYWORD_TEXT.split())
_CALL_KEYWORDS: Final = frozenset({"CAST", "IF", "LEFT", "RIGHT", "REPLACE", "GROUPING"})
_VALUE_KEYWORDS: Final = frozenset({"NULL", "TRUE", "FALSE", "END"})  # `END - 1` is binary
_NO_SPACE_BEFORE: Final = frozenset({",", ")", "]", "}", ".", "::", ":"})
_NO_SPACE_AFTER: Final = frozenset({"(", "[", "{", ".", "::"})
_MASKED: Final = frozenset({"str", "num", "dollar", "open"})

# Statement keywords: after a CTE list, and aliases of a statement's first word.
_AFTER_WITH: Final = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "FROM", "VALUES", "TABLE", "PIVOT", "UNPIVOT"}
)
_ALIASES: Final = {
    "FROM": "SELECT", "VALUES": "SELECT", "TABLE": "SELECT",
    "START": "BEGIN", "ABORT": "ROLLBACK", "END": "COMMIT",
}  # fmt: skip

# After masking only `?` remain, so lists can be collapsed on the text. VALUES
# rows keep their width (a shape), identical rows and list items fold into one.
_DUPLICATES: Final = re.compile(r"([(\[{](?:[^()\[\]{}]|[(\[{][^()\[\]{}]*[)\]}])*[)\]}])(?:, \1)+")
_PLACEHOLDERS: Final = re.compile(r"(?<=[(\[{])(?<!VALUES \()\?(?:, \?)+(?=[)\]}])")
_PAIRS: Final = re.compile(r"(?<=\{)\?: \?(?:, \?: \?)+(?=\})")

_PROFILING: Final = re.compile(
    r'(?:SET|RESET|PRAGMA) (?:(?:global|session|local) )?"?'
    r"(?:enable_profil(?:ing|e)|disable_profil(?:ing|e)|profil(?:ing|e)_output|profiling_mode"
    r"|profiling_coverage|tracked_metrics|custom_profiling_settings)(?!\w)",
    re.IGNORECASE,
)


def fingerprint(sql: str) -> Fingerprint:
    """Summary, operation, statement count, profiling flag and masked shape of ``sql``."""
    if not isinstance(sql, str):
        raise TypeError(f"fingerprint() needs the SQL text as str, got {type(sql).__name__}")
    if len(sql) > _CACHE_MAX_CHARS:
        return _safe(sql)
    return _cached(sql)


@functools.lru_cache(maxsize=4096)
def _cached(sql: str) -> Fingerprint:
    return _safe(sql)


def _safe(sql: str) -> Fingerprint:
    try:
        return _fingerprint(sql)
    except Exception:  # a metrics label must never break the user's query
        return Fingerprint("UNKNOWN", "UNKNOWN", 1, False, "?", shape_hash("?"))


def _fingerprint(sql: str) -> Fingerprint:
    statements = _scan(sql)
    if not statements:
        return Fingerprint("", "UNKNOWN", 0, False, "", shape_hash(""))
    ops = {op for _, op, _ in statements}
    if len(statements) == 1:
        operation = statements[0][1]
    else:
        operation = f"BATCH {next(iter(ops))}" if len(ops) == 1 else "BATCH"
    profiling = any(_PROFILING.match(s) for s, _, _ in statements)
    shape = "; ".join(s for s, _, _ in statements)
    digest = shape_hash(shape)
    if len(shape) > MAX_SHAPE:
        shape = shape[:MAX_SHAPE] + "…"
    summary = summarize_all([(masked, op) for _, op, masked in statements])
    return Fingerprint(summary, operation, len(statements), profiling, shape, digest)


def _scan(sql: str) -> list[tuple[str, str, str]]:
    """Tokenize once: mask, normalize and find each statement's operation.

    Each statement is (shape, operation, masked text with names as written).
    """
    statements: list[tuple[str, str, str]] = []
    out: list[str] = []  # the current statement's tokens, each with its leading space
    raw: list[str] = []  # the same tokens, names as written and parameters as ?: for _summary
    op: str | None = None
    lead = True  # only `(` seen so far in this statement
    depth, with_depth = 0, -1  # paren depth; depth of the statement's WITH, or -1
    # The previous token: ends a value, is a name (call or subscript follows
    # without space), takes no space after it, is a unary sign.
    val = call = glue = sign = False
    pos, end = 0, len(sql)
    # Never None: the last alternative matches at the end of the text.
    match = cast(Callable[[str, int], re.Match[str]], _TOKEN.match)
    while pos < end:
        m = match(sql, pos)
        pos = m.end()
        kind = m.lastgroup
        upper = ""
        if kind == "word":
            text = written = m["word"]
            upper = text.upper()
            if upper in _KEYWORDS:
                text, is_val, is_call = upper, upper in _VALUE_KEYWORDS, upper in _CALL_KEYWORDS
            else:
                text, is_val, is_call = text.lower(), True, True
        elif kind in _MASKED:
            if sign:  # `= -5`: the sign belongs to the number it masks
                out[-1] = out[-1][:-1] + "?"
                raw[-1] = "?"
                val, call, glue, sign = True, False, False, False
                continue
            text = written = "?"
            is_val, is_call = True, False
        elif kind == "op":
            text = m["op"]
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
            elif text == ";":
                if out:
                    statements.append(_statement(out, raw, op, with_depth))
                out, raw, op, lead, depth, with_depth = [], [], None, True, 0, -1
                val = call = glue = sign = False
                continue
            elif not text.isprintable():
                continue  # stray control or format characters separate like whitespace
            is_val = is_call = text == ")" or text == "]" or text == "}"
            written = text
        elif kind == "qid" or kind == "param":
            text = m[kind]
            if not text.isprintable():  # no newline or control character in a label
                text = "".join(c if c.isprintable() else " " for c in text)
            is_val, is_call = True, kind == "qid"
            written = text if kind == "qid" else "?"  # `$name` would read as a name
        elif kind == "block":
            pos = _comment_end(sql, pos)
            continue
        else:  # only whitespace or line comments left
            continue
        if op is None:
            if lead:
                if text != "(":
                    lead = False
                    if upper == "WITH":
                        with_depth = depth
                    elif upper:
                        op = _ALIASES.get(upper) or (
                            upper if upper.isascii() and upper.isalpha() and len(upper) <= 20
                            else "UNKNOWN"
                        )  # fmt: skip
                    else:
                        op = "UNKNOWN"
            elif depth == with_depth and upper in _AFTER_WITH:
                op = _ALIASES.get(upper, upper)
        if glue or not out or text in _NO_SPACE_BEFORE or (call and (text == "(" or text == "[")):
            out.append(text)
        else:
            out.append(" " + text)
        raw.append(written)
        sign = (text == "-" or text == "+") and not val
        val, call, glue = is_val, is_call, text in _NO_SPACE_AFTER
    if out:
        statements.append(_statement(out, raw, op, with_depth))
    return statements


def _statement(out: list[str], raw: list[str], op: str | None, depth: int) -> tuple[str, str, str]:
    # op is None after a CTE list only when a parenthesized query follows it.
    operation = op or ("SELECT" if depth >= 0 else "UNKNOWN")
    return _collapse("".join(out)), operation, " ".join(raw)


def _comment_end(sql: str, pos: int) -> int:
    """End of a block comment opened before ``pos``; DuckDB nests them."""
    depth = 1
    for m in _COMMENT_EDGE.finditer(sql, pos):
        depth += 1 if m.group() == "/*" else -1
        if depth == 0:
            return m.end()
    return len(sql)


def _collapse(summary: str) -> str:
    """Fold lists, VALUES rows and struct literals of any length into one element."""
    for _ in range(_MAX_COLLAPSE_PASSES):
        folded = summary  # substring tests first: most summaries have nothing to fold
        if "), (" in folded or "], [" in folded or "}, {" in folded:
            folded = _DUPLICATES.sub(r"\1", folded)
        if "?, ?" in folded:
            folded = _PLACEHOLDERS.sub("?", folded)
            if "{" in folded:
                folded = _PAIRS.sub("?: ?", folded)
        if folded == summary:
            break
        summary = folded
    return summary
