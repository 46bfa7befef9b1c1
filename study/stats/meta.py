"""Welch-Satterthwaite contrasts of independent log-means, and random-effects meta-analysis."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

from study.stats._frame import check_confidence, finite_array

__all__ = ["Contrast", "MetaResult", "welch_contrast", "random_effects"]


@dataclass(frozen=True)
class Contrast:
    """A signed sum of independent sample means with its Welch-Satterthwaite standard error."""

    estimate: float  # sum_i c_i mean(x_i)
    se: float  # sqrt(sum_i c_i^2 s_i^2 / n_i); NaN when a sample has one value
    dof: float  # Welch-Satterthwaite degrees of freedom; NaN when se is NaN or 0
    n: int  # total number of values


@dataclass(frozen=True)
class MetaResult:
    """Random-effects pooled estimate (DerSimonian-Laird tau^2, Hartung-Knapp-Sidik-Jonkman)."""

    estimate: float  # mu = sum w*_i y_i / sum w*_i with w*_i = 1 / (v_i + tau2)
    se: float  # HKSJ standard error of mu (see random_effects)
    dof: float  # k - 1
    ci_low: float  # mu - t_{1-alpha/2}(k - 1) se
    ci_high: float  # mu + t_{1-alpha/2}(k - 1) se
    pvalue: float  # two-sided t test of mu = 0 with k - 1 dof
    tau2: float  # DerSimonian-Laird between-study variance
    q: float  # Cochran's Q with fixed-effect weights 1 / v_i
    k: int  # number of studies (architectures)
    se_dl: float  # conventional DL standard error sqrt(1 / sum w*_i) (for reference)
    confidence: float  # two-sided level of the CI


def welch_contrast(samples: Sequence[Iterable[float]], signs: Sequence[float]) -> Contrast:
    """Estimate, SE and Welch-Satterthwaite dof of ``sum_i c_i mean(x_i)`` for independent x_i.

    ``se^2 = sum_i c_i^2 s_i^2 / n_i`` and
    ``dof = se^4 / sum_i (c_i^2 s_i^2 / n_i)^2 / (n_i - 1)`` (Satterthwaite 1946). With two
    samples and signs (+1, -1) this is exactly Welch's two-sample t (``scipy.stats.ttest_ind(
    equal_var=False)``). A sample with a single value makes ``se`` and ``dof`` NaN.

    Args:
        samples: the independent samples (finite values).
        signs: one coefficient c_i per sample (e.g. +1, -1, -1, +1).

    Returns:
        :class:`Contrast`.

    Raises:
        ValueError: if the lengths differ or a sample is empty or not finite.

    Example:
        >>> welch_contrast([[1.0, 2.0, 3.0], [0.0, 1.0]], [1, -1]).estimate
        1.5
    """
    if len(samples) != len(signs) or not samples:
        raise ValueError(
            f"`samples` and `signs` must be non-empty and of equal length; got "
            f"{len(samples)} and {len(signs)}"
        )
    xs = [finite_array(s, f"samples[{i}]") for i, s in enumerate(samples)]
    c = np.asarray(signs, dtype=float)
    estimate = float(sum(ci * x.mean() for ci, x in zip(c, xs)))
    n_total = int(sum(x.size for x in xs))
    if any(x.size < 2 for x in xs):
        return Contrast(estimate, math.nan, math.nan, n_total)
    parts = np.array([ci**2 * x.var(ddof=1) / x.size for ci, x in zip(c, xs)])
    se = float(math.sqrt(parts.sum()))
    denom = float(sum(p**2 / (x.size - 1) for p, x in zip(parts, xs)))
    dof = float(parts.sum() ** 2 / denom) if denom > 0 else math.nan
    return Contrast(estimate, se, dof, n_total)


def random_effects(
    y: Iterable[float],
    v: Iterable[float],
    *,
    confidence: float = 0.95,
    hksj_floor: bool = True,
) -> MetaResult:
    """Random-effects meta-analysis: DerSimonian-Laird tau^2, HKSJ variance, t(k - 1).

    With fixed-effect weights ``w_i = 1 / v_i``, ``ybar = sum w y / sum w``,
    ``Q = sum w_i (y_i - ybar)^2``, ``C = sum w - sum w^2 / sum w``:
    ``tau2 = max(0, (Q - (k - 1)) / C)`` (DerSimonian & Laird 1986). With
    ``w*_i = 1 / (v_i + tau2)``: ``mu = sum w* y / sum w*`` and the Hartung-Knapp-Sidik-Jonkman
    variance ``var(mu) = q / sum w*`` with ``q = sum w*_i (y_i - mu)^2 / (k - 1)``
    (Hartung & Knapp 2001; Sidik & Jonkman 2002), referred to ``t(k - 1)``. This reproduces
    metafor's ``rma(yi, vi, method="DL", test="knha")`` when ``hksj_floor=False``.

    ``hksj_floor=True`` (default) uses ``max(1, q)`` instead of ``q`` (Knapp & Hartung 2003;
    Roever, Knapp & Friede 2015, metafor's ``test="adhoc"``): when the studies agree more than
    their own variances imply, plain HKSJ can be narrower than the conventional DL interval,
    which with 3-7 architectures would overstate certainty (e.g. claim equivalence too easily).

    Args:
        y: study estimates (e.g. per-architecture log B), k >= 2.
        v: their sampling variances (> 0).
        confidence: two-sided level of the CI.
        hksj_floor: apply the max(1, q) floor.

    Returns:
        :class:`MetaResult`.

    Raises:
        ValueError: if k < 2, lengths differ, or a variance is not finite and > 0.

    Example:
        >>> r = random_effects([0.01, -0.02, 0.0], [1e-4, 2e-4, 1e-4])
        >>> r.k, r.dof
        (3, 2.0)
    """
    yy, vv = finite_array(y, "y"), finite_array(v, "v")
    confidence = check_confidence(confidence)
    if yy.size != vv.size or yy.size < 2:
        raise ValueError(
            f"`y` and `v` must have the same length k >= 2; got {yy.size} and {vv.size}"
        )
    if np.any(vv <= 0):
        raise ValueError(f"`v` must hold variances > 0; got {vv.tolist()!r}")
    k = yy.size
    w = 1.0 / vv
    ybar = float(np.sum(w * yy) / np.sum(w))
    q_stat = float(np.sum(w * (yy - ybar) ** 2))
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q_stat - (k - 1)) / c)
    w_star = 1.0 / (vv + tau2)
    mu = float(np.sum(w_star * yy) / np.sum(w_star))
    q_hk = float(np.sum(w_star * (yy - mu) ** 2) / (k - 1))
    if hksj_floor:
        q_hk = max(1.0, q_hk)
    se = math.sqrt(q_hk / float(np.sum(w_star)))
    dof = float(k - 1)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        pvalue = float(2.0 * scipy.stats.t.sf(abs(np.divide(mu, se)), dof))
    return MetaResult(
        estimate=mu,
        se=se,
        dof=dof,
        ci_low=mu - half,
        ci_high=mu + half,
        pvalue=pvalue,
        tau2=float(tau2),
        q=q_stat,
        k=int(k),
        se_dl=math.sqrt(1.0 / float(np.sum(w_star))),
        confidence=confidence,
    )
