"""Tables that fit: rich at the terminal's width, plain aligned text anywhere else.

At a terminal a table that is wider than the window first leaves out its
optional columns (``Column.drop``, highest first) and then folds its text
columns; figures never wrap. Anywhere else (a pipe, a file, a CI log) a table
is plain text, one line per row, columns aligned with spaces, no box drawing
and no colour, so ``grep`` and ``awk`` see whole rows.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TextIO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

#: Between two columns at a terminal: the collapsed padding and box.SIMPLE_HEAD's divider.
_GAP = 2
#: Between two columns in plain text.
_PLAIN_GAP = "  "


@dataclass(frozen=True)
class Column:
    """A table column.

    Attributes:
        header: Its heading.
        justify: ``right`` for figures, ``left`` for names.
        drop: 0: always shown; higher numbers are left out first at a narrow terminal.
        fold: Text that may wrap over lines (names, paths); figures never do.
        min_width: The narrowest a folding column gets before columns are dropped.
        style: A rich style for its cells at a terminal.
    """

    header: str
    justify: Literal["left", "right"] = "right"
    drop: int = 0
    fold: bool = False
    min_width: int = 12
    style: str = ""


class Styled(NamedTuple):
    """A cell with a rich style at a terminal (colour of a change); plain text elsewhere."""

    text: str
    style: str


Cell = str | Styled


def _text(cell: Cell) -> str:
    return cell.text if isinstance(cell, Styled) else cell


class Table:
    """Rows of cells under columns, with a title; ``Output.table`` prints it."""

    def __init__(self, title: str, columns: Sequence[Column], show_header: bool = True) -> None:
        self.title = title
        self.columns = tuple(columns)
        self.show_header = show_header
        self.rows: list[tuple[Cell, ...]] = []
        #: Lines printed right below the rows (what was left out, how to see more).
        self.notes: list[str] = []

    def add_row(self, *cells: Cell) -> None:
        """One row; a cell may hold several lines (``\\n``), joined by a space in plain text."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def widths(self) -> list[int]:
        """Each column's natural width: its longest line, header included."""
        out = []
        for i, column in enumerate(self.columns):
            lines = [column.header] if self.show_header else []
            lines += [line for row in self.rows for line in _text(row[i]).split("\n")]
            out.append(max((cell_len(line) for line in lines), default=0))
        return out

    def fitting(self, width: int, natural: list[int]) -> list[int]:
        """The indexes of the columns shown in ``width`` cells, given their ``natural`` widths:
        optional ones dropped first."""
        kept = list(range(len(self.columns)))

        def needed() -> int:
            cells = [
                min(natural[i], self.columns[i].min_width) if self.columns[i].fold else natural[i]
                for i in kept
            ]
            return sum(cells) + _GAP * (len(kept) - 1)

        optional = [i for i, column in enumerate(self.columns) if column.drop]
        for i in sorted(optional, key=lambda i: (-self.columns[i].drop, -i)):
            if needed() <= width:
                break
            kept.remove(i)
        return kept


class Output:
    """Where a command prints: a terminal (rich, fitted) or plain text (a pipe, a file)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.terminal = self.stream.isatty()
        # highlight=False: rich would colour numbers and paths on its own.
        self.console = Console(file=self.stream, highlight=False)

    def line(self, text: str = "", style: str = "", wrap: bool = True) -> None:
        """A line of text; at a terminal wrapped at its words, or not at all (``wrap=False``:
        a path stays one line for copying, and the terminal shows it as it can)."""
        if self.terminal:
            self.console.print(Text(text, style=style), soft_wrap=not wrap)
        else:
            print(text, file=self.stream)

    def table(self, table: Table) -> None:
        """The table, fitted to the terminal or as plain aligned text."""
        if self.terminal:
            self._rich(table)
        else:
            self._plain(table)

    def _rich(self, table: Table) -> None:
        width = self.console.width
        natural = table.widths()
        kept = table.fitting(width, natural)
        shown = RichTable(
            title=table.title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
            show_edge=False, pad_edge=False, collapse_padding=True, show_header=table.show_header,
        )  # fmt: skip
        for i in kept:
            column = table.columns[i]
            shown.add_column(
                column.header, justify=column.justify, style=column.style or None,
                no_wrap=not column.fold, overflow="fold" if column.fold else "ellipsis",
                min_width=min(column.min_width, natural[i]) if column.fold else None,
            )  # fmt: skip
        for row in table.rows:
            cells = [row[i] for i in kept]
            shown.add_row(*(Text(c.text, style=c.style) if isinstance(c, Styled) else Text(c)
                            for c in cells))  # fmt: skip
        self.console.print(shown)
        left_out = [table.columns[i].header for i in range(len(table.columns)) if i not in kept]
        if left_out:
            self.line(f"(left out at {width} columns: {', '.join(left_out)}; "
                      "a wider terminal or --json shows them)", style="dim")  # fmt: skip
        for note in table.notes:
            self.line(note, style="dim")
        self.line()

    def _plain(self, table: Table) -> None:
        rows = [[_text(cell).replace("\n", " ") for cell in row] for row in table.rows]
        if table.show_header:
            rows.insert(0, [column.header for column in table.columns])
        widths = [max((cell_len(row[i]) for row in rows), default=0)
                  for i in range(len(table.columns))]  # fmt: skip
        print(table.title, file=self.stream)
        for row in rows:
            cells = [
                cell.rjust(width) if column.justify == "right" else cell.ljust(width)
                for cell, width, column in zip(row, widths, table.columns, strict=True)
            ]
            print(_PLAIN_GAP.join(cells).rstrip(), file=self.stream)
        for note in table.notes:
            print(note, file=self.stream)
        print(file=self.stream)
