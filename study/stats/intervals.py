"""Bootstrap confidence intervals and the per-cell summary table."""

from __future__ import annotations

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
)

__all__ = ["CI", "bootstrap_ci", "cell_table"]


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
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> CI:
    """Bias-corrected and accelerated (BCa) bootstrap interval of ``statistic(values)``.

    Uses ``scipy.stats.bootstrap(method="BCa")`` with ``rng=numpy.random.default_rng(seed)``, so
    the same input and seed always give the same interval. BCa (Efron 1987) adjusts the
    percentile interval [G^-1(Phi(z0 + (z0 + z_a) / (1 - a (z0 + z_a))))] for the bias
    ``z0 = Phi^-1(#{theta* < theta} / B)`` and the jackknife acceleration ``a``.

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


def cell_table(
    df: pd.DataFrame, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> pd.DataFrame:
    """One row per benchmark cell: mean throughput with a BCa bootstrap CI, latencies, counts.

    A cell is a machine x model file x engine x settings (the ``cell`` id). Only ok trials are
    summarised; a cell whose trials all failed does not appear (see ``n_failed`` for cells that
    had some failures). ``throughput`` is the arithmetic mean of the trials' throughputs and
    ``ci_low``/``ci_high`` its :func:`bootstrap_ci`; latency columns are means over trials;
    ``seconds`` is the total timed time.

    Args:
        df: TrialRow rows from any number of machines.
        confidence: two-sided level of the bootstrap interval.
        n_resamples: bootstrap resamples per cell.
        seed: bootstrap seed (the same for every cell).

    Returns:
        Columns ``machine, model, pruner, exporter, sparsity, engine, precision, scenario,
        batch_size, threads, cell, n_trials, n_failed, throughput, ci_low, ci_high,
        latency_ms_mean, latency_ms_median, latency_ms_p90, latency_ms_p99, seconds``.

    Raises:
        ValueError: if a column is missing or an ok trial has a throughput <= 0.

    Example:
        >>> cell_table(pd.read_json("bench.jsonl", lines=True))  # doctest: +SKIP
    """
    ok = ok_trials(df)
    n_failed = failed_trials(df).groupby("cell").size()
    keys = [*CELL_COLUMNS, "cell"]
    rows = []
    for key, g in ok.groupby(keys, sort=True, dropna=False):
        ci = bootstrap_ci(
            g["throughput"], confidence=confidence, n_resamples=n_resamples, seed=seed
        )
        row = dict(zip(keys, key))
        row.update(
            n_trials=len(g),
            n_failed=int(n_failed.get(row["cell"], 0)),
            throughput=ci.estimate,
            ci_low=ci.low,
            ci_high=ci.high,
        )
        for column in LATENCY_COLUMNS:
            values = pd.to_numeric(g[column], errors="coerce") if column in g else pd.Series()
            row[column] = float(values.mean()) if values.notna().any() else float("nan")
        seconds = pd.to_numeric(g["seconds"], errors="coerce") if "seconds" in g else None
        row["seconds"] = float(seconds.sum()) if seconds is not None else float("nan")
        rows.append(row)
    columns = [*keys, "n_trials", "n_failed", "throughput", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=[*columns, *LATENCY_COLUMNS, "seconds"])
