"""Confidence intervals of one sample (t on log throughput; BCa bootstrap) and the cell table."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from study.stats._frame import (
    CELL_COLUMNS,
    LATENCY_COLUMNS,
    check_confidence,
    failed_trials,
    finite_array,
    ok_trials,
    positive_array,
)
from study.stats.defaults import CONFIDENCE
from study.stats.paired import contrast

__all__ = ["CI", "bootstrap_ci", "cell_table", "ci_half_width", "geometric_ci"]


@dataclass(frozen=True)
class CI:
    """A point estimate with a two-sided confidence interval."""

    estimate: float  # the statistic on the observed sample
    low: float  # lower bound; NaN when undefined (fewer than two values)
    high: float  # upper bound; NaN when undefined
    confidence: float  # two-sided confidence level, e.g. 0.95


def bootstrap_ci(
    values: Iterable[float],
    *,
    statistic: Callable[..., float] = np.mean,
    confidence: float = CONFIDENCE,
    n_resamples: int = 9999,
    seed: int = 0,
) -> CI:
    """Bias-corrected and accelerated (BCa) bootstrap interval of ``statistic(values)``.

    Uses ``scipy.stats.bootstrap(method="BCa")`` with ``rng=numpy.random.default_rng(seed)``, so
    the same input and seed always give the same interval. BCa (Efron 1987) adjusts the
    percentile interval [G^-1(Phi(z0 + (z0 + z_a) / (1 - a (z0 + z_a))))] for the bias
    ``z0 = Phi^-1(#{theta* < theta} / B)`` and the jackknife acceleration ``a``.

    Not used by :func:`cell_table`: with fewer than about 10 values BCa intervals are too
    narrow (the bootstrap distribution of a tiny sample underestimates its spread); use
    :func:`geometric_ci` there.

    Edge cases: one value gives NaN bounds (no interval exists); values that are all equal give
    the degenerate interval ``[v, v]`` (every resample is ``v``; scipy would return NaN).

    Args:
        values: the sample (e.g. the throughputs of one cell's trials); finite numbers.
        statistic: a numpy reduction accepting ``axis`` (``np.mean``, ``np.median``).
        confidence: two-sided level in (0, 1).
        n_resamples: bootstrap resamples (>= 100).
        seed: seed of the resampling generator.

    Returns:
        :class:`CI` with ``estimate = statistic(values)``.

    Raises:
        ValueError: if ``values`` is empty or not finite, or a parameter is out of range.

    Example:
        >>> ci = bootstrap_ci([101.0, 99.0, 100.5, 98.7, 100.2], seed=0)
        >>> ci.low < ci.estimate < ci.high
        True
    """
    x = finite_array(values, "values")
    confidence = check_confidence(confidence)
    if not (isinstance(n_resamples, (int, np.integer)) and n_resamples >= 100):
        raise ValueError(f"`n_resamples` must be an integer >= 100; got {n_resamples!r}")
    estimate = float(statistic(x))
    if x.size < 2:
        return CI(estimate, float("nan"), float("nan"), confidence)
    if np.ptp(x) == 0.0:
        return CI(estimate, estimate, estimate, confidence)
    res = scipy.stats.bootstrap(
        (x,),
        statistic,
        n_resamples=int(n_resamples),
        confidence_level=confidence,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return CI(estimate, float(ci.low), float(ci.high), confidence)


def ci_half_width(values: Iterable[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t confidence interval of the mean (NaN for fewer than 2 values).

    Example:
        >>> round(ci_half_width([1.0, 2.0, 3.0]), 4)  # t(0.975, 2) * 1 / sqrt(3)
        2.4841
    """
    x = np.asarray(list(values), dtype=float)
    if x.size < 2:
        return float("nan")
    return float(
        scipy.stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    )


def geometric_ci(values: Iterable[float], *, confidence: float = CONFIDENCE) -> CI:
    """Geometric mean with a Student-t interval on the log scale.

    With ``y = log(values)``, ``n`` values, ``s`` their sd (ddof=1):
    ``estimate = exp(mean y)`` and ``[low, high] = exp(mean y -/+ t_{1-alpha/2}(n - 1) s / sqrt(n))``.
    Throughputs are right-skewed and their ratios are what the study reports, so the log scale is
    the natural one; at the study's trial counts (often < 10) a t interval has close to nominal
    coverage where a bootstrap interval (:func:`bootstrap_ci`) is too narrow.

    One value gives NaN bounds; values that are all equal give ``[v, v]``.

    Args:
        values: the sample (e.g. the throughputs of one cell's trials); finite and > 0.
        confidence: two-sided level in (0, 1).

    Returns:
        :class:`CI` of the geometric mean.

    Raises:
        ValueError: if ``values`` is empty or holds a value that is not finite and > 0.

    Example:
        >>> ci = geometric_ci([101.0, 99.0, 100.5, 98.7, 100.2])
        >>> ci.low < ci.estimate < ci.high
        True
    """
    y = np.log(positive_array(values, "values"))
    confidence = check_confidence(confidence)
    estimate = float(np.exp(y.mean()))
    if y.size < 2:
        return CI(estimate, float("nan"), float("nan"), confidence)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2.0, y.size - 1)) * y.std(ddof=1)
    half /= np.sqrt(y.size)
    return CI(estimate, float(np.exp(y.mean() - half)), float(np.exp(y.mean() + half)), confidence)


def _replicated(rows: pd.DataFrame) -> bool:
    """Whether the rows span several (run_id, replicate) units."""
    columns = [c for c in ("run_id", "replicate") if c in rows.columns]
    return bool(columns) and len(rows[columns].drop_duplicates()) > 1


def cell_table(df: pd.DataFrame, *, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per benchmark cell: geometric-mean throughput with a t CI, latencies, counts.

    A cell is a machine x model file x engine x settings (the ``cell`` id). Only ok trials are
    summarised; a cell whose trials all failed does not appear (see ``n_failed`` for cells that
    had some failures). ``throughput`` is the geometric mean of the trials' throughputs and
    ``ci_low``/``ci_high`` its Student-t interval on log throughput (:func:`geometric_ci`),
    whatever the number of trials (no bootstrap: at small n its intervals are too narrow). A cell
    measured in several replicates or runs gets :func:`study.stats.contrast` of the cell instead
    (the mean of its replicates' mean logs, t over replicates or runs): a t on all its trials
    would take its degrees of freedom from within the processes that were measured.
    ``log_sd`` is the sd of log throughput (the cell's relative noise); latency columns are means
    over trials; ``seconds`` is the total timed time.

    Args:
        df: TrialRow rows from any number of machines.
        confidence: two-sided level of the interval.

    Returns:
        Columns ``machine``, the cell fields (``study.records.schema.CELL_FIELDS``: ``model, pruner,
        profile, mask, quant, exporter, sparsity, engine, precision, scenario, batch_size,
        threads``), ``cell, n_trials, n_failed, throughput, ci_low, ci_high, log_sd,
        latency_ms_mean, latency_ms_median, latency_ms_p90, latency_ms_p99, seconds``.

    Raises:
        ValueError: if a column is missing or an ok trial has a throughput <= 0.

    Example:
        >>> cell_table(pd.read_json("bench.jsonl", lines=True))  # doctest: +SKIP
    """
    ok = ok_trials(df)
    confidence = check_confidence(confidence)
    n_failed = failed_trials(df).groupby("cell").size()
    keys = [*CELL_COLUMNS, "cell"]
    rows = []
    for key, g in ok.groupby(keys, sort=True, dropna=False):
        x = g["throughput"].to_numpy(dtype=float)
        ci = geometric_ci(x, confidence=confidence)
        if _replicated(g):
            c = contrast(g, {key[-1]: 1.0}, confidence=confidence)
            ci = CI(math.exp(c.estimate), math.exp(c.ci_low), math.exp(c.ci_high), confidence)
        row = dict(zip(keys, key))
        row.update(
            n_trials=len(g),
            n_failed=int(n_failed.get(row["cell"], 0)),
            throughput=ci.estimate,
            ci_low=ci.low,
            ci_high=ci.high,
            log_sd=float(np.log(x).std(ddof=1)) if x.size >= 2 else float("nan"),
        )
        for column in LATENCY_COLUMNS:
            values = pd.to_numeric(g[column], errors="coerce") if column in g else pd.Series()
            row[column] = float(values.mean()) if values.notna().any() else float("nan")
        seconds = pd.to_numeric(g["seconds"], errors="coerce") if "seconds" in g else None
        row["seconds"] = float(seconds.sum()) if seconds is not None else float("nan")
        rows.append(row)
    columns = [*keys, "n_trials", "n_failed", "throughput", "ci_low", "ci_high", "log_sd"]
    return pd.DataFrame(rows, columns=[*columns, *LATENCY_COLUMNS, "seconds"])
