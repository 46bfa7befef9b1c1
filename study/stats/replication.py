"""Do the harness's CIs hold across runs? Tests between repeated runs of the same cells.

A cell's CI comes from the trials of one run. It says how precisely that run measured the cell,
not how far the next run will land: a shared machine drifts over hours, so a second run of the
same cells can differ by more than the first run's CI admits. Given results holding the same cells
in two or more runs (``run_id``), :func:`replication_tests` tests each pair of runs with Welch's t:

- level ``"cell"``: mean log throughput of a cell in run i vs run j (``scipy.stats.ttest_ind``,
  ``equal_var=False``);
- level ``"ratio"``: the log throughput ratio of two engines on the same model file and settings,
  run i vs run j: the four-sample contrast ``a_i - b_i - a_j + b_j`` with Welch-Satterthwaite
  degrees of freedom (:func:`study.stats.meta.welch_contrast`). Ratios are what the study
  reports; drift common to both engines cancels in them.

That is ``method="welch"``, unpaired on all trials. ``method="paired"`` tests what the study
reports (:mod:`study.stats.replication_paired`): each run's own estimate of a cell, an engine
ratio or a channel's B (level ``"B"``, per architecture and pooled), by
:func:`study.stats.contrast` (round-paired inside each replicate, combined across the run's
replicates), with that run's SE; two runs' estimates differ by ``e_i - e_j`` with SE
``sqrt(se_i^2 + se_j^2)`` and Welch-Satterthwaite dof ``(se_i^2 + se_j^2)^2 / (se_i^4 / dof_i
+ se_j^4 / dof_j)``.

If the CIs were honest about run-to-run variation, a share ``alpha`` of the tests would reject.
:func:`replication_summary` gives the share that did, with a bootstrap CI over units (the tests of
one unit share samples, so units, not tests, are resampled), and the *inflation*: the factor the
CI half-widths would need for only ``alpha`` of the tests to reject. For one test the factor is
``k_i = |t_i| / t_{1-alpha/2}(dof_i)``; the inflation is the ``1 - alpha`` quantile of the k_i
(at least 1), so multiplying every CI by it leaves at most ``alpha`` of the pairs of runs
disagreeing.

The bootstrap treats units as independent. Units of one pair of runs share that pair's machine
state, so with few runs the CI of the share is optimistic; the share itself is not biased by it.

Units are matched across runs on ``machine``, the cell fields, the model file's ``onnx_sha256``
(not its path, so the same file copied to another run folder is the same unit) and the input shape
of a dynamic-shape model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.stats

from study.stats._frame import check_confidence, check_frame, ok_trials
from study.stats._units import TEST_COLUMNS, unit_columns, with_input_shape
from study.stats.defaults import ALPHA, CONFIDENCE
from study.stats.meta import welch_contrast
from study.stats.replication_paired import paired_tests

__all__ = [
    "LEVELS",
    "METHODS",
    "PAIRED_LEVELS",
    "ReplicationSummary",
    "replication_summary",
    "replication_tests",
    "unit_columns",
]

LEVELS = ("cell", "ratio")  # the Welch levels
PAIRED_LEVELS = ("cell", "ratio", "B")  # the paired levels: B is a channel's four-cell contrast
METHODS = ("welch", "paired")


@dataclass(frozen=True)
class ReplicationSummary:
    """How often repeated runs disagree beyond their CIs, at one level."""

    level: str  # "cell", "ratio" or "B"
    units: int  # cells (or engine pairs on one model and settings) measured in >= 2 runs
    runs: int  # distinct runs among them
    tests: int  # pairs of runs tested (a unit in r runs gives r (r - 1) / 2)
    alpha: float  # the level of each test; also the share expected to reject
    rejected: float  # share of tests with p < alpha
    rejected_low: float  # bootstrap CI of that share (units resampled)
    rejected_high: float
    inflation: float  # factor on the CI half-widths that leaves alpha of the tests rejecting
    median_dof: float  # median Welch-Satterthwaite degrees of freedom of the tests
    note: str = ""  # why a statistic is NaN, when one is

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 0.5):
        raise ValueError(f"`alpha` must be a number in (0, 0.5); got {alpha!r}")
    return float(alpha)


def _test_row(unit: dict, run_a: str, run_b: str, samples: list, signs: list) -> dict | None:
    c = welch_contrast(samples, signs)
    if not (math.isfinite(c.se) and c.se > 0 and math.isfinite(c.dof)):
        return None  # a run with one trial, or no spread at all: nothing to test
    t = c.estimate / c.se
    p = float(2 * scipy.stats.t.sf(abs(t), c.dof))
    values = (run_a, run_b, c.estimate, c.se, c.dof, t, p, "trial")
    return {**unit, **dict(zip(TEST_COLUMNS, values))}


def replication_tests(
    df: pd.DataFrame,
    level: str = "cell",
    *,
    method: str = "welch",
    channels: Sequence | None = None,
    engine_pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """One test per unit and pair of runs that both measured it (see the module docstring).

    Args:
        df: TrialRow rows from any number of runs and machines (only ``status == "ok"`` is used).
        level: ``"cell"`` (a cell's throughput), ``"ratio"`` (engine a / engine b, a < b by name)
            or ``"B"`` (a channel's B; ``method="paired"`` only).
        method: ``"welch"`` (unpaired, all trials) or ``"paired"`` (each run's own estimate, as
            the study reports it; see :func:`study.stats.replication_paired.paired_tests`).
        channels: for level ``"B"``: ``(Channel, models)`` pairs (the design's channels and the
            architectures each is measured on).
        engine_pairs: for level ``"B"``: (numerator, denominator) engines (default: every pair
            of engines present, by name).

    Returns:
        One row per test: the unit's columns (for ``"ratio"`` ``engine`` is replaced by
        ``engine_a`` and ``engine_b``), ``run_a``, ``run_b``, ``log_diff`` (run a minus run b),
        ``se``, ``dof``, ``t``, ``p`` and ``basis``. Empty when no unit was measured in two runs.

    Raises:
        ValueError: if ``df`` lacks the TrialRow columns, or ``level`` or ``method`` is unknown.

    Example:
        >>> tests = replication_tests(load_results("runs/a", "runs/b"), "ratio")  # doctest: +SKIP
    """
    check_frame(df)
    if level not in PAIRED_LEVELS:
        raise ValueError(f"`level` must be one of {list(PAIRED_LEVELS)}; got {level!r}")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}")
    if "onnx_sha256" not in df.columns or "run_id" not in df.columns:
        raise ValueError("`df` needs the TrialRow columns `onnx_sha256` and `run_id`")
    if method == "paired":
        return paired_tests(df, level, channels=channels, engine_pairs=engine_pairs)
    if level == "B":
        raise ValueError("`level` 'B' needs method='paired' (B is a paired four-cell contrast)")
    ok = with_input_shape(ok_trials(df))
    key = unit_columns()
    rows: list[dict] = []
    if level == "cell":
        for values, sub in ok.groupby(key, sort=True, dropna=False):
            runs = {r: np.log(s.throughput.to_numpy(float)) for r, s in sub.groupby("run_id")}
            unit = dict(zip(key, values))
            for a, b in itertools.combinations(sorted(runs), 2):
                rows.append(_test_row(unit, a, b, [runs[a], runs[b]], [1, -1]))
    else:
        rest = [c for c in key if c != "engine"]
        for values, sub in ok.groupby(rest, sort=True, dropna=False):
            by = {
                (e, r): np.log(s.throughput.to_numpy(float))
                for (e, r), s in sub.groupby(["engine", "run_id"])
            }
            engines = sorted({e for e, _ in by})
            for ea, eb in itertools.combinations(engines, 2):
                both = sorted({r for e, r in by if e == ea} & {r for e, r in by if e == eb})
                unit = {**dict(zip(rest, values)), "engine_a": ea, "engine_b": eb}
                for a, b in itertools.combinations(both, 2):
                    samples = [by[ea, a], by[eb, a], by[ea, b], by[eb, b]]
                    rows.append(_test_row(unit, a, b, samples, [1, -1, -1, 1]))
    rows = [r for r in rows if r is not None]
    columns = (
        key if level == "cell" else [c for c in key if c != "engine"] + ["engine_a", "engine_b"]
    )
    columns += list(TEST_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def replication_summary(
    tests: pd.DataFrame,
    level: str,
    *,
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> ReplicationSummary:
    """Share of :func:`replication_tests` rejecting at ``alpha``, its CI, and the CI inflation needed.

    Example:
        >>> s = replication_summary(replication_tests(df, "cell"), "cell")  # doctest: +SKIP
        >>> s.rejected, s.inflation  # doctest: +SKIP
    """
    alpha = _check_alpha(alpha)
    confidence = check_confidence(confidence)
    if level not in PAIRED_LEVELS:
        raise ValueError(f"`level` must be one of {list(PAIRED_LEVELS)}; got {level!r}")
    nan = math.nan
    if tests.empty:
        note = "no unit was measured in two runs: nothing to compare"
        return ReplicationSummary(level, 0, 0, 0, alpha, nan, nan, nan, nan, nan, note)
    unit_keys = [c for c in tests.columns if c not in TEST_COLUMNS]
    unit_id = tests[unit_keys].astype(str).agg("|".join, axis=1)
    reject = (tests.p < alpha).to_numpy()
    per_unit = (
        pd.DataFrame({"unit": unit_id, "reject": reject})
        .groupby("unit")
        .reject.agg(["sum", "size"])
    )
    k = np.abs(tests.t.to_numpy()) / scipy.stats.t.ppf(1 - alpha / 2, tests.dof.to_numpy())
    inflation = max(1.0, float(np.quantile(k, 1 - alpha, method="higher")))
    low = high = nan
    note = ""
    if len(per_unit) >= 2:
        res = scipy.stats.bootstrap(
            (per_unit["sum"].to_numpy(float), per_unit["size"].to_numpy(float)),
            lambda r, n, axis=-1: r.sum(axis=axis) / n.sum(axis=axis),
            paired=True,
            vectorized=True,
            confidence_level=confidence,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    else:
        note = "one unit: no bootstrap CI"
    runs = len(set(tests.run_a) | set(tests.run_b))
    return ReplicationSummary(
        level=level,
        units=len(per_unit),
        runs=runs,
        tests=len(tests),
        alpha=alpha,
        rejected=float(reject.mean()),
        rejected_low=low,
        rejected_high=high,
        inflation=inflation,
        median_dof=float(tests.dof.median()),
        note=note,
    )
