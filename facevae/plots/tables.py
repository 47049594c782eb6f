"""Markdown tables of results, as compare.md and sweep.md show them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

MISSING = "—"  # a measure that does not apply, or was not measured


def markdown_table(rows: Iterable[Mapping], columns: list[str]) -> list[str]:
    """The rows as Markdown table lines under a header of `columns`; numbers to 4 significant digits."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]


def cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):  # an interval, [low, high]
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)
