"""Combine per-replicate estimates with the degrees of freedom of the top replicated level.

Kalibera & Jones (ISMM 2013): a benchmark's error has a variance at every level that is repeated
(rounds inside a replicate, replicates inside a run, runs on a machine, machines), and a CI for the
grand mean must take its variance, and its degrees of freedom, from the means of the *top* level
that was replicated. Each replicate's estimate of a contrast is round-paired inside the replicate
(common drift cancels, see :mod:`study.stats.paired`); then:

- several machines: the units are machines (each the mean of its runs);
- one machine, several runs: the units are runs (each the mean of its replicates), df = runs - 1;
- one run with k >= 2 replicates: the units are replicates, df = k - 1;
- a single replicate: no level above the round is replicated; :mod:`study.stats.paired` keeps the
  round-paired t (df = rounds - 1), which ignores process and run variance, and says so.

The estimate is the equally weighted mean of the top-level units' means, ``se = sd(units) /
sqrt(n)``, t(n - 1). Units are weighted equally (Kalibera & Jones's balanced design); a replicate
with fewer complete rounds is a noisier unit, which the spread of the units absorbs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.stats._frame import check_confidence, t_interval
from study.stats._rounds import HIERARCHY
from study.stats.components import kj_components
from study.stats.defaults import CONFIDENCE

__all__ = ["HIERARCHY", "NestedEstimate", "nested_estimate", "top_level"]

_LEVEL_NAMES = ("machine", "run", "replicate")  # the names of HIERARCHY's levels


@dataclass(frozen=True)
class NestedEstimate:
    """A contrast's estimate combined across the units of its top replicated level."""

    estimate: float  # mean of the top-level units' means
    se: float  # sd(units, ddof=1) / sqrt(n); NaN with fewer than two units
    dof: float  # n - 1
    ci_low: float  # estimate - t_{1-alpha/2}(dof) se
    ci_high: float  # estimate + t_{1-alpha/2}(dof) se
    statistic: float  # estimate / se
    pvalue: float  # two-sided t test of the contrast = 0
    level: str  # "machine", "run" or "replicate": the level whose units give the dof; "" if none
    n_units: int  # units at that level
    n_replicates: int  # replicates the estimate rests on (all runs and machines)
    n_runs: int  # runs (machine, run_id) the estimate rests on
    n_machines: int  # machines
    components: dict = field(default_factory=dict)  # K&J variance components of d_r, if given
    confidence: float = CONFIDENCE  # two-sided CI level
    note: str = ""  # why a statistic is NaN


def _means(values: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct ``codes``, the mean of ``values`` over each)."""
    keys, inverse = np.unique(codes, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(keys))
    return keys, sums / np.bincount(inverse, minlength=len(keys))


def _run_codes(units: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(an integer per replicate naming its (machine, run_id), the number of run_id codes)."""
    machine = pd.factorize(units["machine"].to_numpy())[0]
    run = pd.factorize(units["run_id"].to_numpy())[0]
    width = int(run.max()) + 1 if run.size else 1
    return machine * width + run, width


def top_level(units: pd.DataFrame) -> tuple[str, np.ndarray]:
    """(name of the top replicated level, the means of its units) for per-replicate estimates.

    Args:
        units: one row per replicate, columns ``machine, run_id, replicate, estimate``.

    Returns:
        ``("machine" | "run" | "replicate", means)``, or ``("", the single replicate's value)``.
    """
    return _top(units["estimate"].to_numpy(dtype=float), *_run_codes(units))


def _top(reps: np.ndarray, run_code: np.ndarray, width: int) -> tuple[str, np.ndarray]:
    run_keys, runs = _means(reps, run_code)  # mean of each run's replicates
    _, machines = _means(runs, run_keys // width)  # mean of each machine's runs
    for name, means in zip(_LEVEL_NAMES, (machines, runs, reps)):
        if len(means) >= 2:
            return name, means
    return "", reps


def nested_estimate(
    units: pd.DataFrame, *, d: pd.Series | None = None, confidence: float = CONFIDENCE
) -> NestedEstimate:
    """t interval of a contrast from its per-replicate estimates (see the module docstring).

    Args:
        units: one row per replicate with an estimate: ``machine, run_id, replicate,
            estimate`` (e.g. the mean of the replicate's round values d_r).
        d: the per-round values (indexed by machine, run_id, replicate, ...), to report Kalibera
            & Jones's variance components of one machine's d_r (omitted when None).
        confidence: two-sided CI level in (0, 1).

    Returns:
        :class:`NestedEstimate`.

    Raises:
        ValueError: if ``units`` lacks a column or the confidence is outside (0, 1).

    Example:
        >>> u = pd.DataFrame({"machine": "m", "run_id": "r", "replicate": [0, 1, 2],
        ...                   "estimate": [0.10, 0.12, 0.08]})
        >>> e = nested_estimate(u)
        >>> e.level, e.dof, round(e.estimate, 3)
        ('replicate', 2.0, 0.1)
    """
    confidence = check_confidence(confidence)
    missing = [c for c in (*HIERARCHY, "estimate") if c not in units.columns]
    if missing:
        raise ValueError(f"`units` lacks the column(s) {missing}; got {list(units.columns)}")
    reps = units["estimate"].to_numpy(dtype=float)
    finite = np.isfinite(reps)
    run_code, width = _run_codes(units)
    reps, run_code = reps[finite], run_code[finite]
    nan = math.nan
    runs = np.unique(run_code)
    n_runs, n_machines = len(runs), len(np.unique(runs // width))
    level, means = _top(reps, run_code, width) if len(reps) else ("", reps)
    n = len(means)
    estimate = float(means.mean()) if n else nan
    se = float(means.std(ddof=1) / math.sqrt(n)) if n >= 2 else nan
    dof = float(n - 1) if n >= 2 else nan
    note = ""
    if n == 0:
        note = "no replicate with an estimate"
    elif n == 1:
        note = "a single replicate: no variance above the round to estimate"
    elif se == 0:
        note = f"the {level} estimates are all equal: SE 0"
    components = {}
    if d is not None and len(d) and n_machines == 1:
        components = kj_components(d)
    return NestedEstimate(
        estimate=estimate, se=se, dof=dof, **t_interval(estimate, se, dof, confidence),
        level=level, n_units=n, n_replicates=len(reps), n_runs=n_runs, n_machines=n_machines,
        components=components, confidence=confidence, note=note,
    )  # fmt: skip
