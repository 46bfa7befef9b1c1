"""Tests of study.stats.paired: round-paired contrasts against scipy, a hand computation and a
simulation of the blocked design under a strong common drift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from study.records.schema import TrialRow, upgrade_trial
from study.stats import contrast, paired_contrast, round_values, welch_contrast

_TEMPLATE = TrialRow(
    run_id="sim", machine="m0", cell="", trial=0, model="resnet50", pruner="gmp",
    exporter="torch", sparsity=0.9, onnx_path="models/x.onnx", onnx_sha256="0" * 64,
    engine="openvino", precision="f32", scenario="sync", batch_size=1, threads=2, items=1,
    seconds=1.0, throughput=1.0, calls=1, profile="uniform", mask="unstructured",
).to_dict()  # fmt: skip


def trial_frame(cells, rounds, throughputs, blocks="b0") -> pd.DataFrame:
    """TrialRow-shaped ok rows: one per (cell, round, throughput), in block(s) ``blocks``."""
    n = len(cells)
    df = pd.DataFrame([_TEMPLATE]).iloc[np.zeros(n, dtype=int)].reset_index(drop=True)
    df["cell"], df["round"] = list(cells), np.asarray(rounds, dtype=int)
    df["throughput"], df["block"] = np.asarray(throughputs, dtype=float), blocks
    df["trial"] = df.groupby("cell").cumcount()
    return df


def ar1_drift(rng: np.random.Generator, n: int, rho: float, sd: float) -> np.ndarray:
    """A stationary AR(1) path of length n: x_t = rho x_{t-1} + e_t, sd(x_t) = sd."""
    x = np.empty(n)
    x[0] = rng.normal(0.0, sd)
    innovations = rng.normal(0.0, sd * math.sqrt(1.0 - rho**2), n)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + innovations[t]
    return x


def counterbalanced_orders(rng: np.random.Generator, n_cells: int, n_rounds: int) -> list:
    """The harness's round orders: a seeded permutation, odd rounds the previous one reversed."""
    orders = []
    for r in range(n_rounds):
        orders.append(rng.permutation(n_cells) if r % 2 == 0 else orders[-1][::-1])
    return orders


def drifting_block(rng, log_means, n_rounds=10, rho=0.99, sd=0.15, noise=0.03):
    """One block: every cell once per round in counterbalanced order, log x = mean + drift + e.

    Returns (cells, rounds, throughputs) with the drift evaluated at each trial's position in
    time (round * n_cells + position in the round)."""
    n_cells = len(log_means)
    drift = ar1_drift(rng, n_cells * n_rounds, rho, sd)
    cells, rounds, logs = [], [], []
    for r, order in enumerate(counterbalanced_orders(rng, n_cells, n_rounds)):
        for position, c in enumerate(order):
            cells.append(f"c{c}")
            rounds.append(r)
            logs.append(log_means[c] + drift[r * n_cells + position] + rng.normal(0.0, noise))
    return cells, rounds, np.exp(logs)


B_WEIGHTS = {"c0": 1.0, "c1": -1.0, "c2": -1.0, "c3": 1.0}


def _two_cells(seed=0, n_rounds=8):
    rng = np.random.default_rng(seed)
    cells, rounds, x = drifting_block(rng, [np.log(120.0), np.log(100.0)], n_rounds=n_rounds)
    return trial_frame(cells, rounds, x)


# --- the per-round values -----------------------------------------------------------------------


def test_round_values_equal_a_hand_computation_with_repeats_and_gaps():
    # round 0: both cells; round 1: c0 twice (mean of logs); round 2: c1 missing (dropped)
    df = trial_frame(["c0", "c1", "c0", "c0", "c1", "c0"], [0, 0, 1, 1, 1, 2],
                     [110.0, 100.0, 120.0, 90.0, 95.0, 130.0])  # fmt: skip
    d = round_values(df, {"c0": 1, "c1": -1})
    hand = [math.log(110 / 100), (math.log(120) + math.log(90)) / 2 - math.log(95)]
    assert d.to_numpy() == pytest.approx(hand, rel=1e-12)
    # rounds are keyed by machine, run_id, replicate, block, round (schema 4)
    assert list(d.index) == [("m0", "sim", 0, "b0", 0), ("m0", "sim", 0, "b0", 1)]


def test_round_values_pair_only_within_a_machine_and_block():
    df = trial_frame(["c0", "c1", "c0", "c1"], [0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0],
                     blocks=["b0", "b0", "b1", "b1"])  # fmt: skip
    df.loc[2:, "machine"] = "m1"
    d = round_values(df, {"c0": 1, "c1": -1})
    assert list(d.index) == [("m0", "sim", 0, "b0", 0), ("m1", "sim", 0, "b1", 0)]
    assert d.to_numpy() == pytest.approx([math.log(0.5), math.log(0.75)])


# --- the paired estimator against scipy ---------------------------------------------------------


def test_paired_two_cells_equals_scipy_ttest_rel():
    df = _two_cells(seed=1)
    r = paired_contrast(df, {"c0": 1, "c1": -1}, confidence=0.9)
    logs = np.log(df.pivot(index="round", columns="cell", values="throughput"))
    ref = scipy.stats.ttest_rel(logs["c0"], logs["c1"])
    ci = ref.confidence_interval(confidence_level=0.9)
    diff = (logs["c0"] - logs["c1"]).to_numpy()
    assert r.estimate == pytest.approx(diff.mean(), rel=1e-12)
    assert r.se == pytest.approx(diff.std(ddof=1) / math.sqrt(diff.size), rel=1e-12)
    assert (r.statistic, r.pvalue, r.dof) == pytest.approx((ref.statistic, ref.pvalue, ref.df))
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert r.method == "paired" and r.n_rounds == 8 and r.n_trials == 16


def test_paired_four_cells_equals_scipy_ttest_1samp_on_the_round_values():
    rng = np.random.default_rng(2)
    cells, rounds, x = drifting_block(rng, np.log([100.0, 90.0, 80.0, 75.0, 60.0]), n_rounds=9)
    df = trial_frame(cells, rounds, x)
    r = contrast(df, B_WEIGHTS)
    logs = np.log(df.pivot(index="round", columns="cell", values="throughput"))
    d = (logs["c0"] - logs["c1"] - logs["c2"] + logs["c3"]).to_numpy()
    ref = scipy.stats.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(confidence_level=0.95)
    assert r.method == "paired" and r.n_rounds == 9 and r.dof == 8
    assert r.estimate == pytest.approx(d.mean(), rel=1e-12)
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert set(r.cells) == {"c0", "c1", "c2", "c3"}


def test_lag1_autocorrelation_is_the_hand_formula_over_adjacent_rounds():
    df = _two_cells(seed=3, n_rounds=10)
    df = df[~((df["round"] == 4) & (df["cell"] == "c1"))]  # round 4 incomplete: 3-5 not adjacent
    r = paired_contrast(df, {"c0": 1, "c1": -1})
    d = round_values(df, {"c0": 1, "c1": -1})
    x, rounds = d.to_numpy() - d.mean(), d.index.get_level_values("round").to_numpy()
    pairs = [(i, i + 1) for i in range(len(x) - 1) if rounds[i + 1] - rounds[i] == 1]
    hand = sum(x[i] * x[j] for i, j in pairs) / np.sum(x**2)
    assert r.n_rounds == 9 and len(pairs) == 7 and r.autocorr == pytest.approx(hand, rel=1e-12)


def test_swapping_the_signs_negates_the_estimate_and_keeps_p():
    df = _two_cells(seed=4)
    ab, ba = contrast(df, {"c0": 1, "c1": -1}), contrast(df, {"c0": -1, "c1": 1})
    assert ab.estimate == pytest.approx(-ba.estimate, rel=1e-12)
    assert ab.pvalue == pytest.approx(ba.pvalue, rel=1e-12) and ab.se == pytest.approx(ba.se)


# --- fallback to unpaired -----------------------------------------------------------------------


def test_contrast_without_a_common_block_is_the_welch_contrast():
    df = _two_cells(seed=5)
    df["block"] = "own-" + df["cell"]
    r = contrast(df, {"c0": 1, "c1": -1})
    logs = [np.log(df.loc[df["cell"] == c, "throughput"]) for c in ("c0", "c1")]
    ref = welch_contrast(logs, [1, -1])
    assert r.method == "unpaired" and r.n_rounds == 0 and "share no block" in r.note
    assert (r.estimate, r.se, r.dof) == pytest.approx((ref.estimate, ref.se, ref.dof))
    welch = scipy.stats.ttest_ind(*logs, equal_var=False)
    assert r.pvalue == pytest.approx(welch.pvalue, rel=1e-10)


def test_a_single_common_round_falls_back_to_unpaired_with_the_reason():
    df = _two_cells(seed=6)
    df.loc[(df["cell"] == "c1") & (df["round"] > 0), "block"] = "other"
    r = contrast(df, {"c0": 1, "c1": -1})
    assert r.method == "unpaired" and "only 1 complete round(s)" in r.note
    assert r.n_trials == 16


def test_rows_of_schema_version_2_never_pair():
    df = _two_cells(seed=7)
    old = [upgrade_trial({**row, "schema_version": 2}) for row in
           df.drop(columns=["block", "round"]).to_dict(orient="records")]  # fmt: skip
    r = contrast(pd.DataFrame(old), {"c0": 1, "c1": -1})
    assert r.method == "unpaired"
    unblocked = df.assign(block="", round=-1)
    assert contrast(unblocked, {"c0": 1, "c1": -1}).method == "unpaired"


def test_a_cell_without_trials_gives_nan_and_names_it():
    df = _two_cells(seed=8)
    r = contrast(df, {"c0": 1, "c9": -1})
    assert math.isnan(r.estimate) and math.isnan(r.pvalue) and "no ok trials for c9" in r.note


def test_invalid_weights_raise_naming_the_value():
    df = _two_cells()
    with pytest.raises(ValueError, match=r"`weights\['c1'\]` must be a finite non-zero number"):
        contrast(df, {"c0": 1, "c1": 0})
    with pytest.raises(ValueError, match="`weights` must be a non-empty mapping"):
        contrast(df, {})
    with pytest.raises(ValueError, match="`key` must be a column"):
        contrast(df, {"c0": 1}, key="slot")


# --- coverage under a strong common drift -------------------------------------------------------


def test_paired_ci_covers_under_common_drift_and_is_narrower_than_welch():
    # 12 cells x 10 rounds, counterbalanced; drift AR(1) rho 0.99 per trial, sd 0.15; noise 0.03.
    # Cells 0-3 form B (true log B drawn with the cell effects); the unpaired copy gives each cell
    # its own block. The Welch CI counts the drift between rounds, which cancels in the estimate
    # (with complete rounds both estimates are the same number), so it is much too wide; the
    # paired CI keeps only the drift within a round (innovations of ~0.02 per trial), which a
    # 12-trial round does not remove: the width ratio is about 2, not more.
    rng = np.random.default_rng(20261202)
    runs, covered, covered_u, widths, widths_u = 500, 0, 0, [], []
    for _ in range(runs):
        log_means = 4.6 + rng.normal(0.0, 0.3, 12)
        truth = log_means[0] - log_means[1] - log_means[2] + log_means[3]
        cells, rounds, x = drifting_block(rng, log_means)
        df = trial_frame(cells, rounds, x)
        p = contrast(df, B_WEIGHTS)
        u = contrast(df.assign(block="own-" + df["cell"]), B_WEIGHTS)
        assert p.method == "paired" and u.method == "unpaired"
        covered += p.ci_low <= truth <= p.ci_high
        covered_u += u.ci_low <= truth <= u.ci_high
        widths.append(p.ci_high - p.ci_low)
        widths_u.append(u.ci_high - u.ci_low)
    coverage, coverage_u = covered / runs, covered_u / runs
    width, width_u = float(np.median(widths)), float(np.median(widths_u))
    report = (
        f"paired: coverage {coverage:.3f}, median width {width:.4f}; unpaired Welch: coverage "
        f"{coverage_u:.3f}, median width {width_u:.4f}; ratio {width_u / width:.2f}"
    )
    print(report)
    assert coverage >= 0.93, report
    assert width_u / width >= 1.6, report
