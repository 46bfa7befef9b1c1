"""Throughput ratios (engine a vs engine b, pruned vs dense): round-paired where the design allows.

The tables' ``estimate, ci_low, ci_high, t, dof, pvalue`` come from
:func:`study.stats.paired.contrast` (``method`` says paired or unpaired); the Welch and
Mann-Whitney columns of :func:`throughput_ratio` over all ok trials are kept beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.stats

from study.stats._frame import (
    CELL_COLUMNS,
    check_confidence,
    check_frame,
    failed_trials,
    failure_note,
    group_index,
    ok_trials,
    positive_array,
    unique_keys,
)
from study.stats.defaults import CONFIDENCE
from study.stats.multiplicity import holm
from study.stats.paired import ContrastResult, contrast

__all__ = ["RatioResult", "engine_comparison", "pruning_speedup", "throughput_ratio"]

# Settings that must match for two engines to be compared (precision is fixed by the caller).
_ENGINE_KEYS = [c for c in CELL_COLUMNS if c != "engine"]
# The Holm family of engine_comparison: the models compared under the same machine and settings.
_HOLM_FAMILY = [k for k in _ENGINE_KEYS if k != "model"]
# Settings a pruned cell shares with its dense reference.
_DENSE_KEYS = [
    "machine",
    "engine",
    "model",
    "precision",
    "scenario",
    "batch_size",
    "threads",
    "isa",
]
# A pruned variant's identity beyond _DENSE_KEYS.
_VARIANT_KEYS = ["pruner", "profile", "mask", "quant", "exporter", "sparsity"]
# Columns the tables add to the RatioResult fields: the contrast actually used for the estimate.
_CONTRAST_COLUMNS = ["method", "n_rounds", "t", "dof", "pvalue", "n_replicates", "n_runs", "level"]


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
    confidence: float = CONFIDENCE  # two-sided level of the CI
    note: str = ""  # why a statistic is NaN, when one is


def _nan_ratio(note: str, n_a: int = 0, n_b: int = 0, cells_a=(), cells_b=()) -> RatioResult:
    nan = math.nan
    return RatioResult(nan, nan, nan, nan, nan, nan, nan, n_a, n_b, cells_a, cells_b, note=note)


def throughput_ratio(
    a: Iterable[float],
    b: Iterable[float],
    *,
    confidence: float = CONFIDENCE,
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


def _row(key: dict, result: RatioResult, c: ContrastResult | None, **extra) -> dict:
    """A table row: the RatioResult fields, the estimate and CI overridden by the contrast's."""
    row = dict(key)
    row.update(extra)
    row.update(asdict(result))
    if c is None:
        row.update(method="", n_rounds=0, t=math.nan, dof=math.nan, pvalue=math.nan)
        row.update(n_replicates=0, n_runs=0, level="")
        return row
    row.update(
        estimate=math.exp(c.estimate),
        ci_low=math.exp(c.ci_low),
        ci_high=math.exp(c.ci_high),
        method=c.method,
        n_rounds=c.n_rounds,
        t=c.statistic,
        dof=c.dof,
        pvalue=c.pvalue,
        n_replicates=c.n_replicates,
        n_runs=c.n_runs,
        level=c.level,
    )
    if c.note and (c.method != "unpaired" or c.level != "trial"):
        row["note"] = "; ".join(n for n in (result.note, c.note) if n)
    return row


def _ratio(
    a: pd.DataFrame, b: pd.DataFrame, confidence: float
) -> tuple[RatioResult, ContrastResult]:
    """Welch/MWU over all trials of a and b, and the (paired where possible) contrast a - b."""
    result = throughput_ratio(
        a["throughput"],
        b["throughput"],
        confidence=confidence,
        cells_a=tuple(sorted(a["cell"].unique())),
        cells_b=tuple(sorted(b["cell"].unique())),
    )
    both = pd.concat([a.assign(_side="a"), b.assign(_side="b")], ignore_index=True)
    return result, contrast(both, {"a": 1.0, "b": -1.0}, confidence=confidence, key="_side")


def engine_comparison(
    df: pd.DataFrame,
    engine_a: str,
    engine_b: str,
    *,
    confidence: float = CONFIDENCE,
    precision: str = "f32",
) -> pd.DataFrame:
    """Throughput ratio engine_a / engine_b for every model variant and setting, with Holm.

    Rows are matched on ``machine, model, pruner, profile, mask, quant, exporter, sparsity,
    precision, scenario, batch_size, threads``, with ``precision`` fixed (``"f32"``: the fair
    comparison). ``estimate, ci_low, ci_high, t, dof, pvalue`` are
    :func:`study.stats.paired.contrast` of log throughput with weights +1 (engine_a), -1
    (engine_b): round by round (``method == "paired"``, ``n_rounds`` rounds) when both engines'
    cells were measured in a common block, else Welch-Satterthwaite on all trials
    (``"unpaired"``); with several replicates or runs, per replicate and combined with the
    degrees of freedom of the top replicated level (``level``, ``n_replicates``, ``n_runs``).
    The :func:`throughput_ratio` columns ``welch_t, welch_p, welch_dof, mwu_u, mwu_p`` are
    always the unpaired tests over all ok trials. ``p_holm`` is :func:`holm`
    of ``pvalue`` within each family of comparisons that differ only in ``model``.

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
        mwu_p, n_a, n_b, cells_a, cells_b, welch_dof, confidence, note``), ``method, n_rounds,
        t, dof, pvalue, n_replicates, n_runs, level`` and ``p_holm``.

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
            c = None
        else:
            result, c = _ratio(parts[engine_a], parts[engine_b], confidence)
        rows.append(_row(where, result, c, engine_a=engine_a, engine_b=engine_b))
    fields = list(RatioResult.__dataclass_fields__)
    columns = [*_ENGINE_KEYS, "engine_a", "engine_b", *fields, *_CONTRAST_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = np.nan
    for _, index in out.groupby(_HOLM_FAMILY, dropna=False).groups.items():
        out.loc[index, "p_holm"] = holm(out.loc[index, "pvalue"].to_numpy(dtype=float))
    return out


def _dense_candidates(exporter: str, quant: str) -> list[tuple[str, str]]:
    """(exporter, quant) of the dense references to try, best first."""
    order = [(exporter, quant), (exporter, "none"), ("torch", quant), ("torch", "none")]
    return list(dict.fromkeys(order))


def pruning_speedup(df: pd.DataFrame, *, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Throughput ratio pruned / dense for every pruned variant, engine and setting.

    A pruned variant is a file with ``pruner != "none"`` (any profile, mask, quant). Its dense
    reference has ``pruner == "none"`` and the same ``machine, engine, model, precision,
    scenario, batch_size, threads``; of the dense files present, the first of: the variant's own
    exporter and quantizer; for an int8 variant, its own exporter in fp32 (``quant == "none"``);
    the torch exporter with the variant's quantizer; the torch exporter in fp32.
    ``dense_exporter`` and ``dense_quant`` say which was used (``dense_quant == "none"`` on an
    int8 row: the ratio is the speed-up of pruning and quantization together).
    ``estimate, ci_low, ci_high, t, dof, pvalue`` are :func:`study.stats.paired.contrast` of
    log throughput (pruned +1, dense -1): round by round when both were measured in a common
    block (``method == "paired"``), else Welch-Satterthwaite; the Welch and Mann-Whitney
    columns are the unpaired tests over all ok trials (see :func:`throughput_ratio`).

    Variants without a usable dense reference, or without ok trials, are kept with NaN
    statistics and a ``note``.

    Args:
        df: TrialRow rows from any number of machines.
        confidence: two-sided level of the CIs.

    Returns:
        One row per pruned variant and setting: ``machine, engine, model, pruner, profile, mask,
        quant, exporter, sparsity, precision, scenario, batch_size, threads, dense_exporter,
        dense_quant``, the :class:`RatioResult` fields (``cells_a`` are the pruned cells,
        ``cells_b`` the dense) and ``method, n_rounds, t, dof, pvalue, n_replicates, n_runs,
        level``.

    Raises:
        ValueError: if the frame is invalid or an ok trial has a throughput <= 0.

    Example:
        >>> pruning_speedup(trials).query("engine == 'deepsparse'")  # doctest: +SKIP
    """
    confidence = check_confidence(confidence)
    ok, failed = ok_trials(df), failed_trials(df)
    dense = group_index(ok.loc[ok["pruner"] == "none"], [*_DENSE_KEYS, "exporter", "quant"])
    keys = [*_DENSE_KEYS[:3], *_VARIANT_KEYS, *_DENSE_KEYS[3:]]
    pruned_ok = ok.loc[ok["pruner"] != "none"]
    pruned_failed = failed.loc[failed["pruner"] != "none"]
    ok_by, failed_by = group_index(pruned_ok, keys), group_index(pruned_failed, keys)
    rows = []
    for key in unique_keys([pruned_ok, pruned_failed], keys):
        where = dict(zip(keys, key))
        dense_key = tuple(where[k] for k in _DENSE_KEYS)
        candidates = _dense_candidates(where["exporter"], where["quant"])
        found = [c for c in candidates if (*dense_key, *c) in dense]
        dense_exporter, dense_quant = found[0] if found else candidates[-1]
        c = None
        if key not in ok_by:
            result = _nan_ratio(failure_note(failed_by[key], "the pruned cell"))
        elif not found:
            tried = ", ".join(f"exporter {e!r} quant {q!r}" for e, q in candidates)
            note = f"no dense (pruner 'none') trials with {tried}"
            result = _nan_ratio(note, n_a=len(ok_by[key]))
        else:
            reference = dense[(*dense_key, dense_exporter, dense_quant)]
            result, c = _ratio(ok_by[key], reference, confidence)
        rows.append(_row(where, result, c, dense_exporter=dense_exporter, dense_quant=dense_quant))
    fields = list(RatioResult.__dataclass_fields__)
    columns = [*keys, "dense_exporter", "dense_quant", *fields, *_CONTRAST_COLUMNS]
    return pd.DataFrame(rows, columns=columns)
