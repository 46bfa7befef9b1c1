"""The results page a repository links from its README (``python -m paper RUN --results-page PATH``).

The README carries no typed numbers: its answer is this page, generated from one run's files. The
page says when, on which machine and from which command the numbers came, then gives the caveats
and the channel answers (the same sections as ``report.md``, from the same
:class:`~paper.analysis.Analysis`) with the central figure copied beside it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from paper.analysis import Analysis
from paper.figures import CENTRAL, FigureResult
from paper.load import Results
from paper.report.channels import aa_section, channels_section
from paper.report.methods import caveats
from paper.report.toolchains import home_section
from paper.tables import Table

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
    total = float(t["seconds"].sum())
    return (
        f"Its stages took {total / 60:.1f} min in all, {bench / 60:.1f} min of it benchmarking "
        "(timings.csv)."
    )


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
    if central is not None:
        target = page.parent / "figures"
        target.mkdir(exist_ok=True)
        for suffix in (".png", ".svg"):
            drawn = figures_dir / f"{central.name}{suffix}"
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
    lines += [
        "The full report (methods, every table and figure) is `paper/report.md` in the run folder.",
        "",
    ]
    page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return page
