"""Console tables that stay readable in a narrow terminal and when piped to a file.

Rich's default column overflow is an ellipsis, so a group or stage name in a narrow column came out
as "monitor…": the word was lost. Here every column folds instead (the whole value is printed, over
several lines if need be), and output that goes to a file or a pipe is laid out at $COLUMNS or
FILE_WIDTH columns rather than at whatever width the terminal that started the pipe happens to have.
Cells are escaped: user text such as "[red]" is data, never Rich markup.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console, ConsoleOptions
from rich.table import Column, Table
from rich.text import Text

FILE_WIDTH = 160
PROSE_MIN = 12  # a prose column never shrinks below this (Rich would squeeze it to nothing)


def fit_width(console: Console) -> None:
    """A terminal: its own width. A file or pipe: $COLUMNS if set, else FILE_WIDTH."""
    if console.file.isatty():
        console.width = None  # type: ignore[assignment]  # Rich measures the terminal again
        return
    columns = os.environ.get("COLUMNS", "")
    console.width = int(columns) if columns.isdigit() and int(columns) > 0 else FILE_WIDTH


class SafeTable(Table):
    """A Rich table whose string cells are text, not markup; style a cell by passing a `Text`.

    Prose columns (`prose`) give up width first; if that would squeeze one below PROSE_MIN, every
    column shares the shortage instead (Rich alone would leave a prose column zero wide)."""

    prose: tuple[str, ...] = ()

    def __init__(self, *headers: str | Column, **kwargs: Any) -> None:
        super().__init__(*(Column(h, overflow="fold") if isinstance(h, str) else h for h in headers), **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        # Rich crops (never folds) a no_wrap cell, so no_wrap is set only while widths are measured.
        for c in self.columns:
            c.no_wrap = bool(self.prose) and str(c.header) not in self.prose
        try:
            widths = super()._calculate_column_widths(console, options)
        finally:
            for c in self.columns:
                c.no_wrap = False
        starved = any(str(c.header) in self.prose and w < PROSE_MIN + 2 for c, w in zip(self.columns, widths,
                                                                                        strict=True))
        return super()._calculate_column_widths(console, options) if starved else widths


def table(*headers: str, title: str | None = None, wrap: tuple[str, ...] = ()) -> SafeTable:
    """Columns fold long values instead of cutting them off with an ellipsis.

    `wrap` names the prose columns (titles, details): when the table is too wide they give up width
    first, so short codes, times and names stay on one line. Without `wrap` every column may wrap."""
    t = SafeTable(*(Column(h, overflow="fold") for h in headers), title=title)
    t.prose = wrap
    return t


def styled(value: str, style: str) -> Text:
    return Text(value, style=style)
