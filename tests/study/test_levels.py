"""Tests of the replicate-level estimator (study.stats.paired.contrast, study.stats.levels):
round keys that include the run and the replicate, the t over replicates or runs against scipy,
crashed replicates, the wiring into channels and ratios, and coverage simulations with a process
and a run effect, where the old round-only CI under-covers and the new one is nominal."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from study.records.schema import SCHEMA_VERSION, TrialRow, upgrade_trial
from study.stats import channel_bias, contrast, engine_comparison, paired_contrast, round_values
from study.stats.levels import nested_estimate
from tests.study._nested import B_WEIGHTS, nested_trials
from tests.study.test_channels import PROFILE, channel_trials

MU = [4.6, 4.5, 4.4, 4.2]  # true log B = 4.6 - 4.5 - 4.4 + 4.2 = -0.1
TRUE_LOG_B = MU[0] - MU[1] - MU[2] + MU[3]
UNIT = ["machine", "run_id", "replicate"]


def _replicate_means(d: pd.Series) -> pd.DataFrame:
    """Mean d_r of every replicate: one row per machine, run_id, replicate."""
    return d.groupby(level=UNIT, sort=True).mean().rename("estimate").reset_index()


# --- schema ---------------------------------------------------------------------------------------


def test_schema_4_has_replicate_after_round_and_old_rows_get_replicate_0():
    fields = list(TrialRow.__dataclass_fields__)
    assert SCHEMA_VERSION == 4 and fields.index("replicate") == fields.index("round") + 1
    assert upgrade_trial({"schema_version": 3, "cell": "c"})["replicate"] == 0
    assert upgrade_trial({"schema_version": 2, "cell": "c", "trial": 1})["replicate"] == 0
    row = {"schema_version": 4, "replicate": 2}
    assert upgrade_trial(row) is row


# --- round keys -----------------------------------------------------------------------------------


def test_merged_runs_are_never_pooled_round_by_round():
    # Two runs of one machine with the same block name and round numbers: the old key (machine,
    # block, round) averaged run A's round r with run B's round r into one round.
    df = nested_trials(MU, runs=2, rounds=6, sd_run=0.05, seed=3).assign(machine="m0")
    d = round_values(df, B_WEIGHTS)
    assert len(d) == 12 and d.index.is_unique
    assert set(d.index.get_level_values("run_id")) == {"run0", "run1"}
    for run in ("run0", "run1"):
        alone = round_values(df[df["run_id"] == run], B_WEIGHTS)
        assert d.xs(run, level="run_id").to_numpy() == pytest.approx(alone.to_numpy(), rel=1e-12)
    merged = contrast(df, B_WEIGHTS)
    per_run = [contrast(df[df["run_id"] == r], B_WEIGHTS).estimate for r in ("run0", "run1")]
    assert (merged.level, merged.n_runs, merged.dof) == ("run", 2, 1.0)
    assert merged.estimate == pytest.approx(np.mean(per_run), rel=1e-12)
    ref = scipy.stats.ttest_1samp(per_run, 0.0).confidence_interval()
    assert (merged.ci_low, merged.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_replicates_of_one_run_are_keyed_apart_too():
    df = nested_trials(MU, replicates=3, rounds=4, seed=4)
    d = round_values(df, B_WEIGHTS)
    assert len(d) == 12 and sorted(set(d.index.get_level_values("replicate"))) == [0, 1, 2]


# --- the estimator against scipy ------------------------------------------------------------------


def test_one_replicate_keeps_the_round_paired_t_and_labels_it():
    df = nested_trials(MU, rounds=9, seed=5)
    r, old = contrast(df, B_WEIGHTS), paired_contrast(df, B_WEIGHTS)
    ref = scipy.stats.ttest_1samp(round_values(df, B_WEIGHTS), 0.0)
    assert (r.method, r.level, r.n_replicates, r.n_runs, r.dof) == ("paired", "round", 1, 1, 8)
    assert "paired-rounds" in r.note and "ignores process and run variance" in r.note
    assert (r.estimate, r.ci_low, r.ci_high) == (old.estimate, old.ci_low, old.ci_high)
    assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-10)


def test_replicates_of_one_run_give_a_t_over_the_replicate_means():
    df = nested_trials(MU, replicates=4, rounds=6, sd_process=0.02, seed=6)
    r = contrast(df, B_WEIGHTS, confidence=0.9)
    means = _replicate_means(round_values(df, B_WEIGHTS))["estimate"]
    ref = scipy.stats.ttest_1samp(means, 0.0)
    ci = ref.confidence_interval(confidence_level=0.9)
    assert (r.method, r.level, r.n_replicates, r.n_runs, r.dof) == ("paired", "replicate", 4, 1, 3)
    assert r.estimate == pytest.approx(means.mean(), rel=1e-12)
    assert r.se == pytest.approx(means.std(ddof=1) / 2, rel=1e-12)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.n_rounds == 24 and r.n_trials == 96 and set(r.components) >= {"round", "replicate"}
    assert "paired-rounds" not in r.note


def test_runs_are_the_units_when_there_are_several():
    df = nested_trials(MU, runs=3, replicates=2, rounds=5, sd_process=0.02, sd_run=0.02, seed=7)
    r = contrast(df, B_WEIGHTS)
    reps = _replicate_means(round_values(df, B_WEIGHTS))
    runs = reps.groupby("run_id")["estimate"].mean()
    ci = scipy.stats.ttest_1samp(runs, 0.0).confidence_interval()
    assert (r.level, r.n_replicates, r.n_runs, r.dof) == ("run", 6, 3, 2.0)
    assert r.estimate == pytest.approx(runs.mean(), rel=1e-12)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert set(r.components) == {"round", "replicate", "run"}


def test_cells_sharing_no_block_are_unpaired_within_each_replicate():
    df = nested_trials(MU, replicates=3, rounds=5, sd_process=0.02, seed=8)
    df["block"] = "own-" + df["cell"]
    r = contrast(df, B_WEIGHTS)
    logs = df.assign(log=np.log(df["throughput"]))
    means = logs.groupby(["replicate", "cell"])["log"].mean().unstack()
    per_rep = means[list(B_WEIGHTS)].to_numpy() @ np.array(list(B_WEIGHTS.values()))
    ci = scipy.stats.ttest_1samp(per_rep, 0.0).confidence_interval()
    assert (r.method, r.level, r.dof, r.n_rounds) == ("unpaired", "replicate", 2.0, 0)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_a_crashed_replicate_contributes_nothing_and_is_counted():
    df = nested_trials(MU, replicates=3, rounds=5, sd_process=0.02, seed=9)
    crashed = (df["replicate"] == 2) & (df["cell"] == "c1")
    failure = df.loc[crashed].iloc[[0]].assign(status="failed", throughput=math.nan, round=-1)
    df = pd.concat([df.loc[~crashed], failure], ignore_index=True)
    r = contrast(df, B_WEIGHTS)
    kept = df[df["replicate"] < 2]
    means = _replicate_means(round_values(kept, B_WEIGHTS))["estimate"]
    assert (r.level, r.n_replicates, r.dof) == ("replicate", 2, 1.0)
    assert r.estimate == pytest.approx(means.mean(), rel=1e-12) and math.isfinite(r.ci_low)
    assert "rests on 2 of 3 replicates (none from e0/run0/2)" in r.note
    # one usable replicate left: an estimate, but no CI from its rounds alone
    only = df[(df["replicate"] != 1)]
    one = contrast(only, B_WEIGHTS)
    assert math.isfinite(one.estimate) and math.isnan(one.se) and math.isnan(one.ci_low)
    assert one.n_replicates == 1 and "rests on 1 of 2" in one.note


def test_nested_estimate_uses_the_top_replicated_level():
    units = pd.DataFrame(
        {"machine": ["a", "a", "a", "b"], "run_id": ["r0", "r0", "r1", "r0"],
         "replicate": [0, 1, 0, 0], "estimate": [0.1, 0.3, 0.5, 0.0]}
    )  # fmt: skip
    e = nested_estimate(units)
    # machine a: runs (0.1 + 0.3) / 2 = 0.2 and 0.5 -> 0.35; machine b: 0.0
    assert (e.level, e.n_units, e.n_runs, e.n_replicates) == ("machine", 2, 3, 4)
    assert e.estimate == pytest.approx(0.175) and e.dof == 1
    assert nested_estimate(units[units["machine"] == "a"]).level == "run"
    with pytest.raises(ValueError, match="lacks the column"):
        nested_estimate(units.drop(columns="run_id"))


# --- channels and ratios use it -------------------------------------------------------------------


def _replicated_channel_frame(k: int = 3) -> pd.DataFrame:
    frames = [pd.DataFrame(channel_trials(seed=40 + i, n_rounds=6)).assign(replicate=i)
              for i in range(k)]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_channel_bias_combines_replicates():
    df = _replicated_channel_frame()
    arch, pooled = channel_bias(df, PROFILE, "deepsparse", "openvino")
    assert (arch.level, arch.n_replicates, arch.n_runs, arch.dof) == ("replicate", 3, 1, 2.0)
    slots = df.assign(_slot=np.where(df["engine"] == "deepsparse", "N", "D"))
    slots["_slot"] += np.where(df["profile"] == "vendor", "_a", "_b")
    slots = slots[(df["pruner"] == "gmp") & df["engine"].isin(["deepsparse", "openvino"])]
    c = contrast(slots, {"N_a": 1, "D_a": -1, "N_b": -1, "D_b": 1}, key="_slot")
    assert arch.log_estimate == pytest.approx(c.estimate, rel=1e-12)
    assert arch.se == pytest.approx(c.se, rel=1e-12)
    assert (pooled.level, pooled.n_replicates, pooled.k) == ("replicate", 3, 1)


def test_engine_comparison_combines_replicates():
    df = _replicated_channel_frame()
    table = engine_comparison(df, "deepsparse", "openvino")
    assert (table["level"] == "replicate").all() and (table["dof"] == 2).all()
    assert (table["n_replicates"] == 3).all() and table["note"].str.contains("3 replicates").all()


# --- coverage -------------------------------------------------------------------------------------
# Coverage of a 95% CI over N simulated experiments has a binomial SE of sqrt(0.95 0.05 / N):
# 0.69 points at N = 1000, so the 3-point tolerance is 4.4 SE (a correct estimator fails it with
# probability ~1e-5) while an estimator off by 3 points or more is caught about half the time or
# more. Under-coverage below 80% needs far fewer experiments (SE 1.6 points at N = 200).


def _covers(low: np.ndarray, high: np.ndarray) -> float:
    """Share of the intervals [low, high] that hold the true log B."""
    return float(np.mean((low <= TRUE_LOG_B) & (high >= TRUE_LOG_B)))


def _old_round_only(d: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """CI of the round-only estimator per experiment (the t over all its d_r: scipy)."""
    groups = [g.to_numpy() for _, g in d.groupby(level="machine", sort=True)]
    res = scipy.stats.ttest_1samp(np.stack(groups), 0.0, axis=1)
    ci = res.confidence_interval()
    return ci.low, ci.high


def _new_estimator(d: pd.Series) -> list:
    units = _replicate_means(d)
    return [nested_estimate(g) for _, g in units.groupby("machine", sort=True)]


def test_round_only_ci_under_covers_with_a_process_effect():
    # One replicate of 40 rounds, a per-cell process effect of sd 1% per cell: B's error has
    # sd sqrt(4 * 0.01^2 + 4 * 0.02^2 / 40) = 0.021, the round-only SE sees only 0.0063 of it.
    df = nested_trials(MU, experiments=200, rounds=40, sd_process=0.01, seed=11)
    d = round_values(df, B_WEIGHTS)
    low, high = _old_round_only(d)
    coverage = _covers(low, high)
    one = contrast(df[df["machine"] == "e0"], B_WEIGHTS)
    assert (one.ci_low, one.ci_high) == pytest.approx((low[0], high[0]), rel=1e-10)
    assert coverage < 0.80, coverage


def test_replicate_ci_is_nominal_and_no_wider_than_needed():
    # One run of 5 replicates x 8 rounds with the same process effect.
    k, rounds, sd_p, sd_e = 5, 8, 0.01, 0.02
    df = nested_trials(MU, experiments=1000, replicates=k, rounds=rounds, sd_process=sd_p,
                       sd_noise=sd_e, seed=12)  # fmt: skip
    d = round_values(df, B_WEIGHTS)
    results = _new_estimator(d)
    assert {(r.level, r.dof) for r in results} == {("replicate", k - 1)}
    covered = [r.ci_low <= TRUE_LOG_B <= r.ci_high for r in results]
    coverage = float(np.mean(covered))
    var_rep = 4 * sd_p**2 + 4 * sd_e**2 / rounds  # variance of one replicate's mean d_r
    oracle = scipy.stats.t.ppf(0.975, k - 1) * math.sqrt(var_rep / k)
    width = float(np.mean([(r.ci_high - r.ci_low) / 2 for r in results]))
    # E[s] = c4 sigma: the mean half-width is c4(5) = 0.94 of the oracle's
    assert abs(coverage - 0.95) <= 0.03, coverage
    assert abs(width / oracle - 1) <= 0.15, width / oracle
    old_low, old_high = _old_round_only(d)  # the rounds of all 5 replicates, t(39)
    old = _covers(old_low, old_high)
    assert old < 0.85, old
    first = contrast(df[df["machine"] == "e0"], B_WEIGHTS)
    assert (first.ci_low, first.ci_high) == pytest.approx(
        (results[0].ci_low, results[0].ci_high), rel=1e-12
    )


def test_run_ci_is_nominal_with_a_run_effect():
    # 4 runs x 3 replicates x 6 rounds; a run effect per cell per run that no replicate sees.
    runs, k, rounds, sd_u, sd_p, sd_e = 4, 3, 6, 0.01, 0.01, 0.02
    df = nested_trials(MU, experiments=1000, runs=runs, replicates=k, rounds=rounds,
                       sd_run=sd_u, sd_process=sd_p, sd_noise=sd_e, seed=13)  # fmt: skip
    results = _new_estimator(round_values(df, B_WEIGHTS))
    assert {(r.level, r.dof) for r in results} == {("run", runs - 1)}
    coverage = float(np.mean([r.ci_low <= TRUE_LOG_B <= r.ci_high for r in results]))
    var_run = 4 * sd_u**2 + 4 * sd_p**2 / k + 4 * sd_e**2 / (k * rounds)
    oracle = scipy.stats.t.ppf(0.975, runs - 1) * math.sqrt(var_run / runs)
    width = float(np.mean([(r.ci_high - r.ci_low) / 2 for r in results]))
    assert abs(coverage - 0.95) <= 0.03, coverage
    assert abs(width / oracle - 1) <= 0.15, width / oracle  # c4(4) = 0.92


def test_cell_table_uses_the_replicates_when_a_cell_has_several():
    from study.stats import cell_table, geometric_ci

    df = nested_trials(MU[:2], replicates=3, rounds=4, sd_process=0.02, seed=14)
    table = cell_table(df).set_index("cell")
    c = contrast(df, {"c1": 1.0})
    assert c.level == "replicate" and c.dof == 2
    row = table.loc["c1"]
    assert (row["throughput"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (math.exp(c.estimate), math.exp(c.ci_low), math.exp(c.ci_high)), rel=1e-12
    )
    one = cell_table(df[df["replicate"] == 0]).set_index("cell").loc["c1"]  # unchanged
    ref = geometric_ci(df.loc[(df["replicate"] == 0) & (df["cell"] == "c1"), "throughput"])
    assert (one["ci_low"], one["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-12)
