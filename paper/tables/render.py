"""A table of the paper (:class:`Table`) and its two renderings, Markdown and LaTeX."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Table", "format_cell", "to_latex", "to_markdown", "write_table"]


@dataclass(frozen=True)
class Table:
    """One table of the paper."""

    name: str  # file stem, e.g. "table1_accuracy"
    caption: str  # one sentence saying what the table shows
    frame: pd.DataFrame  # the numbers, one row per table row, columns in display order
    # column -> str.format spec, e.g. "{:.2f}"; other columns are written with str()
    formats: dict[str, str] = field(default_factory=dict)


def format_cell(value: Any, spec: str | None) -> str:
    """One cell as text: "–" for a missing value, yes/no for a flag, else ``spec`` or ``str``.

    Example:
        >>> format_cell(float("nan"), "{:.2f}"), format_cell(True, None), format_cell(0.5, "{:.0%}")
        ('–', 'yes', '50%')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if spec is not None:
        return spec.format(value)
    return str(value)


def _formatted(table: Table) -> list[list[str]]:
    return [
        [format_cell(row[col], table.formats.get(col)) for col in table.frame.columns]
        for _, row in table.frame.iterrows()
    ]


def to_markdown(table: Table) -> str:
    """Render ``table`` as a GitHub-flavoured Markdown table (numbers right-aligned).

    Args:
        table: the table.

    Returns:
        The Markdown text, ending in a newline.

    Example:
        >>> t = Table("t", "c", pd.DataFrame({"a": [1.5]}), {"a": "{:.1f}"})
        >>> print(to_markdown(t), end="")
        | a |
        | ---: |
        | 1.5 |
    """
    frame = table.frame
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
    lines += ["| " + " | ".join(cells).replace("\n", " ") + " |" for cells in _formatted(table)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "±": r"$\pm$",
    "×": r"$\times$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """Render ``table`` as a booktabs LaTeX ``table`` environment with caption and label.

    Args:
        table: the table.

    Returns:
        The LaTeX text, ending in a newline.
    """
    frame = table.frame
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(c) for c in cells) + r" \\" for cells in _formatted(table)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """Write ``table`` as ``<name>.md`` and ``<name>.tex`` under ``out_dir``.

    Args:
        table: the table.
        out_dir: folder; created when missing.

    Returns:
        The two written paths (Markdown first).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{table.name}.md"
    md.write_text(f"{table.caption}\n\n{to_markdown(table)}", encoding="utf-8")
    tex = out_dir / f"{table.name}.tex"
    tex.write_text(to_latex(table), encoding="utf-8")
    return [md, tex]
