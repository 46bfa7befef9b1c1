"""Round-paired contrasts of log throughput on the blocked design, with an unpaired fallback.

The harness measures every cell of a block once per *round* (``block``, ``round`` columns of
:class:`study.records.schema.TrialRow`), in each *replicate* of the block (fresh worker processes).
Machine speed drifts strongly from trial to trial, but within one round all cells see nearly the
same machine, so a contrast formed round by round cancels the common drift. For weights ``w_c`` over cells (``{a: +1, b: -1}`` for the ratio a / b; ``+1, -1,
-1, +1`` over four cells for the channel ratio B), the per-round value is

    d_r = sum_c w_c * mean_{trials of c in round r} log(throughput)

over the rounds in which every weighted cell has an ok trial. A round is keyed by ``machine,
run_id, replicate, block, round``: rounds of two runs, or of two replicates, are never averaged
as one round. Within one replicate the paired estimate is the mean of its d_r; with a single
replicate in the data the CI is the one-sample t on the d_r (a paired t test for two cells), whose
degrees of freedom come from rounds alone. With several replicates, runs or machines,
:func:`contrast` combines the replicates' estimates with the degrees of freedom of the top
replicated level (:mod:`study.stats.levels`). Cells that share no block fall back to the
Welch-Satterthwaite contrast of their log-throughput means (within each replicate, when there
are several).

Rows without a block (``block`` empty or missing, ``round`` < 0 or missing: results of schema
version < 3) are never paired.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from study.stats._frame import check_confidence, check_frame, ok_trials, t_interval
from study.stats._rounds import ROUND_INDEX as _ROUND_INDEX
from study.stats._rounds import UNIT as _UNIT
from study.stats._rounds import replicate_keys as _keys
from study.stats._rounds import round_table as _round_table
from study.stats._rounds import unit_arrays as _unit_arrays
from study.stats._rounds import unit_estimates as _unit_estimates
from study.stats.defaults import CONFIDENCE
from study.stats.levels import nested_estimate
from study.stats.meta import welch_contrast

__all__ = ["ContrastResult", "contrast", "paired_contrast", "round_values"]

METHODS = ("paired", "unpaired", "mixed")
# The note of an estimate whose CI takes its degrees of freedom from rounds (or trials) alone.
ROUNDS_ONLY = "paired-rounds: 1 replicate, the CI ignores process and run variance"
ONE_REPLICATE = "1 replicate: the CI ignores process and run variance"


@dataclass(frozen=True)
class ContrastResult:
    """A weighted sum of mean log throughputs, ``theta = sum_c w_c E[log x_c]``, with its t test.

    Every number is on the log scale: ``exp(estimate)`` is the ratio (e.g. a / b, or B).
    """

    estimate: float  # estimate of theta (mean d_r if paired, sum_c w_c mean log x_c if unpaired)
    se: float  # its standard error; NaN when undefined (see `note`)
    dof: float  # R - 1 (level "round"), Welch-Satterthwaite ("trial"), or units - 1 of `level`
    ci_low: float  # estimate - t_{1-alpha/2}(dof) se, alpha = 1 - confidence
    ci_high: float  # estimate + t_{1-alpha/2}(dof) se
    statistic: float  # t = estimate / se
    pvalue: float  # two-sided p of theta = 0
    method: str  # "paired" (round by round), "unpaired" (Welch-Satterthwaite) or "mixed" (by
    #              replicate: paired where the replicate has complete rounds, else unpaired)
    n_rounds: int  # complete rounds used (paired); 0 for unpaired
    n_trials: int  # ok trials used
    autocorr: float  # lag-1 autocorrelation of d_r over adjacent rounds (paired); NaN otherwise
    cells: tuple[str, ...]  # cell ids of the trials used
    weights: dict = field(default_factory=dict)  # key -> weight w_c (key: a cell id or a label)
    confidence: float = CONFIDENCE  # two-sided level of the CI
    note: str = ""  # why a statistic is NaN, or why the contrast is unpaired
    n_replicates: int = 1  # replicates (one set of worker processes each) the estimate rests on
    n_runs: int = 1  # runs (machine, run_id) the estimate rests on
    level: str = "round"  # where the dof come from: "round" (paired, one replicate), "trial"
    #                       (unpaired, one replicate), "replicate", "run" or "machine"
    components: dict = field(default_factory=dict)  # K&J variance components of d_r (replicated)


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


def round_values(df: pd.DataFrame, weights: Mapping, *, key: str = "cell") -> pd.Series:
    """Per-round values ``d_r = sum_c w_c log x_{c,r}`` of a contrast over complete rounds.

    A round (one ``machine``, ``run_id``, ``replicate``, ``block``, ``round``) is complete when
    every weighted key has at least one ok trial in it; several ok trials of one key in one round enter as the mean of
    their logs. Incomplete rounds and unblocked rows (see the module docstring) are left out.

    Args:
        df: TrialRow rows (failure rows are dropped).
        weights: ``{key value: w}``, e.g. ``{cell_a: 1, cell_b: -1}``; weights finite, non-zero.
        key: the column the weights are keyed by (``"cell"``, or a label column the caller made
            to pool several cells into one term).

    Returns:
        Series ``d`` indexed by ``machine, run_id, replicate, block, round`` in that order
        (chronological within a block); empty when no round is complete. Rows without a
        ``run_id`` or ``replicate`` column count as run ``""``, replicate 0.

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
    """Lag-1 autocorrelation of d over pairs of adjacent rounds of the same block and replicate."""
    if len(d) < 3:
        return math.nan
    x = (d - d.groupby(level=_UNIT, sort=False).transform("mean")).to_numpy(dtype=float)
    *groups, rnd = (d.index.get_level_values(n).to_numpy() for n in _ROUND_INDEX)
    adjacent = np.diff(rnd) == 1
    for g in groups:
        adjacent &= g[1:] == g[:-1]
    denom = float(np.sum(x**2))
    if not adjacent.any() or denom == 0:
        return math.nan
    return float(np.sum(x[1:][adjacent] * x[:-1][adjacent]) / denom)


def _n_units(d: pd.Series) -> int:
    """Distinct (machine, run_id, replicate) among the index of d."""
    return len(d.index.droplevel(["block", "round"]).unique()) if len(d) else 0


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
    units = _n_units(d)
    rounds_only = (
        ROUNDS_ONLY
        if units <= 1
        else f"paired-rounds over {units} replicates: dof from rounds alone, the CI ignores "
        "process and run variance (contrast() combines replicates)"
    )
    note = "; ".join(n for n in (note, rounds_only) if n)
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
        n_replicates=units,
        n_runs=len(d.index.droplevel(["replicate", "block", "round"]).unique()) if r else 0,
        level="round",
    )


def paired_contrast(
    df: pd.DataFrame, weights: Mapping, *, confidence: float = CONFIDENCE, key: str = "cell"
) -> ContrastResult:
    """Round-paired contrast: one-sample t on the per-round values d_r of :func:`round_values`.

    ``estimate = mean(d_r)``, ``se = sd(d_r, ddof=1) / sqrt(R)``, ``dof = R - 1``, CI
    ``estimate -/+ t_{1-alpha/2}(R - 1) se`` and the two-sided t test of theta = 0; for two cells
    with weights +1, -1 this is ``scipy.stats.ttest_rel`` on the rounds' mean logs. The lag-1
    autocorrelation of d_r is reported as a diagnostic: the t interval assumes the d_r are
    independent, which a common drift no longer violates once it has cancelled. Fewer than two
    complete rounds give NaN statistics and a ``note``.

    This is the round-only estimator (``level == "round"``): its degrees of freedom come from
    rounds, so it describes the worker processes that were measured, not the engines. On data
    with several replicates or runs it still pools all their rounds (each keyed apart) and says so
    in ``note``; :func:`contrast` is the estimator to report there.

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
        level="trial",
    )


def _combined(ok, d, used, weights, key, confidence, min_rounds, design) -> ContrastResult:
    """The contrast over several replicates, runs or machines (see :mod:`study.stats.levels`)."""
    units, used = _unit_estimates(ok, d, used, weights, key, min_rounds)
    paired = units["paired"].to_numpy(dtype=bool)
    replicates = _keys(*(units.loc[paired, c].to_numpy() for c in _UNIT))
    d_used = d[np.isin(_keys(*(d.index.get_level_values(c) for c in _UNIT)), replicates)]
    e = nested_estimate(units, d=d_used if paired.all() else None, confidence=confidence)
    method = "paired" if paired.all() else ("unpaired" if not paired.any() else "mixed")
    notes = [e.note] if e.note else []
    lost = sorted(design - set(units[_UNIT].itertuples(index=False, name=None)))
    if lost:
        shown = ", ".join("/".join(map(str, u)) for u in lost[:4]) + (" ..." * (len(lost) > 4))
        notes.append(f"rests on {len(units)} of {len(design)} replicates (none from {shown})")
    estimate = e.estimate
    if units.empty:
        estimate = _unpaired(ok, weights, key, confidence, "").estimate
        notes.append("the keys never share a replicate: estimate over all trials, no CI")
    elif e.level:
        notes.append(f"t over {e.n_units} {e.level}s")
    return ContrastResult(
        estimate=estimate, se=e.se, dof=e.dof, **t_interval(estimate, e.se, e.dof, confidence),
        method=method, n_rounds=int(units["n_rounds"].sum()), n_trials=len(used),
        autocorr=_lag1(d_used), cells=tuple(sorted(used["cell"].astype(str).unique())),
        weights=dict(weights), confidence=confidence, note="; ".join(notes),
        n_replicates=e.n_replicates, n_runs=e.n_runs, level=e.level or "replicate",
        components=e.components,
    )  # fmt: skip


def contrast(
    df: pd.DataFrame,
    weights: Mapping,
    *,
    confidence: float = CONFIDENCE,
    key: str = "cell",
    min_rounds: int = 2,
) -> ContrastResult:
    """The study's contrast estimator: across replicates where there are several, else paired.

    Several replicates (``machine, run_id, replicate`` units among the rows of the weighted
    keys, ok or failed): each replicate's estimate is the mean of its d_r when it has at least
    ``min_rounds`` complete rounds (paired: drift cancels), else the contrast of its cells' mean
    logs; the estimates are combined by :func:`study.stats.levels.nested_estimate` with the
    degrees of freedom of the top replicated level (replicates of one run: k - 1; runs of one
    machine: runs - 1; machines: machines - 1), ``level`` saying which. A replicate where a cell
    crashed contributes nothing; ``n_replicates`` counts those used and ``note`` names the rest.
    With fewer than two usable replicates the SE and CI are NaN: the rounds alone cannot give a
    CI for data that were replicated.

    One replicate (today's data): paired (:func:`paired_contrast`, ``level == "round"``) when
    the weighted keys have at least ``min_rounds`` complete rounds in common blocks; trials
    outside those rounds are then not used. Otherwise unpaired (``level == "trial"``): ``sum_c
    w_c mean(log x_c)`` over all ok trials of each key, with ``se^2 = sum_c w_c^2 s_c^2 / n_c``
    and Welch-Satterthwaite dof (:func:`study.stats.meta.welch_contrast`). Both say in ``note``
    that they ignore process and run variance (:data:`ROUNDS_ONLY`, :data:`ONE_REPLICATE`). A key without ok trials,
    or a single trial, gives NaN statistics and a ``note``; it does not raise.

    Args:
        df: TrialRow rows.
        weights: ``{key value: w}`` (see :func:`round_values`).
        confidence: two-sided CI level in (0, 1).
        key: the column the weights are keyed by.
        min_rounds: complete rounds needed to pair (>= 2: a variance needs two).

    Returns:
        :class:`ContrastResult`; ``method`` says which estimator was used inside a replicate and
        ``level`` where the degrees of freedom come from.

    Raises:
        ValueError: on invalid arguments, a missing column or a throughput <= 0.

    Example:
        >>> r = contrast(trials, {"c1": 1, "c2": -1, "c3": -1, "c4": 1})  # doctest: +SKIP
        >>> r.level, r.n_replicates, math.exp(r.estimate)  # doctest: +SKIP
    """
    check_frame(df)
    weights = _check_weights(weights)
    _check_key(df, key)
    confidence = check_confidence(confidence)
    if not (isinstance(min_rounds, (int, np.integer)) and min_rounds >= 2):
        raise ValueError(f"`min_rounds` must be an integer >= 2; got {min_rounds!r}")
    ok = ok_trials(df)
    d, used = _round_table(ok, weights, key)
    mine = df.loc[df[key].isin(list(weights)).to_numpy()]
    design = set(zip(*_unit_arrays(mine))) if len(mine) else set()
    if len(design) > 1:
        return _combined(ok, d, used, weights, key, confidence, min_rounds, design)
    if len(d) >= min_rounds:
        return _paired(d, used, weights, confidence)
    why = (
        "unpaired: the cells share no block"
        if len(d) == 0
        else f"unpaired: only {len(d)} complete round(s) in a common block (< {min_rounds})"
    )
    result = _unpaired(ok, weights, key, confidence, why)
    return replace(
        result, note=f"{result.note}; {ROUNDS_ONLY.replace('paired-rounds', 'unpaired')}"
    )
