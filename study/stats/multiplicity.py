"""Multiplicity: Holm's step-down adjustment, and the family of channel claims it applies to.

Two kinds of headline claim come out of the channel analysis (:mod:`study.stats.channels`):

- "channel X biases engine pair Y" (reject B = 1): one such claim per channel and pair, so the
  family-wise error is controlled with Holm (:func:`holm_family`);
- "no channel biases the comparison by more than the margin in favour of the numerator engine":
  an intersection-union test (Berger 1982). It holds when *every* one-sided test of
  H0: B >= 1 + margin rejects at level alpha on its own (``gap_ruled_out`` on every row of the
  family), and then the claim as a whole has level alpha. No adjustment is needed (an
  adjustment would only make the claim harder to reach, never easier).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from study.stats.channels import ChannelResult

__all__ = ["holm", "holm_family"]


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


def holm_family(results: Sequence[ChannelResult]) -> list[ChannelResult]:
    """The results with ``p_holm``: Holm-adjusted two-sided p of B = 1 across them.

    Pass the family a headline claims, e.g. the pooled rows of every channel and engine pair
    (``[r for r in results if r.model == "pooled"]``). NaN p-values stay NaN and do not count.
    The claim "no channel biases by more than the margin" takes no adjustment: see the module
    docstring.

    Args:
        results: ChannelResults (any channels, engine pairs and machines).

    Returns:
        New results in the same order, ``p_holm`` filled.

    Raises:
        ValueError: if an element is not a ChannelResult.

    Example:
        >>> family = [r for r in results if r.model == "pooled"]  # doctest: +SKIP
        >>> [r.p_holm for r in holm_family(family)]  # doctest: +SKIP
    """
    for i, r in enumerate(results):
        if not isinstance(r, ChannelResult):
            raise ValueError(f"`results[{i}]` must be a ChannelResult; got {type(r)!r}")
    adjusted = holm([r.pvalue for r in results])
    return [replace(r, p_holm=float(p)) for r, p in zip(results, adjusted)]
