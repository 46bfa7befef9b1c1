"""Tests of study.stats.components (Kalibera & Jones's variance components, checked against
statsmodels REML) and study.stats.allocation (K&J's repetition count, checked by brute force)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from study.stats import contrast, round_values
from study.stats.allocation import allocate, kj_rounds
from study.stats.components import kj_components
from study.stats.decompose import cell_components, contrast_components
from tests.study._nested import B_WEIGHTS, nested_trials

MU = [4.6, 4.5, 4.4, 4.2]


@pytest.fixture(autouse=True)
def _quiet_statsmodels():
    """statsmodels warns 'MLE may be on the boundary' even for interior fits; not a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _reml(d: pd.Series) -> dict[str, float]:
    """statsmodels MixedLM REML fit of run / replicate / round components, written out here."""
    frame = pd.DataFrame({
        "y": d.to_numpy(),
        "run": d.index.get_level_values("run_id").astype(str),
        "rep": [f"{u}/{k}" for u, k in zip(d.index.get_level_values("run_id"),
                                          d.index.get_level_values("replicate"))],
    })  # fmt: skip
    if frame["run"].nunique() > 1:
        fit = sm.MixedLM.from_formula("y ~ 1", groups="run", re_formula="1",
                                      vc_formula={"rep": "0 + C(rep)"}, data=frame).fit(reml=True)  # fmt: skip
        return {"round": fit.scale, "replicate": fit.vcomp[0], "run": fit.cov_re.iloc[0, 0]}
    exog = np.ones((len(frame), 1))
    fit = sm.MixedLM(frame["y"].to_numpy(), exog, groups=frame["rep"].to_numpy()).fit(reml=True)
    return {"round": fit.scale, "replicate": float(np.asarray(fit.cov_re)[0, 0])}


# --- variance components --------------------------------------------------------------------------


def test_kj_components_equal_statsmodels_reml_on_balanced_three_level_data():
    # One cell, 8 runs x 4 replicates x 6 rounds. On balanced data REML equals the ANOVA
    # (K&J) estimates when those are positive; the truth here is round 0.1^2 + 0.01^2 (the
    # drift does not cancel in a single cell), replicate 0.02^2, run 0.03^2.
    df = nested_trials([4.6], runs=8, replicates=4, rounds=6, sd_run=0.03, sd_process=0.02,
                       sd_drift=0.01, sd_noise=0.01, seed=21)  # fmt: skip
    d = round_values(df, {"c0": 1.0})
    kj = kj_components(d)
    assert all(v > 0 for v in kj.values())
    assert kj == pytest.approx(_reml(d), rel=2e-3)
    c = contrast_components(df, {"c0": 1.0})
    assert (c.method, c.balanced, c.n_runs, c.n_replicates, c.n_rounds) == ("kj", True, 8, 32, 192)
    assert c.as_dict() == pytest.approx(kj, rel=1e-12)


def test_kj_components_of_a_contrast_equal_reml_with_one_run():
    df = nested_trials(MU, replicates=12, rounds=8, sd_process=0.02, seed=22)
    d = round_values(df, B_WEIGHTS)
    kj = kj_components(d)
    ref = _reml(d)
    assert math.isnan(kj["run"])
    assert (kj["round"], kj["replicate"]) == pytest.approx(
        (ref["round"], ref["replicate"]), rel=2e-3
    )
    assert contrast(df, B_WEIGHTS).components == pytest.approx(kj, nan_ok=True)


def test_kj_formula_by_hand_on_a_tiny_design():
    # 2 runs x 2 replicates x 2 rounds: S1 = mean within-replicate variance, S2 = mean variance of
    # replicate means within a run, S3 = variance of the run means; T2 = S2 - S1/2, T3 = S3 - S2/2.
    y = np.array([1.0, 2.0, 4.0, 4.0, 0.0, 2.0, 3.0, 7.0])
    index = pd.MultiIndex.from_product([["m"], ["a", "b"], [0, 1], ["b0"], [0, 1]],
                                       names=["machine", "run_id", "replicate", "block", "round"])  # fmt: skip
    kj = kj_components(pd.Series(y, index=index))
    s1 = np.mean([0.5, 0.0, 2.0, 8.0])
    s2 = np.mean([np.var([1.5, 4.0], ddof=1), np.var([1.0, 5.0], ddof=1)])
    s3 = np.var([2.75, 3.0], ddof=1)
    assert kj == pytest.approx({"round": s1, "replicate": s2 - s1 / 2, "run": s3 - s2 / 2})


def test_unbalanced_data_use_reml_and_cell_components_cover_every_cell():
    df = nested_trials(MU, replicates=6, rounds=6, sd_process=0.02, seed=23)
    df = df[~((df["replicate"] == 0) & (df["round"] >= 3))]  # replicate 0 keeps 3 rounds
    table = cell_components(df)
    assert sorted(table["cell"]) == ["c0", "c1", "c2", "c3"]
    assert (table["method"] == "reml").all() and not table["balanced"].any()
    row = table.set_index("cell").loc["c1"]
    ref = _reml(round_values(df, {"c1": 1.0}))
    assert (row["var_round"], row["var_replicate"]) == pytest.approx(
        (ref["round"], ref["replicate"]), rel=1e-6
    )
    with pytest.raises(ValueError, match="`method` must be one of .*'anova'"):
        cell_components(df, method="anova")


# --- allocation -----------------------------------------------------------------------------------


def _cases(seed: int, n: int, low: float, high: float):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        var_round, var_rep = 10 ** rng.uniform(-4, -2, 2)
        c_round, c_rep = 10 ** rng.uniform(-0.5, 0.5), 10 ** rng.uniform(0.5, 2)
        yield (
            var_round,
            var_rep,
            c_round,
            c_rep,
            (c_rep + 2 * c_round) * 10 ** rng.uniform(low, high),
        )


def _grid(budget, c_round, c_rep, min_rounds=2):
    """Every affordable (n >= 2, r >= min_rounds) with n as large as the budget allows."""
    r = np.arange(min_rounds, int(budget / (2 * c_round)) + 2)
    n = np.floor(budget / (c_rep + r * c_round) + 1e-9)
    keep = n >= 2
    return n[keep], r[keep]


def test_kj_rounds_minimise_the_variance_per_second_by_brute_force():
    # Continuous relaxation: with n = budget / (c_rep + r c_round), V(r) is proportional to
    # (c_rep + r c_round)(T_rep + T_round / r); its minimum on a fine grid of r is K&J's root.
    for var_round, var_rep, c_round, c_rep, _ in _cases(31, 40, 1.5, 2.5):
        r = np.linspace(0.05, 400.0, 400_000)
        best = r[np.argmin((c_rep + r * c_round) * (var_rep + var_round / r))]
        root = math.sqrt(c_rep / c_round * var_round / var_rep)
        assert best == pytest.approx(root, abs=2e-3) or root > 400
        assert kj_rounds(var_round, var_rep, c_round, c_rep) == max(1, math.ceil(root))


def test_kj_allocation_is_near_the_brute_force_optimum_for_large_budgets():
    # Integer n and r cost a little: within 8% of the best variance once the budget buys ~30
    # replicates or more (measured worst: 5.9% over 200 random cases).
    for var_round, var_rep, c_round, c_rep, budget in _cases(32, 60, 1.5, 2.5):
        a = allocate(var_round, var_rep, cost_round=c_round, cost_replicate=c_rep,
                     budget=budget, objective="variance")  # fmt: skip
        n, r = _grid(budget, c_round, c_rep)
        best = np.min(var_rep / n + var_round / (n * r))
        assert best <= a.variance <= 1.08 * best
        assert a.cost <= budget and a.replicates * (c_rep + a.rounds * c_round) == a.cost


def test_width_objective_is_the_brute_force_narrowest_ci():
    for var_round, var_rep, c_round, c_rep, budget in _cases(33, 60, 0.3, 2.0):
        a = allocate(var_round, var_rep, cost_round=c_round, cost_replicate=c_rep, budget=budget)
        n, r = _grid(budget, c_round, c_rep)
        widths = scipy.stats.t.ppf(0.975, n - 1) * np.sqrt(var_rep / n + var_round / (n * r))
        assert a.half_width == pytest.approx(widths.min(), rel=1e-12)
        assert a.dof == a.replicates - 1 and a.replicates >= 2 and a.rounds >= 2


def test_fixed_replicates_take_the_most_rounds_the_budget_allows():
    a = allocate(0.04, 0.01, cost_round=1.0, cost_replicate=30.0, budget=600.0, replicates=4)
    assert (a.replicates, a.rounds) == (4, 120) and "fixed" in a.note


def test_allocation_refuses_what_it_cannot_do_with_the_reason():
    kw = dict(cost_round=1.0, cost_replicate=30.0, budget=600.0)
    with pytest.raises(ValueError, match=r"`replicates` must be an integer >= 2 .*got 1"):
        allocate(0.04, 0.01, **kw, replicates=1)
    with pytest.raises(ValueError, match=r"`budget` must be >= 64 s .*got 50.0"):
        allocate(0.04, 0.01, **{**kw, "budget": 50.0})
    with pytest.raises(ValueError, match=r"`budget` must be >= 160 s \(5 replicates"):
        allocate(0.04, 0.01, **{**kw, "budget": 100.0}, replicates=5)
    with pytest.raises(ValueError, match=r"`cost_round` must be a finite number > 0; got -1"):
        allocate(0.04, 0.01, **{**kw, "cost_round": -1})
    with pytest.raises(ValueError, match="`objective` must be one of"):
        allocate(0.04, 0.01, **kw, objective="cheapest")
    with pytest.raises(ValueError, match="must not both be 0"):
        allocate(0.0, -0.001, **kw)
    clipped = allocate(0.04, -0.001, **kw)  # a negative unbiased estimate reads as 0
    assert "var_replicate" in clipped.note and clipped.variance > 0


# --- python -m study.variance ---------------------------------------------------------------------


def test_variance_cli_prints_components_and_the_allocation(tmp_path, capsys):
    from study.variance import main, round_seconds

    df = nested_trials([4.6, 4.5], runs=2, replicates=3, rounds=4, sd_process=0.02, seed=24)
    df["engine"] = np.where(df["cell"] == "c0", "openvino", "deepsparse")
    order = df.sort_values(["run_id", "replicate", "round", "cell"]).index
    start = pd.Timestamp("2026-12-01T00:00:00Z")
    df.loc[order, "timestamp"] = [(start + pd.Timedelta(seconds=1.5 * i)).isoformat()
                                  for i in range(len(df))]  # fmt: skip
    assert round_seconds(df) == pytest.approx(3.0)  # two cells of 1.5 s per round
    path = tmp_path / "bench.jsonl"
    df.to_json(path, orient="records", lines=True)
    assert main([str(path), "--budget", "300", "--replicate-cost", "20", "--csv",
                 str(tmp_path / "v.csv")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "round 3 s" in out and "engine ratios" in out and "deepsparse" in out
    table = pd.read_csv(tmp_path / "v.csv")
    assert sorted(table["kind"]) == ["cell", "cell", "ratio"] and table["allocation"].notna().all()
    assert main([str(path), "--budget", "300"]) == 2
    assert "--replicate-cost" in capsys.readouterr().err
