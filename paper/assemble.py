"""Build the whole paper (figures, tables, report) from a results folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paper.analysis import analyse
from paper.figures import FigureResult, make_figures
from paper.load import load_results
from paper.report import render_html, render_report
from paper.report.results_page import write_results_page
from paper.tables import (
    Table,
    accuracy_table,
    channel_table,
    cpu_table,
    diagnostics_table,
    size_table,
    throughput_table,
    write_table,
)

__all__ = ["BuildResult", "build_paper"]


@dataclass(frozen=True)
class BuildResult:
    """What one build wrote."""

    out_dir: Path  # the paper folder
    report_md: Path  # report.md
    report_html: Path  # report.html
    tables: tuple[Path, ...]  # every table file (.md and .tex)
    figures: tuple[FigureResult, ...]  # every figure, drawn or skipped (with the reason)
    skipped_tables: tuple[str, ...]  # "name: reason" for tables whose data were absent


def build_paper(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    results_page: str | Path | None = None,
) -> BuildResult:
    """Read a results folder and write figures, tables, ``report.md`` and ``report.html``.

    Reads results only; never runs a benchmark. The same results give byte-identical files.

    Args:
        results_dir: the folder written by ``python -m study.compare`` (must hold bench.jsonl).
        out_dir: where to write; default ``results_dir/paper``.
        results_page: also write the results page a README links (e.g. ``docs/results.md``,
            :mod:`paper.report.results_page`), with the central figure beside it.

    Returns:
        A :class:`BuildResult` listing what was written and what was skipped.

    Raises:
        FileNotFoundError: ``results_dir`` is missing or holds no bench.jsonl (the message names it).
        ValueError: a results file is malformed.

    Example:
        >>> build_paper("results/quick").report_md  # doctest: +SKIP
        PosixPath('results/quick/paper/report.md')
    """
    results = load_results(results_dir)
    out = Path(out_dir) if out_dir is not None else results.root / "paper"
    analysis = analyse(results)
    tables: list[Table] = []
    skipped = []
    if results.manifest.empty:
        for name in ("table1_accuracy", "table2_gzip_sizes", "table_mask_structure"):
            skipped.append(f"{name}: no models/manifest.jsonl")
    else:
        tables += [accuracy_table(analysis), size_table(results.manifest)]
    tables += [cpu_table(results.environment), throughput_table(analysis)]
    if analysis.channels:
        tables.append(channel_table(analysis.channels, pooled=True))
        tables.append(channel_table(analysis.channels, pooled=False))
    else:
        why = analysis.reasons.get("channels", "no channel was computed")
        skipped += [f"{n}: {why}" for n in ("table_channels", "table_channels_by_architecture")]
    if not results.manifest.empty:
        diagnostics = diagnostics_table(results.records)
        if diagnostics.frame.empty:
            skipped.append("table_mask_structure: the manifest records no mask diagnostics")
        else:
            tables.append(diagnostics)
    table_paths = [p for t in tables for p in write_table(t, out / "tables")]
    figures = make_figures(results, analysis, out / "figures")
    text = render_report(results, analysis, tables, figures)
    if skipped:
        text += "\n## Tables not written\n\n" + "".join(f"- {s}\n" for s in skipped)
    report_md = out / "report.md"
    report_md.write_text(text, encoding="utf-8")
    report_html = out / "report.html"
    report_html.write_text(
        render_html(text, title=f"Results: {results.root.name}"), encoding="utf-8"
    )
    if results_page is not None:
        write_results_page(results_page, results, analysis, tables, figures, out / "figures")
    return BuildResult(
        out, report_md, report_html, tuple(table_paths), tuple(figures), tuple(skipped)
    )
