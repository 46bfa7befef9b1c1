"""The paper's figures, drawn from one :class:`~paper.analysis.Analysis` in one style.

Each figure is a function ``(results, analysis) -> Figure`` in the :data:`FIGURES` registry. A figure
whose data are absent raises :class:`MissingData` with the reason; :func:`make_figures` records the
reason (the report prints it) and writes no file, so there is never an empty figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from paper.analysis import MAIN_PAIR, Analysis
from paper.load import Results
from paper.style import apply_style, palette_for, save_figure
from study.stats import BiasResult

__all__ = ["FIGURES", "FigureResult", "MissingData", "bias_labels", "make_figures"]

_THROUGHPUT = "throughput (img/s)"
_MAX_COLS = 4


class MissingData(Exception):
    """The data a figure needs are not in the results folder; the message says which."""


@dataclass(frozen=True)
class FigureResult:
    """What happened to one figure."""

    name: str  # file stem, e.g. "throughput"
    title: str  # the figure's caption in the report
    paths: tuple[Path, ...]  # written files (PNG, SVG); empty when skipped
    skipped: str | None = None  # why the figure was not drawn; None when it was


def _setting(frame: pd.DataFrame) -> pd.Series:
    """A label for the measurement setting of each row (machine, scenario, batch, threads)."""
    parts = frame["machine"].astype(str)
    for col, fmt in (("scenario", "{}"), ("batch_size", "batch {}"), ("threads", "{} threads")):
        if col in frame:
            parts = parts + " · " + frame[col].map(fmt.format)
    return parts


def _grid(panels: list[str], width: float = 3.8, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    ncols = min(len(panels), _MAX_COLS)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[len(panels) :]:
        ax.remove()
    for ax, title in zip(flat, panels):
        ax.set_title(title)
    return fig, flat[: len(panels)]


def _bars(ax: Axes, frame: pd.DataFrame, x: str, hue: str, hue_order: list[str], colours) -> None:
    """Grouped bars of ``throughput`` with ``ci_low``/``ci_high`` error bars."""
    order = sorted(frame[x].unique())
    width = 0.8 / max(len(hue_order), 1)
    for j, level in enumerate(hue_order):
        sel = frame[frame[hue] == level].set_index(x)
        xs = [i for i, v in enumerate(order) if v in sel.index]
        if not xs:
            continue
        rows = sel.loc[[order[i] for i in xs]]
        pos = np.array(xs) - 0.4 + width * (j + 0.5)
        err = np.vstack([rows["throughput"] - rows["ci_low"], rows["ci_high"] - rows["throughput"]])
        ax.bar(pos, rows["throughput"], width, color=colours[level], label=level)
        ax.errorbar(pos, rows["throughput"], yerr=err, fmt="none", ecolor="black", capsize=2, lw=1)
    long = max(len(str(v)) for v in order) > 12
    ax.set_xticks(
        range(len(order)), order, rotation=30 if long else 0, ha="right" if long else "center"
    )


def _figure_legend(fig: Figure, axes: list[Axes], title: str) -> None:
    """One legend for all panels, below them (never over the data)."""
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes[1:]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(
        list(seen.values()),
        list(seen),
        title=title,
        loc="outside lower center",
        ncol=min(len(seen), 3),
        fontsize="small",
    )


def _variant(frame: pd.DataFrame) -> pd.Series:
    pruner = frame["pruner"].replace({"none": "dense"})
    return pruner + " (" + frame["exporter"] + " export)"


def fig_throughput(results: Results, analysis: Analysis) -> Figure:
    """Throughput per engine per architecture: dense vs gmp vs SparseML, fp32, with 95% CIs."""
    cells = analysis.cells
    cells = cells[(cells["precision"] == "f32") & cells["pruner"].isin(["none", "gmp", "sparseml"])]
    if cells.empty:
        raise MissingData("no fp32 rows of dense, gmp or SparseML models")
    cells = cells.assign(variant=_variant(cells), panel=_setting(cells) + "\n" + cells["model"])
    panels = sorted(cells["panel"].unique())
    hue_order = sorted(cells["variant"].unique())
    colours = palette_for(hue_order)
    fig, axes = _grid(panels)
    for ax, panel in zip(axes, panels):
        _bars(ax, cells[cells["panel"] == panel], "engine", "variant", hue_order, colours)
        ax.set_xlabel("engine")
        ax.set_ylabel(_THROUGHPUT)
    _figure_legend(fig, axes, "model variant")
    fig.suptitle("Throughput per engine (fp32, mean of trials, 95% bootstrap CI)")
    return fig


def fig_speedup(results: Results, analysis: Analysis) -> Figure:
    """Pruning speed-up vs sparsity per engine: the one-shot sweep plus dense at 0."""
    if analysis.speedup is None:
        raise MissingData(analysis.reasons.get("speedup", "no pruning speed-up"))
    sweep = analysis.speedup[analysis.speedup["pruner"] == "oneshot"]
    if "precision" in sweep:
        sweep = sweep[sweep["precision"] == "f32"]
    if sweep.empty:
        raise MissingData("no one-shot sparsity sweep rows (pruner 'oneshot') in bench.jsonl")
    sweep = sweep.assign(panel=_setting(sweep) + "\n" + sweep["model"])
    panels = sorted(sweep["panel"].unique())
    engines = sorted(sweep["engine"].unique())
    colours = palette_for(engines)
    fig, axes = _grid(panels)
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
    _figure_legend(fig, axes, "engine")
    fig.suptitle("Pruning speed-up vs sparsity (one-shot magnitude pruning, 95% CI)")
    return fig


_BIAS_CONTEXT = (
    ("machine", "{}"),
    ("held", "{}"),
    ("sparsity", "sparsity {:.2f}"),
    ("scenario", "{}"),
    ("batch_size", "batch {}"),
    ("threads", "{} threads"),
)


def bias_labels(results: list[BiasResult]) -> list[str]:
    """Row labels for bias results: the model plus whatever context differs between the rows."""
    varying = [
        (attr, fmt) for attr, fmt in _BIAS_CONTEXT if len({getattr(r, attr) for r in results}) > 1
    ]

    def context(r: BiasResult, attr: str, fmt: str) -> str:
        if attr == "held":  # the level of the factor held fixed, named by that factor
            return f"{'exporter' if r.factor == 'pruner' else 'pruner'} {r.held}"
        return fmt.format(getattr(r, attr))

    return [" · ".join([r.model] + [context(r, a, fmt) for a, fmt in varying]) for r in results]


def _forest(results: list[BiasResult], title: str, xlabel: str) -> Figure:
    rows = [r for r in results if math.isfinite(r.estimate) and math.isfinite(r.ci_low)]
    if not rows:
        raise MissingData("every bias estimate is undefined (missing cells or single trials)")
    rows.sort(key=lambda r: (r.machine, r.held, r.sparsity, r.model == "pooled", r.model))
    labels = bias_labels(rows)
    colours = palette_for(["architecture", "pooled"])
    fig, ax = plt.subplots(figsize=(8.0, 0.45 * len(rows) + 2.0), layout="constrained")
    margin = rows[0].margin
    ax.axvspan(
        1 - margin,
        1 + margin,
        color="grey",
        alpha=0.2,
        lw=0,
        label=f"equivalence margin ±{margin:.0%}",
    )
    ax.axvline(1.0, color="grey", lw=0.8)
    for kind, marker in (("architecture", "o"), ("pooled", "D")):
        sel = [(y, r) for y, r in enumerate(rows) if (r.model == "pooled") == (kind == "pooled")]
        if not sel:
            continue
        ys = [y for y, _ in sel]
        est = np.array([r.estimate for _, r in sel])
        err = np.array(
            [[r.estimate - r.ci_low for _, r in sel], [r.ci_high - r.estimate for _, r in sel]]
        )
        ax.errorbar(
            est, ys, xerr=err, fmt=marker, color=colours[kind], capsize=3, label=f"{kind} (95% CI)"
        )
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("architecture")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=3, fontsize="small")
    return fig


def fig_bias_pruner(results: Results, analysis: Analysis) -> Figure:
    """The toolchain-bias forest plot: B per architecture and pooled, with the ±5% margin."""
    if "pruner" not in analysis.bias:
        raise MissingData(analysis.reasons.get("bias_pruner", "no bias results"))
    num, den = MAIN_PAIR
    xlabel = f"B = ({num}/{den} on SparseML-pruned)\n/ ({num}/{den} on gmp-pruned)"
    return _forest(analysis.bias["pruner"], "Pruning-toolchain bias (95% CI)", xlabel)


def fig_bias_exporter(results: Results, analysis: Analysis) -> Figure:
    """The exporter factor, in the same form as the bias forest plot."""
    if "exporter" not in analysis.bias:
        raise MissingData(analysis.reasons.get("bias_exporter", "no exporter results"))
    num, den = MAIN_PAIR
    xlabel = f"B = ({num}/{den}, SparseML export)\n/ ({num}/{den}, torch export)"
    return _forest(analysis.bias["exporter"], "Exporter effect (95% CI)", xlabel)


def fig_precision(results: Results, analysis: Analysis) -> Figure:
    """OpenVINO at fp32 vs its default precision, next to DeepSparse fp32."""
    if analysis.precision is None:
        raise MissingData(analysis.reasons.get("precision", "no precision ablation"))
    cells = analysis.cells
    cells = cells[~cells["pruner"].eq("oneshot")]
    label = cells["engine"] + " " + cells["precision"]
    cells = cells.assign(series=label, panel=_setting(cells))
    cells = cells[cells["series"].isin(["openvino f32", "openvino default", "deepsparse f32"])]
    cells = cells.assign(x=_variant(cells).str.replace(" export)", ")"))
    cells = cells.assign(panel=cells["panel"] + "\n" + cells["model"])
    panels = sorted(cells["panel"].unique())
    hue_order = [
        s
        for s in ("deepsparse f32", "openvino f32", "openvino default")
        if (cells["series"] == s).any()
    ]
    colours = palette_for(hue_order)
    fig, axes = _grid(panels, width=4.5, height=4.0)
    for ax, panel in zip(axes, panels):
        _bars(ax, cells[cells["panel"] == panel], "x", "series", hue_order, colours)
        ax.set_xlabel("model variant (pruner, exporter)")
        ax.set_ylabel(_THROUGHPUT)
    _figure_legend(fig, axes, "engine, precision")
    fig.suptitle("OpenVINO at fp32 vs its default precision (95% CI)")
    return fig


def fig_layer_sparsity(results: Results, analysis: Analysis) -> Figure:
    """Per-layer sparsity of the gmp- and SparseML-pruned models (manifest ``layers``)."""
    man = results.manifest
    if man.empty or "layers" not in man:
        raise MissingData("no models/manifest.jsonl with per-layer zeros")
    man = man[man["pruner"].isin(["gmp", "sparseml"]) & man["layers"].map(lambda v: len(v) > 0)]
    if man.empty:
        raise MissingData("the manifest holds no per-layer zeros of gmp or SparseML models")
    # The layers come from the torch model, so one file per (model, pruner) suffices: prefer torch.
    man = man.assign(_torch=man["exporter"] != "torch").sort_values(["model", "pruner", "_torch"])
    man = man.drop_duplicates(["model", "pruner"])
    models = sorted(man["model"].unique())
    colours = palette_for(["gmp", "sparseml"])
    fig, axes = _grid(models, width=4.5)
    for ax, model in zip(axes, models):
        names: list[str] = []
        for _, rec in man[man["model"] == model].iterrows():
            layers = rec["layers"]
            names = [layer["name"] for layer in layers]
            frac = [layer["zeros"] / layer["numel"] for layer in layers]
            ax.plot(
                range(len(layers)),
                frac,
                marker="o",
                ms=3,
                color=colours[rec["pruner"]],
                label=f"{rec['pruner']} (target {rec['sparsity']:.2f})",
            )
        if len(names) <= 30:
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="x-small")
        ax.set_xlabel("prunable layer (model order)")
        ax.set_ylabel("layer sparsity (fraction of zeros)")
    _figure_legend(fig, axes, "pruner")
    fig.suptitle("Per-layer sparsity after pruning: gmp vs SparseML")
    return fig


def fig_sensitivity(results: Results, analysis: Analysis) -> Figure:
    """Sensitivity curves: the metric per layer as each layer alone is pruned to each level."""
    sens = results.sensitivity
    if sens is None or sens.empty:
        raise MissingData("no sensitivity.csv in the results folder")
    sens = sens.assign(panel=sens["model"] + " · " + sens["method"].astype(str))
    panels = sorted(sens["panel"].unique())
    fig, axes = _grid(panels, width=4.2)
    for ax, panel in zip(axes, panels):
        sel = sens[sens["panel"] == panel]
        layers = list(dict.fromkeys(sel["layer"]))  # file order (model order)
        colours = dict(zip(layers, plt.get_cmap("viridis")(np.linspace(0, 0.9, len(layers)))))
        for layer in layers:
            curve = sel[sel["layer"] == layer].sort_values("level")
            ax.plot(
                curve["level"], curve["metric"], marker="o", ms=3, color=colours[layer], label=layer
            )
        ax.set_xlabel("layer sparsity (fraction pruned)")
        ax.set_ylabel("metric (as recorded in sensitivity.csv)")
        if len(layers) <= 12:
            ax.legend(title="layer", fontsize="x-small")
    fig.suptitle("Layer-wise pruning sensitivity")
    return fig


def fig_compression(results: Results, analysis: Analysis) -> Figure:
    """Compression ratio raw / gzip -9 of every ONNX file vs its measured sparsity."""
    man = results.manifest
    if man.empty or "gzip_bytes" not in man:
        raise MissingData("no models/manifest.jsonl with gzip sizes")
    man = man.assign(ratio=man["raw_bytes"] / man["gzip_bytes"]).sort_values(
        ["model", "pruner", "exporter", "sparsity"]
    )
    models = sorted(man["model"].unique())
    colours = palette_for(models)
    markers = dict(zip(sorted(man["pruner"].unique()), "osD^vP*X"))
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    for (model, pruner), sel in man.groupby(["model", "pruner"], sort=True):
        ax.plot(
            sel["measured_sparsity"],
            sel["ratio"],
            ls="none",
            marker=markers[pruner],
            color=colours[model],
            label=f"{model} · {pruner}",
        )
    ax.set_xlabel("measured sparsity (fraction of zero weights)")
    ax.set_ylabel("compression ratio, raw / gzip -9 (×)")
    ax.set_title("Compressibility of the ONNX files")
    ax.legend(fontsize="x-small", ncol=2)
    return fig


FIGURES: dict[str, tuple[str, Callable[[Results, Analysis], Figure]]] = {
    "throughput": ("Throughput per engine per architecture", fig_throughput),
    "speedup_vs_sparsity": ("Pruning speed-up vs sparsity per engine", fig_speedup),
    "bias_forest": ("Toolchain-bias forest plot", fig_bias_pruner),
    "exporter_forest": ("Exporter-factor forest plot", fig_bias_exporter),
    "openvino_precision": ("OpenVINO fp32 vs default precision", fig_precision),
    "layer_sparsity": ("Per-layer sparsity, gmp vs SparseML", fig_layer_sparsity),
    "sensitivity": ("Sensitivity curves", fig_sensitivity),
    "compression": ("Compression ratios (gzip -9)", fig_compression),
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
