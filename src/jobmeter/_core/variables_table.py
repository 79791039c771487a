"""The Variables table of docs/configuration.md, written from the rows of ``variables``.

Run ``.venv/bin/python -m jobmeter._core.variables_table`` after changing a row;
a test fails while the table and the rows differ.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from jobmeter._core.setting import Variable
from jobmeter._core.variables import VARIABLES

BEGIN: Final = (
    "<!-- the Variables table: run .venv/bin/python -m jobmeter._core.variables_table -->"
)
END: Final = "<!-- end of the Variables table -->"
HEADER: Final = ("Variable", "Keyword argument", "Default", "Accepted values", "Meaning")


def markdown_table(rows: Iterable[Variable] = VARIABLES) -> str:
    """The Variables table of docs/configuration.md: one line per environment variable."""
    lines = [_line(HEADER), "|" + "---|" * len(HEADER)]
    for row in rows:
        if row.name is not None:
            cells = (f"`{row.name}`", row.keyword_cell, row.default, row.accepted, row.meaning)
            lines.append(_line(cells))
    return "\n".join(lines) + "\n"


def _line(cells: Sequence[str]) -> str:
    for cell in cells:
        if "|" in cell or "\n" in cell:
            raise ValueError(f"a table cell cannot hold '|' or a line break: {cell!r}")
    return "| " + " | ".join(cells) + " |"


def with_table(document: str) -> str:
    """The document with the text between BEGIN and END replaced by the current table."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the document lacks the lines {BEGIN} and {END}")
    return f"{head}{BEGIN}\n{markdown_table()}{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the table in docs/configuration.md (or the file given) from the rows."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "docs/configuration.md")
    text = path.read_text(encoding="utf-8")
    updated = with_table(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    print(f"{path}: {'rewritten' if updated != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
