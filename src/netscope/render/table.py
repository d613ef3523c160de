"""Tables as text: Markdown pipe syntax for the terminal (pastes into notes), and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def with_sd(mean: float, sd: float, splits: int, fmt: str) -> str:
    return format(mean, fmt) + (f" ± {format(sd, fmt)}" if splits > 1 else "")


def csv_text(rows: Sequence[dict]) -> str:
    """Rows of dicts as CSV text with a header: every key any row has, in first-seen order
    (a row without one leaves it empty, as a balancing column on a family without it)."""
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
