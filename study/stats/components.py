"""Variance components of nested benchmark data: Kalibera & Jones's estimators and REML.

A benchmark result varies at nested levels (Kalibera & Jones, "Rigorous benchmarking in
reasonable time", ISMM 2013): rounds inside a replicate (one set of worker processes, one engine
compile), replicates inside a run, runs inside a machine. With ``y`` the per-round value of a
cell's log throughput or of a contrast's ``d_r``, the model is

    y = mu + a_run + b_replicate + e_round,    Var = T_run + T_replicate + T_round.

On balanced data (``n_1`` rounds in every replicate, ``n_2`` replicates in every run), with
``S_1^2`` the mean over replicates of the sample variance of their rounds, ``S_2^2`` the mean over
runs of the sample variance of their replicates' means and ``S_3^2`` the sample variance of the
runs' means, Kalibera & Jones's unbiased estimators are

    T_1 = S_1^2,    T_i = S_i^2 - S_{i-1}^2 / n_{i-1}    (i >= 2)

(the ANOVA method of moments; a T_i can come out negative when that level's variance is small).
REML (:func:`reml_components`, ``statsmodels`` MixedLM with a random intercept per run and a
nested variance component per replicate) is the cross-check, and the estimator for unbalanced data;
on balanced data with non-negative moment estimates the two agree.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.stats._rounds import HIERARCHY

__all__ = [
    "LEVEL_OF",
    "VarianceComponents",
    "kj_components",
    "reml_components",
]

# The index levels above the round, top first, and the name of each level's variance.
LEVEL_OF: dict[str, str] = {"machine": "machine", "run_id": "run", "replicate": "replicate"}
METHODS = ("auto", "kj", "reml")


@dataclass(frozen=True)
class VarianceComponents:
    """Variance of the per-round values at each level (``NaN`` where a level is not replicated)."""

    round: float  # between rounds within a replicate
    replicate: float  # between replicates (fresh processes) within a run
    run: float  # between runs of one machine
    method: str  # "kj" (Kalibera & Jones, balanced) or "reml" (statsmodels MixedLM)
    balanced: bool  # every replicate has the same rounds, every run the same replicates
    n_runs: int  # runs
    n_replicates: int  # replicates, summed over runs
    n_rounds: int  # rounds, summed over replicates
    kj: dict = field(default_factory=dict)  # the K&J estimates {"round", "replicate", "run"}
    reml: dict = field(default_factory=dict)  # the REML estimates (empty if not fitted)
    note: str = ""  # why a component is NaN, a REML convergence warning, negative estimates

    def as_dict(self) -> dict[str, float]:
        """``{"round": ..., "replicate": ..., "run": ...}``."""
        return {"round": self.round, "replicate": self.replicate, "run": self.run}


def _nested_frame(y: pd.Series) -> pd.DataFrame:
    """A frame with ``run``, ``rep`` (unique over runs) and ``y`` from a HIERARCHY-indexed series."""
    names = list(y.index.names)
    missing = [n for n in ("run_id", "replicate") if n not in names]
    if missing:
        raise ValueError(f"`y` must be indexed by {list(HIERARCHY)} (and more); lacks {missing}")
    idx = y.index
    machine = idx.get_level_values("machine") if "machine" in names else np.zeros(len(y))
    if len(set(machine)) > 1:
        raise ValueError(
            f"`y` must hold one machine (components are per machine); got {sorted(set(machine))}"
        )
    run = pd.Series(idx.get_level_values("run_id").astype(str))
    rep = run + "/" + pd.Series(idx.get_level_values("replicate").astype(str))
    return pd.DataFrame({"run": run.to_numpy(), "rep": rep.to_numpy(), "y": y.to_numpy(float)})


def _counts(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rounds per replicate, replicates per run)."""
    per_rep = frame.groupby("rep", sort=False).size().to_numpy()
    per_run = frame.groupby("run", sort=False)["rep"].nunique().to_numpy()
    return per_rep, per_run


def _within(values: np.ndarray, codes: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean over groups of the sample variance within the group, the group means).

    Groups of one value have no variance and are left out of the mean (NaN if all are such).
    """
    n = np.bincount(codes)
    means = np.bincount(codes, weights=values) / n
    squares = np.bincount(codes, weights=(values - means[codes]) ** 2)
    several = n >= 2
    if not several.any():
        return math.nan, means
    return float(np.mean(squares[several] / (n[several] - 1))), means


def kj_components(y: pd.Series) -> dict[str, float]:
    """Kalibera & Jones's unbiased estimators T_round, T_replicate, T_run (module docstring).

    ``n_{i-1}`` is the mean group size, so on unbalanced data the estimates are the usual
    approximation (use :func:`reml_components` there). A level with a single unit everywhere
    (one run, or one replicate per run, or one round per replicate) gives NaN for itself.

    Args:
        y: per-round values indexed by ``run_id``, ``replicate`` (and ``machine``, one value).

    Returns:
        ``{"round": T_1, "replicate": T_2, "run": T_3}``.

    Raises:
        ValueError: if the index lacks ``run_id`` or ``replicate``, or holds several machines.

    Example:
        >>> kj_components(round_values(trials, {"c1": 1}))  # doctest: +SKIP
    """
    frame = _nested_frame(y)
    rep_code, rep_of = pd.factorize(frame["rep"].to_numpy())  # (n,), one name per replicate
    run_of_rep = pd.factorize(pd.Series(rep_of).str.rsplit("/", n=1).str[0].to_numpy())[0]
    values = frame["y"].to_numpy(dtype=float)
    s1, rep_means = _within(values, rep_code)  # mean variance of rounds within a replicate
    s2, run_means = _within(rep_means, run_of_rep)  # ... of replicate means within a run
    s3 = float(np.var(run_means, ddof=1)) if run_means.size >= 2 else math.nan
    per_rep, per_run = _counts(frame)
    t1 = s1
    t2 = s2 - s1 / float(per_rep.mean()) if math.isfinite(s1) else s2
    t3 = s3 - s2 / float(per_run.mean()) if math.isfinite(s2) else s3
    return {"round": t1, "replicate": t2, "run": t3}


def reml_components(y: pd.Series) -> tuple[dict[str, float], str]:
    """REML variance components by ``statsmodels`` MixedLM (random intercepts, nested).

    Several runs: groups = run with a random intercept (T_run) and a variance component per
    replicate within run (T_replicate); one run: groups = replicate with a random intercept. The
    residual variance is T_round. Fit with ``reml=True``; a convergence or boundary warning is
    returned as the note (the estimates are still given).

    Args:
        y: per-round values indexed by ``run_id``, ``replicate`` (and ``machine``, one value).

    Returns:
        (``{"round", "replicate", "run"}``, note); NaN for a level that is not replicated.

    Raises:
        ValueError: if the index lacks ``run_id`` or ``replicate``, or holds several machines.
    """
    import statsmodels.api as sm  # noqa: PLC0415 (heavy import, only where REML is asked for)

    frame = _nested_frame(y)
    nan = math.nan
    n_runs, n_reps = frame["run"].nunique(), frame["rep"].nunique()
    if n_reps < 2 or len(frame) <= n_reps:
        return {"round": nan, "replicate": nan, "run": nan}, "REML needs >= 2 replicates"
    try:
        out, caught = _reml_fit(sm, frame, n_runs)
    except (np.linalg.LinAlgError, ValueError) as exc:  # a singular design: no estimate
        return {"round": nan, "replicate": nan, "run": nan}, f"REML failed: {exc}"[:200]
    notes = sorted({f"REML: {w.message}".splitlines()[0][:160] for w in caught})
    return out, "; ".join(notes)


def _reml_fit(sm, frame: pd.DataFrame, n_runs: int) -> tuple[dict[str, float], list]:
    """The MixedLM fit of :func:`reml_components` and the warnings it raised."""
    nan = math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if n_runs >= 2:
            model = sm.MixedLM.from_formula(
                "y ~ 1", groups="run", re_formula="1", vc_formula={"rep": "0 + C(rep)"},
                data=frame,
            )  # fmt: skip
            fit = model.fit(reml=True)
            out = {
                "round": float(fit.scale),
                "replicate": float(np.asarray(fit.vcomp)[0]),
                "run": float(np.asarray(fit.cov_re)[0, 0]),
            }
        else:
            exog = np.ones((len(frame), 1))
            fit = sm.MixedLM(frame["y"].to_numpy(), exog, groups=frame["rep"].to_numpy()).fit(
                reml=True
            )
            out = {
                "round": float(fit.scale),
                "replicate": float(np.asarray(fit.cov_re)[0, 0]),
                "run": nan,
            }
    return out, list(caught)


def _components(y: pd.Series, method: str) -> VarianceComponents:
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}")
    frame = _nested_frame(y) if len(y) else pd.DataFrame(columns=["run", "rep", "y"])
    per_rep, per_run = _counts(frame) if len(frame) else (np.array([0]), np.array([0]))
    balanced = bool(np.ptp(per_rep) == 0 and np.ptp(per_run) == 0)
    nan = math.nan
    kj = kj_components(y) if len(y) else {"round": nan, "replicate": nan, "run": nan}
    reml, note = {}, ""
    if method == "reml" or (method == "auto" and not balanced):
        reml, note = reml_components(y)
    chosen = reml if reml else kj
    used = "reml" if reml else "kj"
    negative = [k for k, v in kj.items() if v < 0]
    if negative:
        extra = f"K&J estimate(s) < 0 for {negative}: that level's variance is small (read as 0)"
        note = "; ".join(n for n in (note, extra) if n)
    return VarianceComponents(
        **chosen, method=used, balanced=balanced, n_runs=int(frame["run"].nunique()),
        n_replicates=int(frame["rep"].nunique()), n_rounds=len(frame), kj=kj, reml=reml,
        note=note,
    )  # fmt: skip
