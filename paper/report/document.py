"""The whole report: caveats, the answers (channels first), methods, figures, tables, failures.

``report.md`` is plain Markdown (tables inline, figures as relative image links); ``report.html`` is
its rendering by the ``markdown`` package. Every number comes from the same
:class:`~paper.analysis.Analysis` as the figures and tables.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import markdown

from paper.analysis import Analysis
from paper.figures import CENTRAL, FigureResult
from paper.load import Results
from paper.report._text import escape, md_rows
from paper.report.channels import aa_section, channels_section
from paper.report.int8 import int8_section
from paper.report.methods import caveats, methods_section
from paper.report.models import accuracy_section, diagnostics_section
from paper.report.questions import engines_section, precision_section, speedup_section
from paper.report.toolchains import home_section
from paper.tables import Table, to_markdown

__all__ = ["INLINE_TABLES", "render_html", "render_report"]

# Tables shown inside a section of the answers or the methods (not repeated under "Tables").
INLINE_TABLES = (
    "table_cpu",
    "table_channels",
    "table_channels_by_architecture",
    "table1_accuracy",
    "table_mask_structure",
)


def _failures(results: Results) -> list[str]:
    lines = ["## Failures", ""]
    failed_rows = int((results.bench["status"] == "failed").sum())
    lines.append(f"bench.jsonl holds {failed_rows} failure row(s).")
    if "failures.jsonl" in results.missing:
        return lines + ["", "failures.jsonl is absent.", ""]
    if not results.failures:
        return lines + ["", "failures.jsonl lists no failures.", ""]
    cols = ["stage", "model", "pruner", "exporter", "engine", "reason"]
    rows = [[escape(entry.get(c, "") or "") for c in cols] for entry in results.failures]
    return lines + [""] + md_rows(cols, rows) + [""]


def _figures(figures: list[FigureResult]) -> list[str]:
    lines = ["### Figures", ""]
    for fig in figures:
        if fig.skipped:
            lines += [f"- **{fig.title}**: not drawn: {fig.skipped}.", ""]
        elif fig.name != CENTRAL:  # the central figure heads the channel section
            lines += [f"![{fig.title}](figures/{fig.name}.png)", ""]
            lines += [f"*{fig.title}* ([SVG](figures/{fig.name}.svg))", ""]
    return lines


def render_report(
    results: Results, analysis: Analysis, tables: Iterable[Table], figures: Iterable[FigureResult]
) -> str:
    """The report as Markdown.

    Args:
        results: the loaded results folder.
        analysis: its statistics.
        tables: the tables (those of :data:`INLINE_TABLES` go into their sections, the rest
            under "Tables").
        figures: the figure outcomes (drawn figures are linked; skipped ones are explained).

    Returns:
        The Markdown text.
    """
    figures = list(figures)
    by_name = {t.name: t for t in tables}
    central = next((f for f in figures if f.name == CENTRAL), None)
    lines = [
        "# CPU inference engines and pruning-toolchain bias: results",
        "",
        f"Built by `python -m paper` from the results folder `{results.root.name}`.",
        "",
        "## What these data can and cannot say",
        "",
    ]
    lines += [f"- {n}" for n in caveats(results, analysis)] or ["- No limitation recorded."]
    lines += ["", "## Answers", ""]
    lines += home_section(results, analysis)  # the whole toolchains first: the study's question
    lines += aa_section(analysis)
    lines += channels_section(
        analysis,
        by_name.get("table_channels"),
        by_name.get("table_channels_by_architecture"),
        central,
    )
    lines += engines_section(analysis) + speedup_section(analysis) + precision_section(analysis)
    lines += int8_section(analysis)
    lines += accuracy_section(analysis, by_name.get("table1_accuracy"))
    lines += diagnostics_section(by_name.get("table_mask_structure"))
    lines += methods_section(results, analysis, by_name["table_cpu"])
    lines += ["## Results", ""] + _figures(figures) + ["### Tables", ""]
    for table in by_name.values():
        if table.name not in INLINE_TABLES:
            lines += [
                f"**{table.caption}** ([LaTeX](tables/{table.name}.tex))",
                "",
                to_markdown(table),
            ]
    lines += _failures(results)
    return "\n".join(lines).rstrip() + "\n"


def render_html(report_md: str, title: str = "Results") -> str:
    """Render the Markdown report as a standalone HTML page.

    Args:
        report_md: the report's Markdown text.
        title: the page title.

    Returns:
        The HTML text.

    Example:
        >>> "<h1>" in render_html("# Hi")
        True
    """
    body = markdown.markdown(report_md, extensions=["tables"])
    style = (
        "body{font-family:sans-serif;max-width:72em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
        "padding:2px 6px}img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
