"""The paper's figures, drawn from one :class:`~paper.analysis.Analysis` in one style.

Each figure is a function ``(results, analysis) -> Figure`` in the :data:`FIGURES` registry. A figure
whose data are absent raises :class:`MissingData` with the reason; :func:`make_figures` records the
reason (the report prints it) and writes no file, so there is never an empty figure.

- :mod:`paper.figures.forest`: the channel forest plots (the central figure, and per architecture);
- :mod:`paper.figures.engines`: throughput per variant and engine, the speed-up curve, precision;
- :mod:`paper.figures.models`: per-layer sparsity, layer sensitivity, compressibility;
- :mod:`paper.figures.opprofile`: time by operator class per engine (question 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from paper.analysis import Analysis
from paper.figures._common import MissingData
from paper.figures.engines import fig_precision, fig_speedup, fig_throughput
from paper.figures.forest import fig_channel_forest, fig_channel_forest_by_architecture
from paper.figures.models import fig_compression, fig_layer_sparsity, fig_sensitivity
from paper.figures.opprofile import fig_opprofile
from paper.load import Results
from paper.style import apply_style, save_figure

__all__ = ["CENTRAL", "FIGURES", "FigureResult", "MissingData", "make_figures"]

CENTRAL = "channel_forest"  # the study's central figure (the README shows it)


@dataclass(frozen=True)
class FigureResult:
    """What happened to one figure."""

    name: str  # file stem, e.g. "throughput"
    title: str  # the figure's caption in the report
    paths: tuple[Path, ...]  # written files (PNG, SVG); empty when skipped
    skipped: str | None = None  # why the figure was not drawn; None when it was


FIGURES: dict[str, tuple[str, Callable[[Results, Analysis], Figure]]] = {
    CENTRAL: (
        "B per channel and engine pair, pooled over architectures (95% CI, ±margin shaded)",
        fig_channel_forest,
    ),
    "channel_forest_by_architecture": (
        "B per channel, engine pair and architecture (95% CI)",
        fig_channel_forest_by_architecture,
    ),
    "throughput": ("Throughput per variant and engine (geometric mean, t 95% CI)", fig_throughput),
    "speedup_vs_sparsity": ("Pruning speed-up vs sparsity per engine", fig_speedup),
    "openvino_precision": (
        "OpenVINO's precisions vs fp32 (geometric mean, t 95% CI)",
        fig_precision,
    ),
    "layer_sparsity": ("Per-layer sparsity of the pruned variants", fig_layer_sparsity),
    "sensitivity": ("Sensitivity curves", fig_sensitivity),
    "compression": ("Compression ratios (gzip -9)", fig_compression),
    "opprofile": (
        "Time by operator class per engine, and the Amdahl bound on pruning's speed-up",
        fig_opprofile,
    ),
}


def make_figures(results: Results, analysis: Analysis, out_dir: Path) -> list[FigureResult]:
    """Draw and save every figure of :data:`FIGURES` whose data are present.

    Args:
        results: the loaded results folder.
        analysis: its statistics.
        out_dir: folder for the PNG and SVG files; created when missing.

    Returns:
        One :class:`FigureResult` per registered figure, in registry order.
    """
    apply_style()
    outcomes = []
    for name, (title, draw) in FIGURES.items():
        try:
            fig = draw(results, analysis)
        except MissingData as why:
            outcomes.append(FigureResult(name, title, (), str(why)))
            continue
        outcomes.append(FigureResult(name, title, tuple(save_figure(fig, out_dir, name))))
    return outcomes
