"""Welch-Satterthwaite contrasts of independent log-means; common- and random-effects pooling."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

from study.stats._frame import check_confidence, finite_array, t_interval
from study.stats.defaults import CONFIDENCE

__all__ = [
    "RANDOM_EFFECTS_MIN_K",
    "CommonEffectResult",
    "Contrast",
    "MetaResult",
    "PoolResult",
    "common_effect",
    "equal_weight_effect",
    "pool_estimates",
    "random_effects",
    "welch_contrast",
]

# Random effects need the between-architecture variance tau^2, which a handful of architectures
# cannot estimate (DerSimonian-Laird's tau^2 is then 0 or far off, and HKSJ's t(k - 1) very wide);
# below this k, pool_estimates uses the equal-weight pool: the mean over this set of
# architectures (each counts alike, as in the original study's "faster on average"), rather than
# an effect in a population of architectures.
RANDOM_EFFECTS_MIN_K = 5


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


@dataclass(frozen=True)
class CommonEffectResult:
    """Common-effect (fixed, inverse-variance) pooled estimate with a Satterthwaite t reference."""

    estimate: float  # mu = sum w_i y_i / sum w_i with w_i = 1 / v_i
    se: float  # sqrt(1 / sum w_i)
    dof: float  # Welch-Satterthwaite dof of mu from the studies' own dof (see common_effect)
    ci_low: float  # mu - t_{1-alpha/2}(dof) se
    ci_high: float  # mu + t_{1-alpha/2}(dof) se
    pvalue: float  # two-sided t test of mu = 0
    q: float  # Cochran's Q = sum w_i (y_i - mu)^2 (heterogeneity; reported, not used)
    q_pvalue: float  # P(chi2(k - 1) >= Q)
    k: int  # number of studies (architectures)
    confidence: float  # two-sided level of the CI


@dataclass(frozen=True)
class PoolResult:
    """A pooled estimate from :func:`pool_estimates`: which pool was used and its statistics."""

    estimate: float  # the pooled estimate
    se: float  # its standard error
    dof: float  # t dof: the single study's, Welch-Satterthwaite (equal) or k - 1 (random)
    ci_low: float  # estimate - t_{1-alpha/2}(dof) se
    ci_high: float  # estimate + t_{1-alpha/2}(dof) se
    pvalue: float  # two-sided t test of estimate = 0
    kind: str  # "single" (k = 1), "equal" (k < RANDOM_EFFECTS_MIN_K) or "random"
    k: int  # number of studies
    tau2: float  # DerSimonian-Laird tau^2 (random only; NaN otherwise)
    q: float  # Cochran's Q (NaN for k = 1)
    q_pvalue: float  # P(chi2(k - 1) >= Q)
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
    confidence: float = CONFIDENCE,
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
    t = t_interval(mu, se, dof, confidence)
    return MetaResult(
        estimate=mu,
        se=se,
        dof=dof,
        ci_low=t["ci_low"],
        ci_high=t["ci_high"],
        pvalue=t["pvalue"],
        tau2=float(tau2),
        q=q_stat,
        k=int(k),
        se_dl=math.sqrt(1.0 / float(np.sum(w_star))),
        confidence=confidence,
    )


def common_effect(
    y: Iterable[float], v: Iterable[float], dof: Iterable[float], *, confidence: float = CONFIDENCE
) -> CommonEffectResult:
    """Common-effect (inverse-variance) pool of k estimates that carry their own t dof.

    ``w_i = 1 / v_i``, ``W = sum w_i``, ``mu = sum w_i y_i / W``, ``se = 1 / sqrt(W)``. The
    estimates' variances are themselves estimated with ``dof_i`` degrees of freedom, so ``mu`` is
    referred to a t distribution with the Welch-Satterthwaite dof of ``var(mu) = sum_i (w_i /
    W)^2 v_i``: ``dof = 1 / sum_i (w_i / W)^2 / dof_i`` (it reduces to ``dof_1`` for one study and
    to ``k (n - 1)`` for k equal studies of n - 1 dof each). Cochran's ``Q = sum w_i (y_i - mu)^2``
    with ``P(chi2(k - 1) >= Q)`` is reported as a heterogeneity check; it does not change the
    estimate. (metafor: ``rma(yi, vi, method="EE")`` gives the same mu, se and QE; it uses a
    normal reference.)

    Args:
        y: study estimates (e.g. per-architecture log B), k >= 1.
        v: their sampling variances (> 0).
        dof: the dof of each variance (> 0; ``inf`` for a known variance).
        confidence: two-sided level of the CI.

    Returns:
        :class:`CommonEffectResult`.

    Raises:
        ValueError: if the lengths differ, or a variance or dof is not > 0.

    Example:
        >>> r = common_effect([0.01, -0.02], [1e-4, 1e-4], [9, 9])
        >>> round(r.estimate, 3), r.dof
        (-0.005, 18.0)
    """
    yy, vv, nu = _pool_args(y, v, dof)
    return _fixed_set_pool(yy, vv, nu, 1.0 / vv, confidence)


def equal_weight_effect(
    y: Iterable[float], v: Iterable[float], dof: Iterable[float], *, confidence: float = CONFIDENCE
) -> CommonEffectResult:
    """The mean of k estimates, each weighted alike, with a Welch-Satterthwaite t reference.

    ``mu = mean(y_i)``, ``var(mu) = sum_i v_i / k^2`` and
    ``dof = (sum_i v_i)^2 / sum_i (v_i^2 / dof_i)`` (Satterthwaite 1946: the dof of a sum of
    independent variance estimates). Why not inverse-variance weights (:func:`common_effect`):
    when each ``v_i`` rests on a few replicates (1-4 dof), weights ``1 / v_i`` give most of the
    weight to whichever estimate drew an accidentally small variance, and the pooled CI
    under-covers badly (simulated in ``tests/study/test_pooling.py``: 79-89% for 95% intervals
    with 2-5 replicates per architecture), while these equal weights keep nominal coverage. The
    estimand is also the one a benchmark of a set of models reports: the average over the
    models, each counting alike. Cochran's Q (inverse-variance weights) is still reported as a
    heterogeneity check.

    Args:
        y: study estimates (e.g. per-architecture log B), k >= 1.
        v: their sampling variances (> 0).
        dof: the dof of each variance (> 0; ``inf`` for a known variance).
        confidence: two-sided level of the CI.

    Returns:
        :class:`CommonEffectResult` (``estimate`` the plain mean).

    Raises:
        ValueError: if the lengths differ, or a variance or dof is not > 0.

    Example:
        >>> r = equal_weight_effect([0.01, -0.02], [1e-4, 4e-4], [2, 2])
        >>> round(r.estimate, 3), round(r.se, 5), round(r.dof, 3)
        (-0.005, 0.01118, 2.941)
    """
    yy, vv, nu = _pool_args(y, v, dof)
    return _fixed_set_pool(yy, vv, nu, np.ones_like(vv), confidence)


def _pool_args(y, v, dof) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, vv = finite_array(y, "y"), finite_array(v, "v")
    nu = np.asarray(list(dof), dtype=float).ravel()
    if not (yy.size == vv.size == nu.size) or yy.size == 0:
        raise ValueError(
            f"`y`, `v` and `dof` must have the same length k >= 1; got {yy.size}, {vv.size}, "
            f"{nu.size}"
        )
    if np.any(vv <= 0):
        raise ValueError(f"`v` must hold variances > 0; got {vv.tolist()!r}")
    if np.any(~(nu > 0)):
        raise ValueError(f"`dof` must hold degrees of freedom > 0; got {nu.tolist()!r}")
    return yy, vv, nu


def _fixed_set_pool(yy, vv, nu, weights, confidence) -> CommonEffectResult:
    """``mu = sum a_i y_i`` with ``a_i = weights_i / sum weights``: ``var = sum a_i^2 v_i`` and
    the Satterthwaite ``dof = var^2 / sum (a_i^2 v_i)^2 / dof_i``; Cochran's Q always with
    inverse-variance weights (a heterogeneity check, not used by the estimate)."""
    confidence = check_confidence(confidence)
    k = yy.size
    share = weights / float(np.sum(weights))
    mu = float(np.sum(share * yy))
    parts = share**2 * vv
    se = math.sqrt(float(np.sum(parts)))
    with np.errstate(divide="ignore"):
        dof_mu = float(np.sum(parts) ** 2 / np.sum(parts**2 / nu))  # inf: every variance known
    w = 1.0 / vv
    q_stat = float(np.sum(w * (yy - np.sum(w * yy) / np.sum(w)) ** 2))
    q_p = float(scipy.stats.chi2.sf(q_stat, k - 1)) if k >= 2 else math.nan
    t = t_interval(mu, se, dof_mu, confidence)
    return CommonEffectResult(
        estimate=mu,
        se=se,
        dof=dof_mu,
        ci_low=t["ci_low"],
        ci_high=t["ci_high"],
        pvalue=t["pvalue"],
        q=q_stat,
        q_pvalue=q_p,
        k=int(k),
        confidence=confidence,
    )


def pool_estimates(
    y: Iterable[float],
    v: Iterable[float],
    dof: Iterable[float],
    *,
    confidence: float = CONFIDENCE,
    hksj_floor: bool = True,
) -> PoolResult:
    """Pool k estimates: the study itself (k = 1), equal weights (k < 5) or random effects.

    k = 1 returns the estimate with its own t interval; ``2 <= k <`` :data:`RANDOM_EFFECTS_MIN_K`
    is :func:`equal_weight_effect` (the plain mean, Satterthwaite dof); larger k is
    :func:`random_effects` (DerSimonian-Laird + HKSJ, t(k - 1)), where ``dof`` is not used.
    Cochran's Q and its p are reported either way; they never switch the method.

    Args:
        y: study estimates.
        v: their sampling variances (> 0).
        dof: the dof of each variance (> 0).
        confidence: two-sided level of the CI.
        hksj_floor: passed to :func:`random_effects`.

    Returns:
        :class:`PoolResult`.

    Raises:
        ValueError: if k = 0, the lengths differ, or a variance or dof is not > 0.

    Example:
        >>> pool_estimates([0.01, -0.02], [1e-4, 1e-4], [9, 9]).kind
        'equal'
    """
    yy, vv = finite_array(y, "y"), finite_array(v, "v")
    nu = list(dof)
    confidence = check_confidence(confidence)
    if yy.size < RANDOM_EFFECTS_MIN_K:
        c = equal_weight_effect(yy, vv, nu, confidence=confidence)
        kind = "single" if c.k == 1 else "equal"
        return PoolResult(
            c.estimate, c.se, c.dof, c.ci_low, c.ci_high, c.pvalue, kind, c.k, math.nan,
            c.q if c.k > 1 else math.nan, c.q_pvalue, confidence,
        )  # fmt: skip
    r = random_effects(yy, vv, confidence=confidence, hksj_floor=hksj_floor)
    q_p = float(scipy.stats.chi2.sf(r.q, r.k - 1))
    return PoolResult(
        r.estimate, r.se, r.dof, r.ci_low, r.ci_high, r.pvalue, "random", r.k, r.tau2, r.q, q_p,
        confidence,
    )  # fmt: skip
