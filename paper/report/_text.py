"""Formatting shared by the report's sections (private)."""

from __future__ import annotations

import html
import math

import pandas as pd

__all__ = ["escape", "md_rows", "ratio_ci", "values", "verdict"]


def ratio_ci(estimate: float, low: float, high: float, digits: int = 3) -> str:
    """``"1.234 [1.100, 1.380]"``: an estimate with its 95% CI, in summary.md's form."""
    if not math.isfinite(estimate):
        return "not estimable"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{estimate:.{digits}f} [CI undefined]"
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def verdict(low: float, high: float, above: str, below: str, neither: str) -> str:
    """``above`` when the CI lies above 1, ``below`` when below, else ``neither``."""
    if low > 1.0:
        return above
    if high < 1.0:
        return below
    return neither


def values(series: pd.Series) -> str:
    """The distinct values of ``series``, sorted, comma-separated ("not recorded" when none)."""
    return ", ".join(str(v) for v in sorted(series.dropna().unique(), key=str)) or "not recorded"


def escape(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return (
        html.escape(str(value if value is not None else "")).replace("|", "\\|").replace("\n", " ")
    )


def md_rows(header: list[str], rows: list[list[str]], numeric: set[str] = frozenset()) -> list[str]:
    """A Markdown table as lines (``numeric`` columns right-aligned)."""
    rule = ["---:" if h in numeric else "---" for h in header]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
