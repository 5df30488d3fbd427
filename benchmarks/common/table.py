"""Plain-text and Markdown tables for benchmark reports."""

from __future__ import annotations

from typing import Sequence


def format_table(header: Sequence[object], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Columns padded to their widest cell: the first left-aligned (labels), the others right-aligned
    (figures); one line per row, each starting with ``indent``."""
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                        for i, (c, w) in enumerate(zip(r, widths))) for r in cells)


def print_table(header: Sequence[object], rows: Sequence[Sequence[object]], indent: str = "  ") -> None:
    """Print ``format_table(header, rows)``."""
    print(format_table(header, rows, indent))


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table (``|`` in cells escaped), for pasting figures into notes and READMEs."""
    def line(r: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"
    return "\n".join([line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)])
