"""The results page a repository links from its README (``python -m paper RUN --results-page PATH``).

The README carries no typed numbers: its answer is this page, generated from one run's files. The
page says when, on which machine and from which command the numbers came, then gives the caveats,
the channel answers and the original study's per-architecture questions (which engine was faster,
did pruning pay and from what sparsity, where the time goes: the same sections as ``report.md``,
from the same :class:`~paper.analysis.Analysis`), the gzip sizes, with the central figure (and the
per-operator profile, when the run has one) copied beside it. Two pages in one folder would share
its ``figures/``: give each page its own folder (``docs/results.md``, ``docs/seven_hour/results.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from paper.analysis import Analysis
from paper.figures import CENTRAL, FigureResult, MissingData
from paper.figures.opprofile import load_profiles
from paper.load import Results
from paper.report._text import md_rows
from paper.report.channels import aa_section, channels_section
from paper.report.methods import caveats
from paper.report.questions import engines_section, speedup_section
from paper.report.toolchains import home_section
from paper.tables import Table, to_markdown
from study.records.manifest import OPPROFILE

__all__ = ["write_results_page"]


def _machines(results: Results) -> list[str]:
    out = []
    for machine, info in sorted(results.environment.items()):
        info = info if isinstance(info, dict) else {}
        cpu = info.get("cpu_model") or "unknown CPU"
        isa = info.get("isa") or {}
        flags = {f for f, present in isa.items() if present} if isinstance(isa, dict) else set()
        shown = [
            f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags
        ]
        cores = info.get("physical_cores")
        extra = f", {cores} physical cores" if cores else ""
        out.append(f"`{machine}`: {cpu}{extra}; ISA {', '.join(shown) or 'not recorded'}")
    return out or ["not recorded (no environment.json)"]


def _duration(results: Results) -> str:
    t = results.timings
    if t is None or t.empty or "seconds" not in t:
        return "Its duration was not recorded (no timings.csv)."
    bench = float(t.loc[t["stage"] == "benchmark", "seconds"].sum())
    # gzip sizes are measured in threads beside the making (study.variants): their seconds
    # overlap the other stages' and are not added.
    gzip = t["stage"].astype(str).str.startswith("gzip ")
    total = float(t.loc[~gzip, "seconds"].sum())
    return (
        f"Its stages took {total / 60:.1f} min in all, {bench / 60:.1f} min of it benchmarking "
        "(timings.csv)."
    )


OPPROFILE_FIGURE = "opprofile"


def _opprofile_section(results: Results, drawn: bool) -> list[str]:
    """Where the time goes: the run's per-operator profiles (``opprofile.json``), if it has them."""
    try:
        frame = load_profiles(results.root / OPPROFILE)
    except MissingData:
        return []
    lines = ["### Where the time goes: what pruning could gain at most", ""]
    if drawn:
        lines += [f"![time by operator class](figures/{OPPROFILE_FIGURE}.png)", ""]
    lines += [
        "Per file and engine, from the engine's own profiler: the share of time in ops that a "
        "sparse kernel can use (pruned convolutions and matmuls) and pruning's Amdahl bound "
        "(1/W, W the share in ops with no sparse kernel; a ceiling, reached by no engine that has "
        "no sparse kernel). Shares of one profile each, 10-iteration profiles on a shared machine: "
        "the small classes move by tens of points between runs (docs/measurement.md).",
        "",
    ]
    rows = [
        [r["model"], r["label"], r["engine"], f"{r['sparse']:.0%}", f"{1 - r['sparse']:.0%}"]
        + [_bound(r["bound"])]
        for r in frame.to_dict("records")
    ]
    header = ["model", "file", "engine", "time in sparse ops", "time elsewhere", "bound"]
    lines += md_rows(header, rows, {"time in sparse ops", "time elsewhere", "bound"}) + [""]
    failed = _failed_profiles(results)
    if failed:
        lines += [f"Profiles that failed: {failed}.", ""]
    return lines


def _bound(bound: float | None) -> str:
    if bound is None or bound != bound:  # NaN: no time outside sparse ops
        return "none"
    return ">100x" if bound >= 100 else f"{bound:.2f}x"


def _failed_profiles(results: Results) -> str:
    rows = json.loads((results.root / OPPROFILE).read_text())["profiles"]
    return "; ".join(f"{r['model']} {r['label']} on {r['engine']}" for r in rows if "error" in r)


def _command(results: Results) -> str:
    preset = str(results.config.get("name", "") or "")
    return "python -m study.compare" + (
        f" --preset {preset}" if preset and preset != "quick" else ""
    )


def write_results_page(
    page: str | Path,
    results: Results,
    analysis: Analysis,
    tables: list[Table],
    figures: list[FigureResult],
    figures_dir: Path,
    *,
    today: dt.date | None = None,
) -> Path:
    """Write the results page and copy the central figure into ``<page dir>/figures/``.

    Args:
        page: the Markdown file to write (e.g. ``docs/results.md``).
        results: the loaded results folder.
        analysis: its statistics.
        tables: the paper's tables (the pooled and per-architecture channel tables are used).
        figures: the figure outcomes; the central (forest) figure is copied when it was drawn.
        figures_dir: where the paper wrote its figures.
        today: the date written on the page (default: today).

    Returns:
        The page's path.
    """
    page = Path(page)
    page.parent.mkdir(parents=True, exist_ok=True)
    by_name = {t.name: t for t in tables}
    central = next((f for f in figures if f.name == CENTRAL and not f.skipped), None)
    profile = next((f for f in figures if f.name == OPPROFILE_FIGURE and not f.skipped), None)
    for figure in (central, profile):
        if figure is None:
            continue
        target = page.parent / "figures"
        target.mkdir(exist_ok=True)
        for suffix in (".png", ".svg"):
            drawn = figures_dir / f"{figure.name}{suffix}"
            if drawn.is_file():
                shutil.copyfile(drawn, target / drawn.name)
    runs = sorted(set(results.bench.get("run_id", [])))
    date = (today or dt.date.today()).isoformat()

    def shown(path: Path) -> str:  # as typed from the current folder, where it lies below it
        rel = os.path.relpath(path.resolve(), Path.cwd())
        return str(path) if rel.startswith("..") else rel

    lines = [
        "# Results: does the pruning toolchain bias the engine comparison?",
        "",
        f"Generated on {date} by `python -m paper {shown(results.root)} --results-page "
        f"{shown(page)}` from the run folder `{results.root.name}` (run "
        f"{', '.join(runs) or 'unknown'}), made by `{_command(results)}`. Nothing on this page is "
        "typed by hand: rebuild it from any run folder with the same command. "
        + _duration(results),
        "",
        "Machines:",
        "",
    ]
    lines += [f"- {m}" for m in _machines(results)] + ["", "## What these data cannot say", ""]
    lines += [f"- {n}" for n in caveats(results, analysis)] or ["- No limitation recorded."]
    lines += ["", "## Answers", ""]
    lines += home_section(results, analysis)
    lines += aa_section(analysis)
    lines += channels_section(
        analysis,
        by_name.get("table_channels"),
        by_name.get("table_channels_by_architecture"),
        central,
    )
    lines += ["## The original study's questions, per architecture", ""]
    lines += engines_section(analysis) + speedup_section(analysis)
    lines += _opprofile_section(results, profile is not None)
    gzip_table = by_name.get("table2_gzip_sizes")
    if gzip_table is not None:
        lines += [f"**{gzip_table.caption}**", "", to_markdown(gzip_table), ""]
    lines += [
        "The full report (methods, every table and figure) is `paper/report.md` in the run folder.",
        "",
    ]
    page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return page
