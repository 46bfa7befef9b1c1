"""Figures of the engines' throughput: per variant, the one-shot speed-up curve, OpenVINO's precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from paper.analysis import Analysis
from paper.figures._common import (
    THROUGHPUT,
    MissingData,
    bars,
    figure_legend,
    grid,
    setting,
    suptitle,
)
from paper.load import Results
from paper.style import palette_for

__all__ = ["fig_precision", "fig_speedup", "fig_throughput"]

_CI = "geometric mean of trials, t 95% CI"
_SERIES = ("deepsparse f32", "openvino f32", "openvino default", "openvino f32-sparse")


def _labelled(analysis: Analysis, cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with ``variant`` (its label, "(not trained)" below the gate) and ``_rank``."""
    records = cells.to_dict("records")
    labels = [analysis.label(r, r["machine"]) for r in records]
    return cells.assign(variant=labels, _rank=[analysis.rank(r) for r in records])


def _order(cells: pd.DataFrame) -> list[str]:
    return list(cells.sort_values(["_rank", "variant"])["variant"].drop_duplicates())


def fig_throughput(results: Results, analysis: Analysis) -> Figure:
    """Throughput per variant and engine, per architecture and setting: fp32 engines, t 95% CIs."""
    cells = analysis.cells
    cells = cells[(cells["precision"] == "f32") & (cells["pruner"] != "oneshot")]
    if cells.empty:
        raise MissingData("no fp32 rows of the dense or pruned variants")
    cells = _labelled(analysis, cells)
    cells = cells.assign(panel=setting(cells) + "\n" + cells["model"])
    panels = sorted(cells["panel"].unique())
    engines = sorted(cells["engine"].unique())
    colours = palette_for(engines)
    fig, axes = grid(panels, width=6.5, height=4.6)
    for ax, panel in zip(axes, panels):
        sel = cells[cells["panel"] == panel]
        bars(ax, sel, "variant", "engine", engines, colours, order=_order(sel))
        ax.set_xlabel("model variant")
        ax.set_ylabel(THROUGHPUT)
    figure_legend(fig, axes, "engine (precision f32)")
    suptitle(fig, f"Throughput per variant and engine ({_CI})")
    return fig


def fig_speedup(results: Results, analysis: Analysis) -> Figure:
    """Pruning speed-up vs sparsity per engine: the one-shot sweep plus dense at 0."""
    if analysis.speedup is None:
        raise MissingData(analysis.reasons.get("speedup", "no pruning speed-up"))
    sweep = analysis.speedup[analysis.speedup["pruner"] == "oneshot"]
    sweep = sweep[sweep["precision"] == "f32"]
    if sweep.empty:
        raise MissingData("no one-shot sparsity sweep rows (pruner 'oneshot') in bench.jsonl")
    sweep = sweep.assign(panel=setting(sweep) + "\n" + sweep["model"])
    panels = sorted(sweep["panel"].unique())
    engines = sorted(sweep["engine"].unique())
    colours = palette_for(engines)
    fig, axes = grid(panels)
    for ax, panel in zip(axes, panels):
        sel = sweep[sweep["panel"] == panel]
        for engine in engines:
            e = sel[sel["engine"] == engine].sort_values("sparsity")
            if e.empty:
                continue
            xs = np.r_[0.0, e["sparsity"].to_numpy(float)]  # dense: speed-up 1 by definition
            est, lo, hi = (
                np.r_[1.0, e[c].to_numpy(float)] for c in ("estimate", "ci_low", "ci_high")
            )
            ax.plot(xs, est, marker="o", color=colours[engine], label=engine)
            ax.fill_between(xs, lo, hi, color=colours[engine], alpha=0.25, lw=0)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("sparsity (fraction of zero weights)")
        ax.set_ylabel("speed-up vs dense (×)")
    figure_legend(fig, axes, "engine")
    suptitle(fig, "Pruning speed-up vs sparsity (one-shot magnitude pruning, round-paired 95% CI)")
    return fig


def fig_precision(results: Results, analysis: Analysis) -> Figure:
    """OpenVINO at fp32 vs its default precision (and sparse weights), next to DeepSparse fp32."""
    if analysis.precision is None:
        raise MissingData(analysis.reasons.get("precision", "no precision ablation"))
    cells = analysis.cells
    cells = cells.assign(series=cells["engine"] + " " + cells["precision"])
    ablated = cells[cells["series"].isin(_SERIES[2:])]
    files = ablated[["machine", "model", "pruner", "profile", "mask", "quant", "exporter"]]
    files = files.assign(sparsity=ablated["sparsity"]).drop_duplicates()
    cells = cells.merge(files, on=list(files.columns))  # the files with an ablation cell only
    cells = cells[cells["series"].isin(_SERIES)]
    cells = _labelled(analysis, cells)
    cells = cells.assign(panel=setting(cells) + "\n" + cells["model"])
    panels = sorted(cells["panel"].unique())
    hue_order = [s for s in _SERIES if (cells["series"] == s).any()]
    colours = palette_for(list(_SERIES))
    fig, axes = grid(panels, width=5.0, height=4.4)
    for ax, panel in zip(axes, panels):
        sel = cells[cells["panel"] == panel]
        bars(ax, sel, "variant", "series", hue_order, colours, order=_order(sel))
        ax.set_xlabel("model variant")
        ax.set_ylabel(THROUGHPUT)
    figure_legend(fig, axes, "engine, precision")
    suptitle(fig, f"OpenVINO's precisions vs fp32, and DeepSparse fp32 ({_CI})")
    return fig
