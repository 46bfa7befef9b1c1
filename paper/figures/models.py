"""Figures of the model files: per-layer sparsity, layer sensitivity, compressibility."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from paper.analysis import NOT_TRAINED, Analysis
from paper.figures._common import MissingData, figure_legend, grid, suptitle
from paper.load import Results
from paper.style import palette_for
from study.analysis.summary import variant_label

__all__ = ["fig_compression", "fig_layer_sparsity", "fig_sensitivity"]

_MARKERS = "osD^vP*Xh<>"


def _machine(record: dict) -> str:
    extra = record.get("extra")
    return str(extra.get("machine", "")) if isinstance(extra, dict) else ""


def fig_layer_sparsity(results: Results, analysis: Analysis) -> Figure:
    """Per-layer sparsity of every pruned fp32 variant (manifest ``layers``, the torch model)."""
    man = results.manifest
    if man.empty or "layers" not in man:
        raise MissingData("no models/manifest.jsonl with per-layer zeros")
    keep = (man["pruner"] != "none") & (man["quant"] == "none") & (man["exporter"] == "torch")
    man = man[keep & man["layers"].map(lambda v: len(v) > 0)]
    if man.empty:
        raise MissingData("the manifest holds no per-layer zeros of a pruned fp32 model")
    records = man.to_dict("records")
    labels = [variant_label(r) for r in records]
    trained = [analysis.trained(r, _machine(r)) for r in records]
    models = sorted({r["model"] for r in records})
    colours = palette_for(list(dict.fromkeys(labels)))
    markers = {label: _MARKERS[i % len(_MARKERS)] for i, label in enumerate(colours)}
    fig, axes = grid(models, width=5.0, height=4.0)
    for ax, model in zip(axes, models):
        names: list[str] = []
        for rec, label, ok in zip(records, labels, trained):
            if rec["model"] != model:
                continue
            layers = rec["layers"]
            names = [layer["name"] for layer in layers]
            frac = [layer["zeros"] / layer["numel"] for layer in layers]
            style = dict(
                marker=markers[label], ms=4, lw=1, color=colours[label], ls="-" if ok else "--"
            )
            ax.plot(range(len(layers)), frac, **style)
        if len(names) <= 30:
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize="x-small")
        ax.set_xlabel("prunable layer (model order)")
        ax.set_ylabel("layer sparsity (fraction of zeros)")
    for label, colour in colours.items():  # legend entries drawn solid, whatever the line
        axes[0].plot([], [], marker=markers[label], ms=4, lw=1, color=colour, label=label)
    if not all(trained):
        axes[0].plot([], [], color="grey", ls="--", label=f"dashed: {NOT_TRAINED} (below the gate)")
    figure_legend(fig, axes, "variant")
    suptitle(fig, "Per-layer sparsity of the pruned variants")
    return fig


def fig_sensitivity(results: Results, analysis: Analysis) -> Figure:
    """Sensitivity curves: the metric per layer as each layer alone is pruned to each level."""
    sens = results.sensitivity
    if sens is None or sens.empty:
        raise MissingData("no sensitivity.csv in the results folder")
    sens = sens.assign(panel=sens["model"] + " · " + sens["method"].astype(str))
    panels = sorted(sens["panel"].unique())
    fig, axes = grid(panels, width=4.2)
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
    suptitle(fig, "Layer-wise pruning sensitivity")
    return fig


def _kind(record: dict) -> str:
    if record["pruner"] == "none":
        return "dense"
    if record["pruner"] == "oneshot":
        return "one-shot sweep"
    return "pruned, fp32" if record["quant"] == "none" else "pruned, int8"


def fig_compression(results: Results, analysis: Analysis) -> Figure:
    """Compression ratio raw / gzip -9 of every ONNX file vs its measured sparsity."""
    man = results.manifest
    if man.empty or "gzip_bytes" not in man:
        raise MissingData("no models/manifest.jsonl with gzip sizes")
    man = man.drop_duplicates("onnx_sha256")  # the A/A twin points at the reference's file
    man = man.assign(
        ratio=man["raw_bytes"] / man["gzip_bytes"], kind=[_kind(r) for r in man.to_dict("records")]
    )
    models = sorted(man["model"].unique())
    colours = palette_for(models)
    kinds = ["dense", "pruned, fp32", "pruned, int8", "one-shot sweep"]
    markers = dict(zip(kinds, "osD^"))
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    for (model, kind), sel in man.groupby(["model", "kind"], sort=True):
        ax.plot(
            sel["measured_sparsity"],
            sel["ratio"],
            ls="none",
            marker=markers[kind],
            color=colours[model],
            label=f"{model} · {kind}",
        )
    ax.set_xlabel("measured sparsity (fraction of zero weights)")
    ax.set_ylabel("compression ratio, raw / gzip -9 (×)")
    ax.set_title("Compressibility of the ONNX files")
    ax.legend(fontsize="x-small", ncol=2)
    return fig
