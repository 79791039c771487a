"""The token cursor that ``_summary`` walks a statement with, and how each statement begins.

``Walk`` holds DuckDB's tokens of one masked statement and the summary made so
far; ``head()`` reads the first keyword of a query (SELECT, INSERT INTO t,
CREATE TABLE t, COPY, PRAGMA name ...) and names its operation and target. The
walk through the rest (FROM lists, joins, subqueries) is ``_summary``'s.
"""

from __future__ import annotations

from typing import Final

import duckdb

MAX_LENGTH: Final = 255
MAX_DEPTH: Final = 32  # deeper subqueries are skipped: bounds the recursion

Token = tuple[str, str]  # text as written, kind: "kw", "id" or "op"
END: Final[Token] = ("", "end")
_KINDS: Final = {duckdb.token_type.keyword: "kw", duckdb.token_type.identifier: "id"}

# Where a FROM list stands: none, a table reference expected, after one, in a join condition.
NONE, EXPECT, LISTED, JOINED = range(4)

SET_OPERATIONS: Final = frozenset({"UNION", "EXCEPT", "INTERSECT"})
SET_MODIFIERS: Final = frozenset({"ALL", "DISTINCT", "BY", "NAME"})
# Keywords that end a FROM list, or can be no table's name.
CLAUSES: Final = frozenset(
    {"WHERE", "GROUP", "HAVING", "QUALIFY", "WINDOW", "ORDER", "LIMIT", "OFFSET", "RETURNING",
     "SET", "SELECT", "VALUES", "PIVOT", "UNPIVOT", "ALL", "TO", "DO", "WHEN", "THEN",
     "DEFAULT", "BY", "ON", "USING", "TRANSACTION", "WORK"}
)  # fmt: skip
NOT_NAMES: Final = CLAUSES | {"AS", "LATERAL"}
# Functions whose parentheses may hold a FROM that reads no table: EXTRACT(year FROM d).
FROM_FUNCTIONS: Final = frozenset({"EXTRACT", "SUBSTRING", "TRIM", "OVERLAY", "POSITION"})
_OBJECTS: Final = frozenset(
    {"TABLE", "VIEW", "INDEX", "SCHEMA", "SEQUENCE", "MACRO", "FUNCTION", "TYPE", "SECRET",
     "DATABASE"}
)  # fmt: skip
_DDL: Final = frozenset({"CREATE", "ALTER", "DROP"})
_DDL_MODIFIERS: Final = frozenset({"OR", "REPLACE", "TEMP", "TEMPORARY", "PERSISTENT", "UNIQUE"})
_IF_EXISTS: Final = frozenset({"IF", "NOT", "EXISTS"})
# Statements that act on one name: PRAGMA table_info, SET threads, USE db, CALL fn.
_NAMED: Final = frozenset(
    {"CALL", "PRAGMA", "SET", "RESET", "USE", "INSTALL", "LOAD", "DETACH", "EXECUTE",
     "DEALLOCATE", "VACUUM", "ANALYZE", "TRUNCATE", "CHECKPOINT"}
)  # fmt: skip
_NAME_PREFIXES: Final = frozenset(
    {"GLOBAL", "SESSION", "LOCAL", "VARIABLE", "DATABASE", "TABLE", "PREPARE", "IF", "EXISTS",
     "ANALYZE"}
)  # fmt: skip
_QUERY_STARTS: Final = frozenset({"SELECT", "FROM", "WITH", "VALUES", "TABLE"})


class FullError(Exception):
    """The summary has reached its length: the walk stops."""


def tokens(text: str) -> list[Token]:
    """DuckDB's tokens of ``text``, each with its text (DuckDB gives UTF-8 byte offsets)."""
    data = text.encode()
    found = duckdb.tokenize(text)
    out: list[Token] = []
    for index, (start, kind) in enumerate(found):
        end = found[index + 1][0] if index + 1 < len(found) else len(data)
        piece = data[start:end].decode("utf-8", "replace").strip()
        if piece:
            out.append((piece, _KINDS.get(kind, "op")))  # constants, if any: never names
    return out


def _key(name: str) -> str:
    return name if name.startswith('"') else name.lower()


class Walk:
    """One statement's tokens, walked once, left to right; ``items`` is the summary."""

    __slots__ = ("ctes", "items", "length", "pos", "tokens")

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.items: list[str] = []
        self.length = -1  # of " ".join(items)
        self.ctes: set[str] = set()

    def peek(self, ahead: int = 0) -> Token:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else END

    def upper(self, ahead: int = 0) -> str:
        text, kind = self.peek(ahead)
        return text.upper() if kind == "kw" else ""

    def named(self, ahead: int = 0) -> bool:
        """Whether a name starts here: an identifier, or a keyword that can be one (``data``)."""
        text, kind = self.peek(ahead)
        return kind == "id" or (kind == "kw" and text.upper() not in NOT_NAMES)

    def emit(self, item: str) -> None:
        length = self.length + 1 + len(item)
        if length > MAX_LENGTH:  # whole items only: never cut inside a name
            raise FullError
        self.items.append(item)
        self.length = length

    def name(self) -> str:
        """A name, qualified or not (``db.main.t``), as written."""
        parts = [self.tokens[self.pos][0]]
        self.pos += 1
        while self.peek()[0] == "." and self.peek(1)[1] in ("id", "kw"):
            parts.append(self.peek(1)[0])
            self.pos += 2
        return ".".join(parts)

    def target(self) -> None:
        name = self.name()
        if self.peek()[0] == "(" or _key(name) not in self.ctes:  # a call: a table function
            self.emit(name)

    def skip_group(self) -> None:
        """Past the ``)`` that closes the group open here."""
        level = 1
        while self.pos < len(self.tokens):
            text, kind = self.tokens[self.pos]
            self.pos += 1
            if kind == "op" and text == "(":
                level += 1
            elif kind == "op" and text == ")":
                level -= 1
                if level == 0:
                    return

    def query(self, depth: int, head: bool, operation: str = "") -> None:
        """Walk one parenthesized level (``_summary`` does)."""
        raise NotImplementedError

    def head(self, upper: str, first: bool, depth: int) -> tuple[int, bool, bool, bool] | None:
        """A query's first keyword: emit its operation (and name); None if it is not one.

        Returns the state the walk goes on in: (FROM-list mode, selected, FROM-first, start).
        """
        if upper == "SELECT":
            self.pos += 1
            self.emit("SELECT")
            return NONE, True, False, False
        if upper in ("FROM", "TABLE"):
            self.pos += 1
            self.emit("SELECT")
            return EXPECT, True, upper == "FROM", False
        if upper == "VALUES" and first:
            self.pos += 1
            self.emit("SELECT")
            return NONE, False, False, False
        if upper == "WITH":
            self.pos += 1
            self.with_list(depth)
            return NONE, False, False, True
        if upper in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            self.pos += 1
            self.emit(upper)
            while self.upper() in ("OR", "REPLACE", "IGNORE", "INTO", "FROM"):
                self.pos += 1
            if self.named():
                self.target()
            if upper != "INSERT":  # UPDATE t ... FROM s, DELETE FROM t USING s, MERGE ... USING s
                return LISTED, upper != "MERGE", False, False
            if self.peek()[0] == "(" and self.upper(1) not in _QUERY_STARTS:  # the column list
                self.pos += 1
                self.skip_group()
            while self.upper() in ("BY", "NAME", "POSITION"):
                self.pos += 1
            return NONE, False, False, True  # the query that gives the rows
        if upper == "COPY":
            return self.copy()
        if upper in _DDL:
            return self.ddl(upper)
        if upper in ("EXPLAIN", "PREPARE"):
            self.pos += 1
            self.emit(upper)
            if upper == "PREPARE" and self.named():
                self.emit(self.name())
            while self.upper() in ("ANALYZE", "AS"):
                self.pos += 1
            return NONE, False, False, True
        if upper in ("DESCRIBE", "SHOW", "SUMMARIZE", "PIVOT", "UNPIVOT"):
            self.pos += 1
            self.emit(upper)
            if self.peek()[0] == "(" or self.upper() in _QUERY_STARTS:
                return NONE, False, False, True
            if self.named():
                self.target()
            return (NONE, False, False, False) if "PIVOT" in upper else (LISTED, True, False, False)
        if upper == "ATTACH":
            self.pos += 1
            self.emit(upper)
            while self.peek()[1] != "end" and self.peek()[0] not in ("(", ")"):
                self.pos += 1
                if self.tokens[self.pos - 1][0].upper() == "AS" and self.named():
                    self.emit(self.name())  # the database's name; its path is a literal
                    break
            return NONE, False, False, False
        if upper in _NAMED or upper == "FORCE":
            self.pos += 1
            if upper == "FORCE" and self.upper():  # FORCE INSTALL, FORCE CHECKPOINT
                upper = f"FORCE {self.upper()}"
                self.pos += 1
            self.emit(upper)
            while self.upper() in _NAME_PREFIXES:
                self.pos += 1
            if self.named():
                self.emit(self.name())
            return NONE, False, False, False
        return None

    def copy(self) -> tuple[int, bool, bool, bool]:
        self.pos += 1
        self.emit("COPY")
        if self.upper() == "FROM" and self.upper(1) == "DATABASE":  # COPY FROM DATABASE a TO b
            self.pos += 2
            for _ in range(2):
                if self.named():
                    self.emit(self.name())
                if self.upper() == "TO":
                    self.pos += 1
            return NONE, False, False, False
        return EXPECT, True, False, False  # a table, or (a query); then FROM 'path': no name

    def ddl(self, upper: str) -> tuple[int, bool, bool, bool]:
        self.pos += 1
        while self.upper() in _DDL_MODIFIERS:
            self.pos += 1
        kind = self.upper()
        if kind not in _OBJECTS:
            self.emit(upper)
            return NONE, False, False, False
        self.pos += 1
        if kind == "MACRO" and self.upper() == "TABLE":
            self.pos += 1
        self.emit(f"{upper} {kind}")
        while self.upper() in _IF_EXISTS:
            self.pos += 1
        while self.named():
            self.emit(self.name())
            if upper != "DROP" or self.peek()[0] != ",":  # DROP TABLE a, b
                break
            self.pos += 1
        return NONE, False, False, False

    def with_list(self, depth: int) -> None:
        """``[RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] (query), ...`` after WITH."""
        if self.upper() == "RECURSIVE":
            self.pos += 1
        while self.named():
            self.ctes.add(_key(self.name()))
            while self.peek()[1] != "end":  # column names, USING KEY (...), up to AS
                if self.peek()[0] == "(":
                    self.pos += 1
                    self.skip_group()
                elif self.upper() == "AS":
                    self.pos += 1
                    while self.upper() in ("NOT", "MATERIALIZED"):
                        self.pos += 1
                    break
                else:
                    self.pos += 1
            if self.peek()[0] == "(":
                self.pos += 1
                self.query(depth + 1, True)
            if self.peek()[0] != ",":
                return
            self.pos += 1
