"""How many replicates and rounds per replicate to measure for a time budget (Kalibera & Jones).

With ``T_rep`` the variance between replicates (fresh worker processes) and ``T_round`` the
variance between rounds inside a replicate (:mod:`study.stats.components`), ``n`` replicates of
``r`` rounds estimate a contrast with variance

    V(n, r) = T_rep / n + T_round / (n r)

and cost ``n (c_rep + r c_round)`` seconds, ``c_rep`` being the fixed cost of a replicate (process
start, engine compile, warm-up) and ``c_round`` the cost of one round. For a fixed budget, V is
smallest at Kalibera & Jones's (ISMM 2013) repetition count

    r = ceil(sqrt(c_rep / c_round * T_round / T_rep)),

then as many replicates as the budget allows. The CI's half-width is ``t_{1-alpha/2}(n - 1)
sqrt(V)``: with few replicates the t quantile favours more replicates of fewer rounds than K&J's
r, so :func:`allocate` by default searches r for the narrowest CI and reports K&J's r beside it.
The variance between runs is not reduced by anything inside one run (a floor only more runs lower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats

from study.stats._frame import check_confidence
from study.stats.defaults import CONFIDENCE

__all__ = ["OBJECTIVES", "Allocation", "allocate", "kj_rounds"]

OBJECTIVES = ("width", "variance")


@dataclass(frozen=True)
class Allocation:
    """Replicates x rounds per replicate for a time budget, and the CI it should give."""

    replicates: int  # n: replicates (fresh processes) of the block
    rounds: int  # r: rounds per replicate
    cost: float  # seconds: n (cost_replicate + r cost_round) <= budget
    budget: float  # seconds allowed
    variance: float  # V(n, r) = var_replicate / n + var_round / (n r)
    dof: int  # n - 1: the CI's degrees of freedom
    half_width: float  # t_{1-alpha/2}(n - 1) sqrt(V): expected CI half-width (log scale)
    rounds_kj: float  # Kalibera & Jones's r before the budget's bounds (inf: var_replicate 0)
    objective: str  # "width" (narrowest CI) or "variance" (K&J: smallest V)
    confidence: float  # two-sided CI level of half_width
    note: str = ""  # clipped components, a fixed replicate count, bounds that bit


def kj_rounds(var_round: float, var_replicate: float, cost_round: float, cost_rep: float) -> float:
    """Kalibera & Jones's optimal rounds per replicate, ``ceil(sqrt(c_rep/c_round T_round/T_rep))``.

    ``inf`` when ``var_replicate`` is 0 (rounds are then as good as replicates, and cheaper);
    1 when ``var_round`` is 0.

    Example:
        >>> kj_rounds(0.04, 0.01, 1.0, 30.0)  # sqrt(30 * 4) = 10.95
        11
    """
    if var_replicate <= 0:
        return math.inf
    return max(1, math.ceil(math.sqrt(cost_rep / cost_round * var_round / var_replicate)))


def _check(name: str, value: object, *, positive: bool) -> float:
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and (value > 0 if positive else value >= 0)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"`{name}` must be a finite number {bound}; got {value!r}")
    return float(value)


def _check_int(name: str, value: object, low: int, why: str) -> int:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low):
        raise ValueError(f"`{name}` must be an integer >= {low} ({why}); got {value!r}")
    return int(value)


def _variances(var_round: float, var_replicate: float) -> tuple[float, float, str]:
    """Checked components; negative (unbiased) estimates read as 0, with a note."""
    out, notes = [], []
    for name, v in (("var_round", var_round), ("var_replicate", var_replicate)):
        number = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        if not (number and math.isfinite(v)):
            raise ValueError(f"`{name}` must be a finite variance; got {v!r}")
        if v < 0:
            notes.append(f"{name} {v:.3g} < 0 read as 0")
        out.append(max(0.0, float(v)))
    if out[0] == 0 and out[1] == 0:
        raise ValueError(
            f"`var_round` and `var_replicate` must not both be 0 (nothing to allocate); got "
            f"{var_round!r} and {var_replicate!r}"
        )
    return out[0], out[1], "; ".join(notes)


def allocate(
    var_round: float,
    var_replicate: float,
    *,
    cost_round: float,
    cost_replicate: float,
    budget: float,
    confidence: float = CONFIDENCE,
    min_rounds: int = 2,
    replicates: int | None = None,
    objective: str = "width",
) -> Allocation:
    """The allocation of replicates x rounds that gives the narrowest CI within ``budget``.

    ``objective="variance"`` is Kalibera & Jones's rule (module docstring): r from
    :func:`kj_rounds`, bounded to ``[min_rounds, r_max]`` (``r_max``: the most rounds two
    replicates can afford), then ``n = floor(budget / (c_rep + r c_round))``.
    ``objective="width"`` (default) tries every r in ``[min_rounds, r_max]`` with its affordable
    n and keeps the one with the smallest ``t_{1-alpha/2}(n - 1) sqrt(V)``. ``replicates`` fixes
    n instead: r is then the most rounds the budget allows. Negative (unbiased) variance
    estimates are read as 0.

    Args:
        var_round: variance between rounds within a replicate (T_round, of the contrast's d_r).
        var_replicate: variance between replicates within a run (T_rep).
        cost_round: seconds one round of the block takes (> 0).
        cost_replicate: seconds a replicate costs besides its rounds (process start, compile,
            warm-up; >= 0).
        budget: seconds available for the block (all its replicates).
        confidence: two-sided CI level of the reported half-width.
        min_rounds: fewest rounds a replicate may have (>= 1).
        replicates: a fixed number of replicates (>= 2), or None to choose it.
        objective: ``"width"`` or ``"variance"``.

    Returns:
        :class:`Allocation`.

    Raises:
        ValueError: on a bad component, cost or count, ``replicates`` < 2, or a budget too small
            for 2 replicates (or ``replicates``) of ``min_rounds`` rounds; the message gives the
            smallest budget allowed.

    Example:
        >>> a = allocate(0.04, 0.01, cost_round=1.0, cost_replicate=30.0, budget=600.0)
        >>> (a.replicates, a.rounds, a.rounds_kj)
        (15, 10, 11)
    """
    var_round, var_replicate, note = _variances(var_round, var_replicate)
    c_round = _check("cost_round", cost_round, positive=True)
    c_rep = _check("cost_replicate", cost_replicate, positive=False)
    total = _check("budget", budget, positive=True)
    confidence = check_confidence(confidence)
    min_rounds = _check_int("min_rounds", min_rounds, 1, "a replicate needs a round")
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {list(OBJECTIVES)}; got {objective!r}")
    fewest = 2
    if replicates is not None:
        fewest = _check_int("replicates", replicates, 2, "a CI across replicates needs two")
    need = fewest * (c_rep + min_rounds * c_round)
    if total < need:
        raise ValueError(
            f"`budget` must be >= {need:g} s ({fewest} replicates x (cost_replicate {c_rep:g} s "
            f"+ min_rounds {min_rounds} x cost_round {c_round:g} s)); got {budget!r}"
        )
    r_max = int(math.floor((total / fewest - c_rep) / c_round + 1e-9))
    rounds_kj = kj_rounds(var_round, var_replicate, c_round, c_rep)
    if replicates is not None:
        r = r_max
        n = fewest
        note = "; ".join(n_ for n_ in (note, f"replicates fixed at {fewest}") if n_)
    elif objective == "variance":
        r = int(min(max(rounds_kj, min_rounds), r_max))
        n = int(math.floor(total / (c_rep + r * c_round) + 1e-9))
    else:
        rs = np.arange(min_rounds, r_max + 1)
        ns = np.floor(total / (c_rep + rs * c_round) + 1e-9)
        v = var_replicate / ns + var_round / (ns * rs)
        widths = scipy.stats.t.ppf(0.5 + confidence / 2, ns - 1) * np.sqrt(v)
        best = int(np.argmin(widths))
        r, n = int(rs[best]), int(ns[best])
    if rounds_kj > r_max and replicates is None:
        bound = f"K&J's r {rounds_kj:g} > {r_max}, the most rounds 2 replicates can afford"
        note = "; ".join(n_ for n_ in (note, bound) if n_)
    variance = var_replicate / n + var_round / (n * r)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) * math.sqrt(variance))
    return Allocation(
        replicates=n, rounds=r, cost=n * (c_rep + r * c_round), budget=total, variance=variance,
        dof=n - 1, half_width=half, rounds_kj=rounds_kj, objective=objective,
        confidence=confidence, note=note,
    )  # fmt: skip
