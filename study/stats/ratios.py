"""Throughput ratios (engine a vs engine b, pruned vs dense) with Welch and Mann-Whitney tests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.stats

from study.stats._frame import (
    check_confidence,
    check_frame,
    failed_trials,
    failure_note,
    group_index,
    ok_trials,
    positive_array,
    unique_keys,
)

__all__ = ["RatioResult", "throughput_ratio", "holm", "engine_comparison", "pruning_speedup"]

# Settings that must match for two engines to be compared (precision is fixed by the caller).
_ENGINE_KEYS = [
    "machine",
    "model",
    "pruner",
    "exporter",
    "sparsity",
    "precision",
    "scenario",
    "batch_size",
    "threads",
]
# The Holm family of engine_comparison: the models compared under the same machine and settings.
_HOLM_FAMILY = [k for k in _ENGINE_KEYS if k != "model"]
# Settings a pruned cell shares with its dense reference.
_DENSE_KEYS = ["machine", "engine", "model", "precision", "scenario", "batch_size", "threads"]


@dataclass(frozen=True)
class RatioResult:
    """Ratio of geometric-mean throughputs a / b with its Welch CI and two tests of a = b."""

    estimate: float  # exp(mean log a - mean log b)
    ci_low: float  # lower CI bound of the ratio (Welch t on log throughput); NaN if n < 2
    ci_high: float  # upper CI bound of the ratio
    welch_t: float  # Welch t statistic of mean log a - mean log b
    welch_p: float  # its two-sided p-value
    mwu_u: float  # Mann-Whitney U statistic of sample a
    mwu_p: float  # its two-sided p-value
    n_a: int  # trials in a
    n_b: int  # trials in b
    cells_a: tuple[str, ...]  # cell ids the a trials came from
    cells_b: tuple[str, ...]  # cell ids the b trials came from
    welch_dof: float = math.nan  # Welch-Satterthwaite degrees of freedom
    confidence: float = 0.95  # two-sided level of the CI
    note: str = ""  # why a statistic is NaN, when one is


def _nan_ratio(note: str, n_a: int = 0, n_b: int = 0, cells_a=(), cells_b=()) -> RatioResult:
    nan = math.nan
    return RatioResult(nan, nan, nan, nan, nan, nan, nan, n_a, n_b, cells_a, cells_b, note=note)


def throughput_ratio(
    a: Iterable[float],
    b: Iterable[float],
    *,
    confidence: float = 0.95,
    cells_a: Sequence[str] = (),
    cells_b: Sequence[str] = (),
) -> RatioResult:
    """Ratio of the geometric-mean throughputs of two samples of trials.

    With ``x = log a`` and ``y = log b``: ``estimate = exp(mean x - mean y)``. The CI is
    ``exp`` of Welch's interval for ``mean x - mean y``, ``d -/+ t_{1-alpha/2}(nu) *
    sqrt(s_x^2/n_x + s_y^2/n_y)`` with Welch-Satterthwaite ``nu``, taken from
    ``scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)``. The
    Mann-Whitney U test (``scipy.stats.mannwhitneyu``, two-sided) is reported as a
    distribution-free check. Swapping ``a`` and ``b`` inverts the estimate and the interval.

    A sample with a single trial (or two samples without any spread) has no variance: the CI and
    Welch statistics are NaN and ``note`` says so; the estimate and U test are still given.

    Args:
        a: throughputs of the trials of the numerator (items/s, > 0).
        b: throughputs of the denominator.
        confidence: two-sided level of the CI.
        cells_a: cell ids the ``a`` trials came from (carried into the result).
        cells_b: cell ids of ``b``.

    Returns:
        :class:`RatioResult`.

    Raises:
        ValueError: if a sample is empty or holds a throughput that is not finite and > 0.

    Example:
        >>> r = throughput_ratio([110, 112, 108], [100, 101, 99])
        >>> round(r.estimate, 2)
        1.1
    """
    xa, xb = positive_array(a, "a"), positive_array(b, "b")
    confidence = check_confidence(confidence)
    la, lb = np.log(xa), np.log(xb)
    estimate = float(np.exp(la.mean() - lb.mean()))
    nan = math.nan
    welch_t = welch_p = low = high = dof = nan
    note = ""
    if xa.size < 2 or xb.size < 2:
        note = f"single trial (n_a={xa.size}, n_b={xb.size}): variance undefined"
    elif np.ptp(la) == 0.0 and np.ptp(lb) == 0.0:
        note = "no spread in either sample: Welch t undefined"
    else:
        res = scipy.stats.ttest_ind(la, lb, equal_var=False)
        ci = res.confidence_interval(confidence_level=confidence)
        welch_t, welch_p, dof = float(res.statistic), float(res.pvalue), float(res.df)
        low, high = float(np.exp(ci.low)), float(np.exp(ci.high))
    mwu = scipy.stats.mannwhitneyu(xa, xb, alternative="two-sided")
    return RatioResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        welch_t=welch_t,
        welch_p=welch_p,
        mwu_u=float(mwu.statistic),
        mwu_p=float(mwu.pvalue),
        n_a=int(xa.size),
        n_b=int(xb.size),
        cells_a=tuple(cells_a),
        cells_b=tuple(cells_b),
        welch_dof=dof,
        confidence=confidence,
        note=note,
    )


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, as R's ``p.adjust(p, "holm")``.

    With the m non-NaN p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:
    ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``, returned in the input order. NaN
    entries stay NaN and do not count in m (as R drops NA before adjusting).

    Args:
        pvalues: p-values in [0, 1] (NaN allowed).

    Returns:
        Adjusted p-values, same shape and order as the input.

    Raises:
        ValueError: if a p-value is outside [0, 1].

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    valid = ~np.isnan(p)
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError(f"`pvalues` must lie in [0, 1] (or be NaN); got {p[valid].tolist()!r}")
    out = np.full(p.shape, np.nan)
    q = p[valid]
    m = q.size
    if m:
        order = np.argsort(q, kind="stable")
        stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
        adjusted = np.empty(m)
        adjusted[order] = stepped
        out[valid] = adjusted
    return out


def _row(key: dict, result: RatioResult, **extra) -> dict:
    row = dict(key)
    row.update(extra)
    row.update(asdict(result))
    return row


def engine_comparison(
    df: pd.DataFrame,
    engine_a: str,
    engine_b: str,
    *,
    confidence: float = 0.95,
    precision: str = "f32",
) -> pd.DataFrame:
    """Throughput ratio engine_a / engine_b for every model variant and setting, with Holm.

    Rows are matched on ``machine, model, pruner, exporter, sparsity, precision, scenario,
    batch_size, threads``, with ``precision`` fixed (``"f32"``: the fair comparison). Each row is
    :func:`throughput_ratio` of the two engines' ok trials. ``p_holm`` is :func:`holm` of
    ``welch_p`` within each family of comparisons that differ only in ``model`` (one family per
    machine, pruner, exporter, sparsity and setting): the correction across models.

    A setting where an engine has no ok trials (missing or failed) is kept as a row with NaN
    statistics and a ``note`` that gives the failure reasons.

    Args:
        df: TrialRow rows from any number of machines.
        engine_a: numerator engine, e.g. ``"deepsparse"``.
        engine_b: denominator engine, e.g. ``"openvino"``.
        confidence: two-sided level of the CIs.
        precision: the precision both engines must have run at.

    Returns:
        One row per setting: the key columns, ``engine_a, engine_b``, the
        :class:`RatioResult` fields (``estimate, ci_low, ci_high, welch_t, welch_p, mwu_u,
        mwu_p, n_a, n_b, cells_a, cells_b, welch_dof, confidence, note``) and ``p_holm``.

    Raises:
        ValueError: if the engines are equal or not strings, or the frame is invalid.

    Example:
        >>> engine_comparison(trials, "deepsparse", "openvino")  # doctest: +SKIP
    """
    check_frame(df)
    for name, value in (("engine_a", engine_a), ("engine_b", engine_b)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{name}` must be an engine name; got {value!r}")
    if engine_a == engine_b:
        raise ValueError(f"`engine_b` must differ from `engine_a`; got {engine_b!r} for both")
    confidence = check_confidence(confidence)
    rows_in = df.loc[df["engine"].isin([engine_a, engine_b]) & (df["precision"] == precision)]
    ok, failed = ok_trials(rows_in), failed_trials(rows_in)
    ok_by, failed_by = group_index(ok, _ENGINE_KEYS), group_index(failed, _ENGINE_KEYS)
    rows = []
    for key in unique_keys([ok, failed], _ENGINE_KEYS):
        where = dict(zip(_ENGINE_KEYS, key))
        sel_ok, sel_failed = ok_by.get(key, ok.iloc[:0]), failed_by.get(key, failed.iloc[:0])
        parts = {e: sel_ok.loc[sel_ok["engine"] == e] for e in (engine_a, engine_b)}
        missing = [e for e, part in parts.items() if part.empty]
        if missing:
            notes = [failure_note(sel_failed.loc[sel_failed["engine"] == e], e) for e in missing]
            result = _nan_ratio("; ".join(notes), len(parts[engine_a]), len(parts[engine_b]))
        else:
            a, b = parts[engine_a], parts[engine_b]
            result = throughput_ratio(
                a["throughput"],
                b["throughput"],
                confidence=confidence,
                cells_a=tuple(sorted(a["cell"].unique())),
                cells_b=tuple(sorted(b["cell"].unique())),
            )
        rows.append(_row(where, result, engine_a=engine_a, engine_b=engine_b))
    columns = [*_ENGINE_KEYS, "engine_a", "engine_b", *RatioResult.__dataclass_fields__]
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = np.nan
    for _, index in out.groupby(_HOLM_FAMILY, dropna=False).groups.items():
        out.loc[index, "p_holm"] = holm(out.loc[index, "welch_p"].to_numpy(dtype=float))
    return out


def pruning_speedup(df: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Throughput ratio pruned / dense for every pruned variant, engine and setting.

    The dense reference has ``pruner == "none"`` and the same ``machine, engine, model,
    precision, scenario, batch_size, threads``; its exporter is the pruned variant's own when a
    dense model exported that way exists, else ``"torch"``. The ratio and its CI come from
    :func:`throughput_ratio` (geometric means, Welch CI on logs, Mann-Whitney U).

    Variants without a usable dense reference, or without ok trials, are kept with NaN
    statistics and a ``note``.

    Args:
        df: TrialRow rows from any number of machines.
        confidence: two-sided level of the CIs.

    Returns:
        One row per pruned variant and setting: ``machine, engine, model, pruner, exporter,
        sparsity, precision, scenario, batch_size, threads, dense_exporter`` and the
        :class:`RatioResult` fields (``cells_a`` are the pruned cells, ``cells_b`` the dense).

    Raises:
        ValueError: if the frame is invalid or an ok trial has a throughput <= 0.

    Example:
        >>> pruning_speedup(trials).query("engine == 'deepsparse'")  # doctest: +SKIP
    """
    confidence = check_confidence(confidence)
    ok, failed = ok_trials(df), failed_trials(df)
    dense = group_index(ok.loc[ok["pruner"] == "none"], [*_DENSE_KEYS, "exporter"])
    keys = [*_DENSE_KEYS[:3], "pruner", "exporter", "sparsity", *_DENSE_KEYS[3:]]
    pruned_ok = ok.loc[ok["pruner"] != "none"]
    pruned_failed = failed.loc[failed["pruner"] != "none"]
    ok_by, failed_by = group_index(pruned_ok, keys), group_index(pruned_failed, keys)
    rows = []
    for key in unique_keys([pruned_ok, pruned_failed], keys):
        where = dict(zip(keys, key))
        dense_key = tuple(where[k] for k in _DENSE_KEYS)
        own = (*dense_key, where["exporter"])
        dense_exporter = where["exporter"] if own in dense else "torch"
        reference = dense.get((*dense_key, dense_exporter))
        if key not in ok_by:
            result = _nan_ratio(failure_note(failed_by[key], "the pruned cell"))
        elif reference is None:
            note = f"no dense (pruner 'none') trials with exporter {dense_exporter!r}"
            result = _nan_ratio(note, n_a=len(ok_by[key]))
        else:
            pruned = ok_by[key]
            result = throughput_ratio(
                pruned["throughput"],
                reference["throughput"],
                confidence=confidence,
                cells_a=tuple(sorted(pruned["cell"].unique())),
                cells_b=tuple(sorted(reference["cell"].unique())),
            )
        rows.append(_row(where, result, dense_exporter=dense_exporter))
    return pd.DataFrame(rows, columns=[*keys, "dense_exporter", *RatioResult.__dataclass_fields__])
