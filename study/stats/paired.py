"""Round-paired contrasts of log throughput on the blocked design, with an unpaired fallback.

The harness measures every cell of a block once per *round* (``block``, ``round`` columns of
:class:`study.schema.TrialRow`). Machine speed drifts strongly from trial to trial, but within one
round all cells see nearly the same machine, so a contrast formed round by round cancels the
common drift. For weights ``w_c`` over cells (``{a: +1, b: -1}`` for the ratio a / b; ``+1, -1,
-1, +1`` over four cells for the channel ratio B), the per-round value is

    d_r = sum_c w_c * mean_{trials of c in round r} log(throughput)

over the rounds (of one machine and block) in which every weighted cell has an ok trial. The
paired estimate is the one-sample t on the d_r (a paired t test for two cells). Cells that share
no block fall back to the Welch-Satterthwaite contrast of their log-throughput means.

Rows without a block (``block`` empty or missing, ``round`` < 0 or missing: results of schema
version < 3) are never paired.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.stats._frame import check_confidence, check_frame, ok_trials, t_interval
from study.stats.meta import welch_contrast

__all__ = ["ContrastResult", "contrast", "paired_contrast", "round_values"]

METHODS = ("paired", "unpaired")
_ROUND_INDEX = ["machine", "block", "round"]


@dataclass(frozen=True)
class ContrastResult:
    """A weighted sum of mean log throughputs, ``theta = sum_c w_c E[log x_c]``, with its t test.

    Every number is on the log scale: ``exp(estimate)`` is the ratio (e.g. a / b, or B).
    """

    estimate: float  # estimate of theta (mean d_r if paired, sum_c w_c mean log x_c if unpaired)
    se: float  # its standard error; NaN when undefined (see `note`)
    dof: float  # degrees of freedom: R - 1 (paired) or Welch-Satterthwaite (unpaired)
    ci_low: float  # estimate - t_{1-alpha/2}(dof) se, alpha = 1 - confidence
    ci_high: float  # estimate + t_{1-alpha/2}(dof) se
    statistic: float  # t = estimate / se
    pvalue: float  # two-sided p of theta = 0
    method: str  # "paired" (round by round) or "unpaired" (Welch-Satterthwaite)
    n_rounds: int  # complete rounds used (paired); 0 for unpaired
    n_trials: int  # ok trials used
    autocorr: float  # lag-1 autocorrelation of d_r over adjacent rounds (paired); NaN otherwise
    cells: tuple[str, ...]  # cell ids of the trials used
    weights: dict = field(default_factory=dict)  # key -> weight w_c (key: a cell id or a label)
    confidence: float = 0.95  # two-sided level of the CI
    note: str = ""  # why a statistic is NaN, or why the contrast is unpaired


def _check_weights(weights: object) -> dict[Hashable, float]:
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"`weights` must be a non-empty mapping key -> weight; got {weights!r}")
    out = {}
    for k, w in weights.items():
        number = isinstance(w, (int, float, np.number)) and not isinstance(w, bool)
        if not (number and math.isfinite(w) and w != 0):
            raise ValueError(f"`weights[{k!r}]` must be a finite non-zero number; got {w!r}")
        out[k] = float(w)
    return out


def _check_key(df: pd.DataFrame, key: str) -> None:
    if key not in df.columns:
        raise ValueError(f"`key` must be a column of `df`; got {key!r}")


def _round_index(ok: pd.DataFrame) -> tuple[np.ndarray, pd.MultiIndex]:
    """(mask of the rows in a block round, their ``machine, block, round`` index).

    A row is in a block round when ``block`` is a non-empty value and ``round`` >= 0.
    """
    if "block" not in ok.columns or "round" not in ok.columns:
        keep = np.zeros(len(ok), dtype=bool)
    else:
        rounds = pd.to_numeric(ok["round"], errors="coerce").to_numpy(dtype=float)
        blocks = ok["block"]
        keep = (blocks.notna() & (blocks.astype(str) != "")).to_numpy() & (rounds >= 0)
    sel = ok.loc[keep]
    index = pd.MultiIndex.from_arrays(
        [
            sel["machine"].to_numpy(),
            sel["block"].astype(str).to_numpy() if keep.any() else np.array([], dtype=object),
            pd.to_numeric(sel["round"]).to_numpy(dtype=int) if keep.any() else np.array([], int),
        ],
        names=_ROUND_INDEX,
    )
    return keep, index


def _round_table(ok: pd.DataFrame, weights: dict, key: str) -> tuple[pd.Series, pd.DataFrame]:
    """(d_r indexed by machine, block, round; the ok rows of the complete rounds used)."""
    rows = ok.loc[ok[key].isin(list(weights)).to_numpy()]
    keep, index = _round_index(rows)
    sel = rows.loc[keep]
    if sel.empty:
        return pd.Series([], index=index, dtype=float, name="d"), sel
    rounds, uniques = pd.factorize(index, sort=True)  # (n_rows,) index of each row's round
    column = pd.Categorical(sel[key], categories=list(weights)).codes  # (n_rows,) weight index
    shape = (len(uniques), len(weights))
    sums, counts = np.zeros(shape), np.zeros(shape)  # (n_rounds, n_keys)
    np.add.at(sums, (rounds, column), np.log(sel["throughput"].to_numpy(dtype=float)))
    np.add.at(counts, (rounds, column), 1.0)
    complete = (counts > 0).all(axis=1)  # (n_rounds,)
    means = sums[complete] / counts[complete]  # mean log of each key in each complete round
    d = means @ np.array(list(weights.values()))
    index = uniques[complete].set_names(_ROUND_INDEX)
    return pd.Series(d, index=index, name="d"), sel.loc[complete[rounds]]


def round_values(df: pd.DataFrame, weights: Mapping, *, key: str = "cell") -> pd.Series:
    """Per-round values ``d_r = sum_c w_c log x_{c,r}`` of a contrast over complete rounds.

    A round (one ``machine``, ``block``, ``round``) is complete when every weighted key has at
    least one ok trial in it; several ok trials of one key in one round enter as the mean of
    their logs. Incomplete rounds and unblocked rows (see the module docstring) are left out.

    Args:
        df: TrialRow rows (failure rows are dropped).
        weights: ``{key value: w}``, e.g. ``{cell_a: 1, cell_b: -1}``; weights finite, non-zero.
        key: the column the weights are keyed by (``"cell"``, or a label column the caller made
            to pool several cells into one term).

    Returns:
        Series ``d`` indexed by ``machine, block, round`` in that order (chronological within a
        block); empty when no round is complete.

    Raises:
        ValueError: on invalid weights, a missing column or an ok throughput <= 0.

    Example:
        >>> round_values(trials, {"c1": 1, "c2": -1}).mean()  # doctest: +SKIP
    """
    check_frame(df)
    weights = _check_weights(weights)
    _check_key(df, key)
    return _round_table(ok_trials(df), weights, key)[0]


def _lag1(d: pd.Series) -> float:
    """Lag-1 autocorrelation of d over pairs of adjacent rounds of the same machine and block."""
    if len(d) < 3:
        return math.nan
    x = d.to_numpy(dtype=float) - float(d.mean())
    machine, block, rnd = (d.index.get_level_values(n).to_numpy() for n in _ROUND_INDEX)
    adjacent = (machine[1:] == machine[:-1]) & (block[1:] == block[:-1]) & (np.diff(rnd) == 1)
    denom = float(np.sum(x**2))
    if not adjacent.any() or denom == 0:
        return math.nan
    return float(np.sum(x[1:][adjacent] * x[:-1][adjacent]) / denom)


def _paired(d: pd.Series, used: pd.DataFrame, weights: dict, confidence: float) -> ContrastResult:
    r = len(d)
    nan = math.nan
    estimate = float(d.mean()) if r else nan
    se = float(d.std(ddof=1) / math.sqrt(r)) if r >= 2 else nan
    dof = float(r - 1) if r >= 2 else nan
    note = ""
    if r == 0:
        note = "no complete round (every weighted cell measured in one round of one block)"
    elif r == 1:
        note = "a single complete round: variance undefined"
    elif se == 0:
        note = "d_r is constant over the rounds: SE 0"
    return ContrastResult(
        estimate=estimate,
        se=se,
        dof=dof,
        **t_interval(estimate, se, dof, confidence),
        method="paired",
        n_rounds=r,
        n_trials=len(used),
        autocorr=_lag1(d),
        cells=tuple(sorted(used["cell"].astype(str).unique())),
        weights=dict(weights),
        confidence=confidence,
        note=note,
    )


def paired_contrast(
    df: pd.DataFrame, weights: Mapping, *, confidence: float = 0.95, key: str = "cell"
) -> ContrastResult:
    """Round-paired contrast: one-sample t on the per-round values d_r of :func:`round_values`.

    ``estimate = mean(d_r)``, ``se = sd(d_r, ddof=1) / sqrt(R)``, ``dof = R - 1``, CI
    ``estimate -/+ t_{1-alpha/2}(R - 1) se`` and the two-sided t test of theta = 0; for two cells
    with weights +1, -1 this is ``scipy.stats.ttest_rel`` on the rounds' mean logs. The lag-1
    autocorrelation of d_r is reported as a diagnostic: the t interval assumes the d_r are
    independent, which a common drift no longer violates once it has cancelled. Fewer than two
    complete rounds give NaN statistics and a ``note``.

    Args:
        df: TrialRow rows.
        weights: ``{key value: w}`` (see :func:`round_values`).
        confidence: two-sided CI level in (0, 1).
        key: the column the weights are keyed by.

    Returns:
        :class:`ContrastResult` with ``method == "paired"``.

    Raises:
        ValueError: on invalid weights or confidence, a missing column or a throughput <= 0.

    Example:
        >>> r = paired_contrast(trials, {"c1": 1, "c2": -1})  # doctest: +SKIP
        >>> math.exp(r.estimate)  # ratio c1 / c2  # doctest: +SKIP
    """
    check_frame(df)
    weights = _check_weights(weights)
    _check_key(df, key)
    confidence = check_confidence(confidence)
    d, used = _round_table(ok_trials(df), weights, key)
    return _paired(d, used, weights, confidence)


def _unpaired(ok: pd.DataFrame, weights: dict, key: str, confidence: float, why: str):
    nan = math.nan
    rows = ok.loc[ok[key].isin(list(weights)), list(dict.fromkeys([key, "throughput", "cell"]))]
    logs = dict(tuple(rows.groupby(key, sort=False)["throughput"]))
    missing = [str(k) for k in weights if k not in logs]
    cells = tuple(sorted(rows["cell"].astype(str).unique()))
    n_trials = len(rows)
    if missing:
        note = f"no ok trials for {', '.join(missing)}"
        estimate = se = dof = nan
    else:
        samples = [np.log(logs[k].to_numpy(dtype=float)) for k in weights]
        c = welch_contrast(samples, list(weights.values()))
        estimate, se, dof = c.estimate, c.se, c.dof
        note = why
        if not math.isfinite(se):
            note += "; a cell has a single trial: variance undefined"
        elif not math.isfinite(dof):
            note += "; no spread in any cell: Welch dof undefined"
    return ContrastResult(
        estimate=estimate,
        se=se,
        dof=dof,
        **t_interval(estimate, se, dof, confidence),
        method="unpaired",
        n_rounds=0,
        n_trials=n_trials,
        autocorr=nan,
        cells=cells,
        weights=dict(weights),
        confidence=confidence,
        note=note,
    )


def contrast(
    df: pd.DataFrame,
    weights: Mapping,
    *,
    confidence: float = 0.95,
    key: str = "cell",
    min_rounds: int = 2,
) -> ContrastResult:
    """Paired contrast where the design allows it, else the unpaired Welch-Satterthwaite one.

    Paired (:func:`paired_contrast`) when the weighted keys have at least ``min_rounds``
    complete rounds in common blocks; trials outside those rounds are then not used. Otherwise
    unpaired: ``sum_c w_c mean(log x_c)`` over all ok trials of each key, with
    ``se^2 = sum_c w_c^2 s_c^2 / n_c`` and Welch-Satterthwaite dof
    (:func:`study.stats.meta.welch_contrast`); ``note`` says why it is unpaired. A key without
    ok trials, or a single trial, gives NaN statistics and a ``note``; it does not raise.

    Args:
        df: TrialRow rows.
        weights: ``{key value: w}`` (see :func:`round_values`).
        confidence: two-sided CI level in (0, 1).
        key: the column the weights are keyed by.
        min_rounds: complete rounds needed to pair (>= 2: a variance needs two).

    Returns:
        :class:`ContrastResult`; ``method`` says which estimator was used.

    Raises:
        ValueError: on invalid arguments, a missing column or a throughput <= 0.

    Example:
        >>> r = contrast(trials, {"c1": 1, "c2": -1, "c3": -1, "c4": 1})  # doctest: +SKIP
        >>> r.method, math.exp(r.estimate)  # doctest: +SKIP
    """
    check_frame(df)
    weights = _check_weights(weights)
    _check_key(df, key)
    confidence = check_confidence(confidence)
    if not (isinstance(min_rounds, (int, np.integer)) and min_rounds >= 2):
        raise ValueError(f"`min_rounds` must be an integer >= 2; got {min_rounds!r}")
    ok = ok_trials(df)
    d, used = _round_table(ok, weights, key)
    if len(d) >= min_rounds:
        return _paired(d, used, weights, confidence)
    why = (
        "unpaired: the cells share no block"
        if len(d) == 0
        else f"unpaired: only {len(d)} complete round(s) in a common block (< {min_rounds})"
    )
    return _unpaired(ok, weights, key, confidence, why)
