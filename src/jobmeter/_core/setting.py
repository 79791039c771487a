"""``Variable``: one row of the settings table (``variables.VARIABLES``)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from jobmeter._core.parse import Parser


@dataclass(frozen=True)
class Variable:
    """One setting: where it is read, how it is parsed, and its line in the docs table."""

    name: str | None  # the environment variable; None for a keyword alone
    keyword: str | None  # the keyword of configure(); None when it has none
    parse: Parser
    _: KW_ONLY
    # The cells of the docs table, in Markdown.
    default: str
    accepted: str
    meaning: str
    # The Settings field, where it is not named like the keyword.
    sets: str | None = None
    # Docs text after the keyword, or in its place when configure() has none.
    keyword_note: str = ""
    # The generic variable that this signal-specific one wins over.
    wins_over: str | None = None

    @property
    def field(self) -> str | None:
        """The Settings field it sets; None for a variable read outside resolve()."""
        return self.sets or self.keyword

    @property
    def keyword_cell(self) -> str:
        keyword = f"`{self.keyword}`" if self.keyword else ""
        return " ".join(text for text in (keyword, self.keyword_note) if text) or "none"
