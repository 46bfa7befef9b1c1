"""Equivalence testing: two one-sided t tests (TOST, Schuirmann 1987)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.stats

from study.stats._frame import finite_array
from study.stats.defaults import ALPHA

__all__ = ["TostResult", "tost", "tost_one_sample"]


@dataclass(frozen=True)
class TostResult:
    """Two one-sided tests of H0: theta <= low or theta >= high against H1: low < theta < high."""

    estimate: float  # the estimate of theta (e.g. a log ratio)
    se: float  # its standard error; NaN when undefined (a single trial somewhere)
    dof: float  # degrees of freedom of the t reference distribution (inf = normal)
    low: float  # lower equivalence margin on the scale of `estimate`
    high: float  # upper equivalence margin
    p_lower: float  # p of H0: theta <= low, i.e. P(T >= (estimate - low) / se)
    p_upper: float  # p of H0: theta >= high, i.e. P(T <= (estimate - high) / se)
    pvalue: float  # max(p_lower, p_upper): the TOST p-value
    ci90_low: float  # lower end of the (1 - 2 alpha) interval (90% for alpha = 0.05)
    ci90_high: float  # upper end of that interval
    equivalent: bool  # pvalue < alpha, i.e. both one-sided nulls rejected (False when undefined)
    alpha: float = ALPHA  # level of each one-sided test


def _check_margins(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"`low` and `high` must be finite with low < high; got low={low!r}, high={high!r}"
        )


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 0.5):
        raise ValueError(f"`alpha` must be in (0, 0.5); got {alpha!r}")


def tost(
    estimate: float, se: float, dof: float, low: float, high: float, *, alpha: float = ALPHA
) -> TostResult:
    """TOST for an estimate with a t-distributed standard error.

    With ``T ~ t(dof)``: ``p_lower = P(T >= (estimate - low) / se)`` tests H0: theta <= low and
    ``p_upper = P(T <= (estimate - high) / se)`` tests H0: theta >= high. Equivalence
    (low < theta < high) is declared when both are rejected at ``alpha``, i.e. when
    ``max(p_lower, p_upper) < alpha``; this is the same as the ``1 - 2 alpha`` interval
    ``estimate -/+ t_{1-alpha}(dof) se`` lying inside (low, high).

    A NaN ``estimate``, ``se`` or ``dof`` (an undefined variance) gives NaN p-values and
    ``equivalent=False``; it is not an error.

    Args:
        estimate: the estimate of theta.
        se: its standard error (>= 0 or NaN).
        dof: degrees of freedom (> 0, ``inf`` for a normal reference, or NaN).
        low: lower margin, e.g. ``log(0.95)`` for a ratio on the log scale.
        high: upper margin, e.g. ``log(1.05)``.
        alpha: level of each one-sided test.

    Returns:
        :class:`TostResult`.

    Raises:
        ValueError: if the margins are not finite with low < high, se < 0, dof <= 0 or alpha is
            outside (0, 0.5).

    Example:
        >>> r = tost(0.01, 0.01, 20, math.log(0.95), math.log(1.05))
        >>> r.equivalent
        True
    """
    _check_margins(low, high)
    _check_alpha(alpha)
    if se < 0:
        raise ValueError(f"`se` must be >= 0 (or NaN); got {se!r}")
    if dof <= 0:
        raise ValueError(f"`dof` must be > 0 (or NaN); got {dof!r}")
    estimate, se, dof = float(estimate), float(se), float(dof)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_lower = float(scipy.stats.t.sf(np.divide(estimate - low, se), dof))
        p_upper = float(scipy.stats.t.cdf(np.divide(estimate - high, se), dof))
        half = float(scipy.stats.t.ppf(1.0 - alpha, dof)) * se
    pvalue = max(p_lower, p_upper) if not (math.isnan(p_lower) or math.isnan(p_upper)) else math.nan
    return TostResult(
        estimate=estimate,
        se=se,
        dof=dof,
        low=float(low),
        high=float(high),
        p_lower=p_lower,
        p_upper=p_upper,
        pvalue=pvalue,
        ci90_low=estimate - half,
        ci90_high=estimate + half,
        equivalent=bool(pvalue < alpha),
        alpha=float(alpha),
    )


def tost_one_sample(
    x: Iterable[float], low: float, high: float, *, alpha: float = ALPHA
) -> TostResult:
    """TOST on the mean of one sample (e.g. paired differences of log throughput across seeds).

    ``estimate = mean(x)``, ``se = s / sqrt(n)`` (``s`` with ddof=1), ``dof = n - 1``, then
    :func:`tost`. Each one-sided p equals ``scipy.stats.ttest_1samp(x, low,
    alternative="greater")`` and ``ttest_1samp(x, high, alternative="less")``.
    A single value gives NaN p-values (no variance).

    Args:
        x: the sample; finite numbers.
        low: lower margin.
        high: upper margin.
        alpha: level of each one-sided test.

    Returns:
        :class:`TostResult`.

    Raises:
        ValueError: if ``x`` is empty or not finite, or the margins or alpha are invalid.

    Example:
        >>> tost_one_sample([0.01, -0.02, 0.0, 0.015], -0.05, 0.05).equivalent
        True
    """
    values = finite_array(x, "x")
    n = values.size
    se = float(values.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    dof = float(n - 1) if n >= 2 else math.nan
    return tost(float(values.mean()), se, dof, low, high, alpha=alpha)
