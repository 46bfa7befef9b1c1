"""Power of a t test: the minimum detectable effect reported beside every estimate."""

from __future__ import annotations

import math

import scipy.stats

from study.stats._frame import check_confidence
from study.stats.defaults import ALPHA

__all__ = ["minimum_detectable_effect"]


def minimum_detectable_effect(
    se: float, dof: float, *, alpha: float = ALPHA, power: float = 0.80
) -> float:
    """Smallest |effect| a two-sided t test at ``alpha`` detects with probability ``power``.

    ``MDE = (t_{1-alpha/2}(dof) + t_{power}(dof)) * se``: the standard approximation, which
    neglects the far rejection tail and the skew of the noncentral t. At the MDE the exact power
    (``scipy.stats.nct`` with noncentrality ``MDE / se``) is 0.77 for dof 2, 0.79 for dof 4 and
    0.80 from dof 9 on, for ``power = 0.80``. NaN se or dof gives NaN.

    Args:
        se: standard error of the estimate (e.g. of a log ratio; >= 0 or NaN).
        dof: its degrees of freedom (> 0, ``inf`` for a normal reference, or NaN).
        alpha: two-sided level in (0, 1).
        power: in (0, 1).

    Returns:
        The MDE on the scale of ``se`` (for a log ratio, ``exp(mde) - 1`` is the relative effect).

    Raises:
        ValueError: if alpha or power is outside (0, 1).

    Example:
        >>> round(minimum_detectable_effect(0.01, float("inf")), 4)  # (1.96 + 0.8416) * 0.01
        0.028
    """
    check_confidence(alpha, "alpha")
    check_confidence(power, "power")
    if not (math.isfinite(se) and not math.isnan(dof)):
        return math.nan
    t_crit = scipy.stats.t.ppf(1.0 - alpha / 2.0, dof)
    return float((t_crit + scipy.stats.t.ppf(power, dof)) * se)
