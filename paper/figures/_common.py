"""What every figure shares: the MissingData signal, panel grids, bars with CIs, one legend."""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["THROUGHPUT", "MissingData", "bars", "figure_legend", "grid", "setting", "suptitle"]

THROUGHPUT = "throughput (img/s)"
_MAX_COLS = 4
_MIN_WIDTH = 6.5  # inches: room for a title and a legend under a single panel
_CHAR_INCHES = 0.085  # width of one character of a "small" legend entry, roughly


class MissingData(Exception):
    """The data a figure needs are not in the results folder; the message says which."""


def setting(frame: pd.DataFrame) -> pd.Series:
    """A label for the measurement setting of each row (machine, scenario, batch, threads)."""
    parts = frame["machine"].astype(str)
    for col, fmt in (("scenario", "{}"), ("batch_size", "batch {}"), ("threads", "{} threads")):
        if col in frame:
            parts = parts + " · " + frame[col].map(fmt.format)
    return parts


def grid(panels: list[str], width: float = 3.8, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    """A figure with one titled panel per entry of ``panels``, at most four per row."""
    ncols = min(len(panels), _MAX_COLS)
    nrows = math.ceil(len(panels) / ncols)
    size = (max(width * ncols, _MIN_WIDTH), height * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[len(panels) :]:
        ax.remove()
    for ax, title in zip(flat, panels):
        ax.set_title(title)
    return fig, flat[: len(panels)]


def bars(
    ax: Axes,
    frame: pd.DataFrame,
    x: str,
    hue: str,
    hue_order: list[str],
    colours: dict,
    order: list[str] | None = None,
) -> None:
    """Grouped bars of ``throughput`` with ``ci_low``/``ci_high`` error bars.

    ``order`` fixes the x categories (default: sorted); categories absent from ``frame`` are
    left out.
    """
    present = set(frame[x].unique())
    order = [v for v in (order or sorted(present)) if v in present]
    width = 0.8 / max(len(hue_order), 1)
    for j, level in enumerate(hue_order):
        sel = frame[frame[hue] == level].set_index(x)
        xs = [i for i, v in enumerate(order) if v in sel.index]
        if not xs:
            continue
        rows = sel.loc[[order[i] for i in xs]]
        pos = np.array(xs) - 0.4 + width * (j + 0.5)
        err = np.vstack([rows["throughput"] - rows["ci_low"], rows["ci_high"] - rows["throughput"]])
        err = np.nan_to_num(err)  # a single trial has no interval: no error bar
        ax.bar(pos, rows["throughput"], width, color=colours[level], label=level)
        ax.errorbar(pos, rows["throughput"], yerr=err, fmt="none", ecolor="black", capsize=2, lw=1)
    long = max((len(str(v)) for v in order), default=0) > 12
    ax.set_xticks(
        range(len(order)), order, rotation=35 if long else 0, ha="right" if long else "center"
    )


def figure_legend(fig: Figure, axes: list[Axes], title: str) -> None:
    """One legend for all panels, below them (never over the data)."""
    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes[1:]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    longest = max((len(label) for label in seen), default=1)
    fits = int(fig.get_figwidth() / (_CHAR_INCHES * longest + 0.6))
    fig.legend(
        list(seen.values()),
        list(seen),
        title=title,
        loc="outside lower center",
        ncol=max(1, min(len(seen), 4, fits)),
        fontsize="small",
    )


def suptitle(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to the figure's width."""
    fig.suptitle("\n".join(textwrap.wrap(text, width=int(fig.get_figwidth() * 9))))
