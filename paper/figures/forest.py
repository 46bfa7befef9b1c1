"""Forest plots of the channels: B per channel and engine pair with 95% CIs and the ±margin band.

The pooled plot is the study's central figure (README): one row per channel and engine pair, the
A/A control at the top on a shaded band (its CI is the study's detection limit), B on a log axis
(B and 1/B equally far from 1), the declared equivalence margin shaded, and each row's
``B [95% CI]`` written beside it. The per-architecture plot has one panel per engine pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from paper.analysis import Analysis
from paper.figures._common import MissingData
from paper.load import Results
from paper.style import palette_for
from paper.tables.channels import b_ci, context_columns, pair
from study.analysis.summary import ENGINE_PAIRS
from study.stats import ChannelResult

__all__ = ["channel_title", "fig_channel_forest", "fig_channel_forest_by_architecture"]

_TITLES = {
    "pruner": "pruner: SparseML vs gmp",
    "exporter": "exporter: SparseML vs torch.onnx",
    "profile:uniform": "profile: uniform vs global",
    "profile:vendor": "profile: vendor vs global",
    "mask:block4": "mask: 1x4 blocks vs unstructured",
    "precision": "precision: int8 vs fp32 (torch.ao)",
    "quantizer": "quantizer: SparseML vs torch.ao (int8)",
}
_TICKS = (0.05, 0.1, 0.2, 0.25, 0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0)
_COARSE = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)  # a wide axis (the rest would crowd)
_AA_COLOUR = "#f3e3b0"


def _rows(ax, results, margin: float, y: int, ticks, labels, bold) -> None:
    """The log B axis with its margin band, and the row labels (group headings in bold)."""
    _log_axis(ax, results, margin)
    ax.set_ylim(y - 0.5, -0.7)
    ax.set_yticks(ticks, labels)
    for text, is_bold in zip(ax.get_yticklabels(), bold):
        text.set_fontweight("bold" if is_bold else "normal")
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="y", visible=False)


def channel_title(name: str, identical: bool = False, one_file: bool = True) -> str:
    """A row-group heading: what the channel compares (the A/A control named as such).

    ``identical``: gmp's and SparseML's files hold the same numbers; ``one_file``: and the same
    bytes (one file measured in two cells), else both files (zeros of opposite sign bit).
    """
    if name == "pruner" and identical:
        kind = "same file" if one_file else "same numbers"
        return f"A/A control: SparseML vs gmp ({kind})"
    return _TITLES.get(name, name)


def _context(r: ChannelResult, columns: list[str]) -> str:
    fmt = {"batch_size": "batch {}", "threads": "{} threads"}
    return " · ".join(fmt.get(c, "{}").format(getattr(r, c)) for c in columns)


def _groups(results: Sequence[ChannelResult]) -> list[tuple[str, list[ChannelResult]]]:
    """(heading key, rows) per channel and context, the A/A control (pruner) first."""
    columns = context_columns(results)
    groups: dict[tuple, list[ChannelResult]] = {}
    for r in results:
        groups.setdefault((r.channel, _context(r, columns)), []).append(r)
    keys = sorted(groups, key=lambda k: k[0] != "pruner")  # stable: the study's order otherwise
    return [(k, groups[k]) for k in keys]


def _pairs(results: Sequence[ChannelResult]) -> list[str]:
    """The engine pairs present, in study.analysis.summary.ENGINE_PAIRS order, then any others."""
    names = {pair(r) for r in results}
    known = ["/".join(p) for p in ENGINE_PAIRS]
    return [p for p in known if p in names] + sorted(names - set(known))


def _log_axis(ax: Axes, results: Sequence[ChannelResult], margin: float) -> None:
    """Log x axis spanning every finite CI and the margin, with plain-number ticks."""
    lows = [r.ci_low for r in results if math.isfinite(r.ci_low) and r.ci_low > 0]
    highs = [r.ci_high for r in results if math.isfinite(r.ci_high)]
    lo = min([*lows, 1.0 - margin]) / 1.12
    hi = max([*highs, 1.0 + margin]) * 1.12
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = [t for t in (_TICKS if hi / lo < 4 else _COARSE) if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())


def _reference_lines(ax: Axes, margin: float) -> None:
    ax.axvspan(1 - margin, 1 + margin, color="grey", alpha=0.2, lw=0, label=f"±{margin:.0%} margin")
    ax.axvline(1.0, color="grey", lw=0.9)


def _point(ax: Axes, r: ChannelResult, y: float, colour, marker: str, label: str | None) -> None:
    if not (math.isfinite(r.estimate) and math.isfinite(r.ci_low)):
        return
    err = [[r.estimate - r.ci_low], [r.ci_high - r.estimate]]
    ax.errorbar(
        [r.estimate], [y], xerr=err, fmt=marker, color=colour, ms=6, capsize=3, lw=1.6, label=label
    )


def fig_channel_forest(results: Results, analysis: Analysis) -> Figure:
    """The central figure: pooled B per channel and engine pair, 95% CI, ±margin, A/A on top."""
    pooled = [r for r in analysis.channels if r.model == "pooled"]
    if not pooled:
        raise MissingData(analysis.reasons.get("channels", "no channel was computed"))
    identical = bool(analysis.identity) and all(analysis.identity.values())
    one = all(analysis.one_file.get(m, False) for m in analysis.identity)
    colours = palette_for(_pairs(pooled))
    groups = _groups(pooled)
    n_rows = sum(len(rows) + 1 for _, rows in groups)
    fig, ax = plt.subplots(figsize=(9.0, 0.3 * n_rows + 2.2), layout="constrained")
    _reference_lines(ax, analysis.margin)
    ticks, labels, right, bold, seen = [], [], [], [], set()
    y = 0
    for (channel, context), rows in groups:
        ticks.append(y)
        k = "/".join(str(n) for n in sorted({r.k for r in rows}))
        where = f" · {context}" if context else ""
        labels.append(f"{channel_title(channel, identical, one)}{where} (k = {k})")
        right.append("")
        bold.append(True)
        if channel == "pruner":
            label = "A/A control: its CI is the detection limit" if identical else None
            ax.axhspan(y - 0.5, y + len(rows) + 0.5, color=_AA_COLOUR, alpha=0.6, lw=0, label=label)
        for r in rows:
            y += 1
            name = pair(r)
            _point(ax, r, y, colours[name], "D", None if name in seen else name)
            seen.add(name)
            ticks.append(y)
            labels.append(f"    {name.replace('/', ' / ')}")
            right.append(b_ci(r))
            bold.append(False)
        y += 1
    _rows(ax, pooled, analysis.margin, y, ticks, labels, bold)
    twin = ax.twinx()  # B [95% CI] beside each row, laid out by constrained layout
    twin.set_ylim(ax.get_ylim())
    twin.set_yticks(ticks, right, fontsize="small")
    twin.tick_params(axis="y", length=0)
    twin.grid(False)
    ax.set_xlabel("B = (N / D throughput on the variant) / (N / D on the reference), log scale")
    ax.set_title(
        "Does a toolchain choice change the engine comparison?\n"
        "B per channel and engine pair N / D, pooled over k architectures, 95% CI"
    )
    fig.legend(loc="outside lower center", ncol=3, fontsize="small")
    return fig


def fig_channel_forest_by_architecture(results: Results, analysis: Analysis) -> Figure:
    """B per channel and architecture, one panel per engine pair, the pooled B as a diamond."""
    rows = list(analysis.channels)
    if not rows:
        raise MissingData(analysis.reasons.get("channels", "no channel was computed"))
    identical = bool(analysis.identity) and all(analysis.identity.values())
    one = all(analysis.one_file.get(m, False) for m in analysis.identity)
    pairs = _pairs(rows)
    models = sorted({r.model for r in rows if r.model != "pooled"})
    colours = palette_for(models)
    layout = _groups([r for r in rows if pair(r) == pairs[0]])
    heads = [(channel, context) for (channel, context), _ in layout]
    n_rows = sum(len(models) + 2 for _ in heads)
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(4.2 * len(pairs) + 2.6, 0.26 * n_rows + 2.0), sharey=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    axes = list(axes.ravel())
    seen: set[str] = set()
    for ax, name in zip(axes, pairs):
        mine = [r for r in rows if pair(r) == name]
        _reference_lines(ax, analysis.margin)
        ticks, labels, bold, y = [], [], [], 0
        for channel, context in heads:
            ticks.append(y)
            labels.append(
                channel_title(channel, identical, one) + (f" · {context}" if context else "")
            )
            bold.append(True)
            group = dict(_groups(mine)).get((channel, context), [])
            for model in [*models, "pooled"]:
                y += 1
                found = [r for r in group if r.model == model]
                if found:
                    pooled = model == "pooled"
                    colour = "black" if pooled else colours[model]
                    legend = None if model in seen else model
                    seen.add(model)
                    _point(ax, found[0], y, colour, "D" if pooled else "o", legend)
                ticks.append(y)
                labels.append(f"    {model}")
                bold.append(model == "pooled")
            y += 1
        _rows(ax, mine, analysis.margin, y, ticks, labels, bold)
        ax.set_title(name.replace("/", " / "))
        ax.set_xlabel("B (log scale)")
    fig.suptitle("B per channel and architecture (95% CI); diamond: pooled over architectures")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize="small"
    )
    return fig
