"""Tables for people on a terminal, plain columns for pipes.

On a terminal a table is drawn by Rich, folding long cells rather than cutting them. Anywhere
else (a pipe, a file) it is plain text: one line per row, columns padded with two spaces, no
cell ever shortened or wrapped, so ``cut``, ``awk`` and ``grep`` see full ids and names.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

_GAP = "  "


def print_rows(
    headers: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    *,
    console: Console,
    title: str | None = None,
) -> None:
    """Print ``rows`` under ``headers`` (None: a key-value listing with no header line)."""
    if console.is_terminal:
        table = Table(
            *(headers or ()),
            show_header=headers is not None,
            box=None if headers is None else box.HEAVY_HEAD,
            title=title,
            title_justify="left",
        )
        if headers is None:
            for _ in range(max((len(row) for row in rows), default=0)):
                table.add_column()
        for column in table.columns:
            column.overflow = "fold"
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        return
    lines = [list(headers)] if headers is not None else []
    lines.extend(list(row) for row in rows)
    widths = (
        [max(len(line[index]) for line in lines) for index in range(len(lines[0]))] if lines else []
    )
    if title is not None:
        sys.stdout.write(title + "\n")
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        sys.stdout.write(_GAP.join(cells).rstrip() + "\n")
