"""Build the whole paper (figures, tables, report) from a results folder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from paper.analysis import analyse
from paper.figures import FigureResult, make_figures
from paper.load import load_results
from paper.report import render_html, render_report
from paper.tables import (
    Table,
    accuracy_table,
    bias_result_table,
    cpu_table,
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


def build_paper(results_dir: str | Path, out_dir: str | Path | None = None) -> BuildResult:
    """Read a results folder and write figures, tables, ``report.md`` and ``report.html``.

    Reads results only; never runs a benchmark. The same results give byte-identical files.

    Args:
        results_dir: the folder written by ``python -m study.compare`` (must hold bench.jsonl).
        out_dir: where to write; default ``results_dir/paper``.

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
    tables: list[Table] = [cpu_table(results.environment), throughput_table(analysis.cells)]
    skipped = []
    if results.manifest.empty:
        skipped += [
            f"{n}: no models/manifest.jsonl" for n in ("table1_accuracy", "table2_gzip_sizes")
        ]
    else:
        tables[1:1] = [accuracy_table(results.manifest), size_table(results.manifest)]
    for factor, name in (("pruner", "table_bias"), ("exporter", "table_bias_exporter")):
        defined = [r for r in analysis.bias.get(factor, []) if math.isfinite(r.estimate)]
        if defined:
            tables.append(bias_result_table(defined, name=name))
        else:
            why = analysis.reasons.get("bias_" + factor, "every bias estimate is undefined")
            skipped.append(f"{name}: {why}")
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
    return BuildResult(
        out, report_md, report_html, tuple(table_paths), tuple(figures), tuple(skipped)
    )
