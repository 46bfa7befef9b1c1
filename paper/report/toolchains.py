"""The report's first answer: the home-advantage test of the whole-toolchain variants.

The same sentences and table as ``summary.md`` (:func:`study.analysis.toolchain_text.toolchain_section`),
from the run's one analysis (``Analysis.home``, :func:`study.analysis.summary.home_results`):
one sentence per vendor and engine pair ("Neural Magic's toolchain moves DeepSparse/OpenVINO by
X% [CI]; Intel's by Y% [CI]"), the interaction and whether the single factors add up.
"""

from __future__ import annotations

from types import SimpleNamespace

from paper.analysis import Analysis
from paper.load import Results
from study.analysis.toolchain_text import toolchain_section

__all__ = ["home_section"]


def home_section(results: Results, analysis: Analysis) -> list[str]:
    """Markdown lines of the home-advantage answer (none when the run has no toolchain factor)."""
    cfg = results.study_config
    if cfg is None or len(cfg.levels("toolchain")) < 2:
        return []
    view = SimpleNamespace(cfg=cfg, home=list(analysis.home), records=list(results.records))
    return [f"#{line}" if line.startswith("## ") else line for line in toolchain_section(view)]
