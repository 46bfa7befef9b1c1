"""Where the time goes: each file's inference time by operator class, per engine (question 3).

One panel per engine, one stacked bar per profiled file (architecture and variant): the share of
time in ops with pruned weights (the only ones a sparse kernel can use) first, then the ops no
sparse kernel helps. Beside each bar, the Amdahl bound that share sets on pruning's speed-up (for
a dense file: the bound if every prunable weight were pruned).
The data are ``opprofile.json`` (:mod:`study.analysis.opprofile`, :mod:`study.bench.opprofile`), in a results folder or given
by path:

    python -m paper.figures.opprofile runs/opprofile.json --out docs/figures
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from paper.analysis import Analysis
from paper.figures._common import MissingData
from paper.load import Results
from paper.style import apply_style, palette_for, save_figure
from study.onnx.opclasses import CLASSES
from study.records.manifest import OPPROFILE

__all__ = ["draw_opprofile", "fig_opprofile", "load_profiles", "main"]

_LABELS = {
    "sparse": "pruned conv / matmul (sparse kernel)",
    "dense_weights": "conv / matmul, weights not pruned",
    "squeeze_excite": "squeeze-excite",
}


def _bound_text(bound: float | None) -> str:
    if bound is None or pd.isna(bound):
        return "∞"
    if bound >= 100:
        return ">100x"
    return f"≤{bound:.0f}x" if bound >= 10 else f"≤{bound:.1f}x"


def load_profiles(path: Path) -> pd.DataFrame:
    """One row per profile that ran (model, label, engine, bound, sentence, one column per class).

    Raises:
        MissingData: no file at ``path``, or no profile in it ran.
    """
    if not path.is_file():
        raise MissingData(f"no {path.name} (the preset's `opprofile` step did not run)")
    rows = [r for r in json.loads(path.read_text())["profiles"] if "error" not in r]
    if not rows:
        raise MissingData(f"every profile in {path} failed")
    frame = pd.DataFrame(
        [
            {
                "model": r["model"],
                "label": r["label"],
                "engine": r["engine"],
                "bound": r["bound"],
                "sentence": r["sentence"],
                **{k: r["shares"].get(k, 0.0) for k in CLASSES},
            }
            for r in rows
        ]
    )
    return frame


def draw_opprofile(frame: pd.DataFrame) -> Figure:
    """The stacked bars of :func:`load_profiles`' frame, one panel per engine."""
    engines = list(dict.fromkeys(frame["engine"]))
    bars = list(dict.fromkeys(zip(frame["model"], frame["label"])))
    colours = palette_for(list(CLASSES))
    height = 0.9 + 0.32 * len(bars)
    fig, axes = plt.subplots(
        1,
        len(engines),
        figsize=(4.6 * len(engines), height + 1.2),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    names = [m if m == lab else f"{m} · {lab}" for m, lab in bars]
    for ax, engine in zip(axes[0], engines):
        mine = frame[frame["engine"] == engine].set_index(["model", "label"])
        left = pd.Series(0.0, index=range(len(bars)))
        for klass in CLASSES:
            widths = [float(mine.loc[b, klass]) if b in mine.index else 0.0 for b in bars]
            if any(widths):
                ax.barh(
                    range(len(bars)),
                    widths,
                    left=left,
                    color=colours[klass],
                    label=_LABELS.get(klass, klass.replace("_", " ")),
                    hatch="//" if klass == "sparse" else None,
                    edgecolor="white",
                    linewidth=0.4,
                )
                left += widths
        for i, b in enumerate(bars):
            if b in mine.index:
                bound = mine.loc[b, "bound"]
                text = _bound_text(bound)
                ax.text(1.01, i, text, va="center", fontsize="x-small")
        ax.set_title(engine)
        ax.set_xlim(0, 1.12)
        ax.set_xlabel("share of inference time")
        ax.invert_yaxis()
    axes[0][0].set_yticks(range(len(bars)), names, fontsize="small")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle("Time by operator class (engines' own profilers); pruning's Amdahl bound at right")
    return fig


def fig_opprofile(results: Results, analysis: Analysis) -> Figure:
    """The figure of a results folder's ``opprofile.json``."""
    return draw_opprofile(load_profiles(results.root / OPPROFILE))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper.figures.opprofile", description=__doc__)
    p.add_argument("json", type=Path, help="an opprofile.json (python -m study.bench.opprofile)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for opprofile.png/.svg")
    args = p.parse_args(argv)
    try:
        frame = load_profiles(args.json)
    except MissingData as err:
        p.error(str(err))
    apply_style()
    for path in save_figure(draw_opprofile(frame), args.out, "opprofile"):
        print(path)
    for sentence in frame["sentence"]:
        print(sentence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
