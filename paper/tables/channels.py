"""The channel tables: B per channel and engine pair, pooled over architectures and per architecture.

Numbers are :func:`study.analysis.summary.channel_results`' (those of summary.md and stats.json), written
the way summary.md writes them: ``B [95% CI]`` to three decimals, p-values to three significant
digits, the minimum detectable effect (MDE) as a percentage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from paper.tables.render import Table
from study.stats import MARGIN, ChannelResult

__all__ = ["b_ci", "channel_table", "context_columns", "pair"]

# Context a ChannelResult carries beyond channel, model and engines; a column only when it varies.
_CONTEXT = ("machine", "precision", "scenario", "batch_size", "threads")


def b_ci(r: ChannelResult) -> str:
    """``"1.031 [0.998, 1.065]"`` (summary.md's form), or "not estimable".

    Example:
        >>> b_ci(result)  # doctest: +SKIP
        '1.031 [0.998, 1.065]'
    """
    if not math.isfinite(r.estimate):
        return "not estimable"
    return f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"


def pair(r: ChannelResult) -> str:
    """The engine pair as ``numerator/denominator``."""
    return f"{r.numerator}/{r.denominator}"


def context_columns(results: Sequence[ChannelResult]) -> list[str]:
    """The context fields that differ between the results (machine, precision, setting)."""
    return [c for c in _CONTEXT if len({getattr(r, c) for r in results}) > 1]


def channel_table(results: Sequence[ChannelResult], *, pooled: bool) -> Table:
    """B per channel and engine pair with its tests: the pooled rows or the per-architecture rows.

    Columns: the channel, (per architecture) the model, the engine pair, ``B [95% CI]``, the
    two-sided p of B = 1, (pooled) its Holm-adjusted p across every pooled B, the TOST p at the
    declared margin, the one-sided p of B >= 1 + margin, the MDE (80% power), (pooled) the
    number of architectures k and the pool used, the estimator (paired or the labelled unpaired
    fallback) and the rounds it used; (per architecture) the note. Context columns (machine,
    precision, setting) appear only where they vary.

    Args:
        results: ``study.analysis.summary.channel_results`` output (pooled and per-architecture rows).
        pooled: the pooled rows (True) or the per-architecture rows (False).

    Returns:
        The table, rows in the order given (the A/A control first).
    """
    rows_in = [r for r in results if (r.model == "pooled") == pooled]
    margin = rows_in[0].margin if rows_in else MARGIN
    extra = context_columns(rows_in)
    rows = []
    for r in rows_in:
        row = {c: getattr(r, c) for c in extra} | {"channel": r.channel}
        if not pooled:
            row["model"] = r.model
        row |= {"engines": pair(r), "B [95% CI]": b_ci(r), "p (B = 1)": r.pvalue}
        if pooled:
            row["Holm p"] = r.p_holm
        row |= {f"TOST ±{margin:.0%} p": r.tost.pvalue, f"p (B ≥ {1 + margin:g})": r.gap_pvalue}
        row["MDE"] = r.mde
        if pooled:
            row |= {"k": r.k, "pool": r.pool}
        row |= {"method": r.method or "–", "rounds": r.n_rounds}
        if not pooled:
            row["note"] = r.note[:120]
        rows.append(row)
    frame = pd.DataFrame(rows)
    fmt = {c: "{:.3g}" for c in frame.columns if c.startswith("p (") or c.endswith(" p")}
    fmt["MDE"] = "{:.1%}"
    if pooled:
        name = "table_channels"
        caption = (
            "B per channel and engine pair, pooled over architectures: B = (N/D throughput on the "
            "variant) / (N/D on the reference), 95% CI, the test of B = 1 and its Holm-adjusted "
            f"p, TOST at ±{margin:.0%}, the one-sided test of B ≥ {1 + margin:g}, the minimum "
            "detectable effect (80% power), the architectures pooled (k) and the estimator."
        )
    else:
        name = "table_channels_by_architecture"
        caption = (
            "B per channel, engine pair and architecture, with the same tests as the pooled table "
            "(round-paired within each architecture's block)."
        )
    return Table(name, caption, frame, fmt)
