"""Tests of study.stats against scipy, R (metafor, p.adjust) reference values and invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from study.stats import (
    CI,
    bootstrap_ci,
    cell_table,
    common_effect,
    engine_comparison,
    geometric_ci,
    holm,
    pruning_speedup,
    random_effects,
    throughput_ratio,
    tost,
    tost_one_sample,
    welch_contrast,
)
from tests.study._synth import synth_trials


def _lognormal(seed: int, n: int, mean: float, sigma: float = 0.03) -> np.ndarray:
    return mean * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


# --- bootstrap and cell table -------------------------------------------------------------------


def test_bootstrap_ci_matches_scipy_bca_with_same_seed():
    x = _lognormal(1, 12, 100.0)
    ours = bootstrap_ci(x, confidence=0.9, n_resamples=2000, seed=7)
    ref = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=2000, confidence_level=0.9, method="BCa",
        rng=np.random.default_rng(7),
    ).confidence_interval  # fmt: skip
    assert (ours.low, ours.high) == (ref.low, ref.high)
    assert ours.estimate == pytest.approx(x.mean(), rel=1e-15)


def test_bootstrap_ci_single_value_gives_nan_bounds():
    ci = bootstrap_ci([42.0])
    assert ci.estimate == 42.0 and math.isnan(ci.low) and math.isnan(ci.high)


def test_bootstrap_ci_constant_values_give_degenerate_interval():
    assert bootstrap_ci([5.0, 5.0, 5.0]) == CI(5.0, 5.0, 5.0, 0.95)


def test_geometric_ci_is_exp_of_the_scipy_t_interval_on_logs():
    x = _lognormal(12, 6, 100.0, 0.05)
    ci = geometric_ci(x, confidence=0.9)
    ref = scipy.stats.ttest_1samp(np.log(x), 0.0).confidence_interval(confidence_level=0.9)
    assert ci.estimate == pytest.approx(scipy.stats.gmean(x), rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((math.exp(ref.low), math.exp(ref.high)), rel=1e-12)


def test_cell_table_one_row_per_cell_with_geometric_means_and_failures():
    df = synth_trials(
        models=("resnet50",), n_trials=5,
        fail=lambda c: "boom" if (c["engine"], c["pruner"]) == ("openvino", "gmp") else None,
    )  # fmt: skip
    table = cell_table(df)
    ok = df[df["status"] == "ok"]
    assert len(table) == ok["cell"].nunique() == 8  # 9 cells, one failed entirely
    means = ok.groupby("cell")["throughput"].agg(scipy.stats.gmean)
    assert np.allclose(table.set_index("cell")["throughput"], means.loc[table["cell"]])
    assert (table["n_trials"] == 5).all() and (table["n_failed"] == 0).all()
    first = table.iloc[0]
    ci = geometric_ci(ok.loc[ok["cell"] == first["cell"], "throughput"])
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert {"profile", "mask", "quant", "log_sd"} <= set(table.columns)


def test_zero_throughput_on_an_ok_row_raises_naming_it():
    df = synth_trials(models=("resnet50",), n_trials=3)
    df.loc[4, "throughput"] = 0.0
    with pytest.raises(ValueError, match="`throughput` must be finite and > 0"):
        cell_table(df)
    with pytest.raises(ValueError, match="`b` must hold finite throughputs > 0; got -1.0"):
        throughput_ratio([1.0, 2.0], [3.0, -1.0])


# --- ratios -------------------------------------------------------------------------------------


def test_throughput_ratio_ci_is_exp_of_scipy_welch_ci_on_logs():
    a, b = _lognormal(2, 9, 120.0, 0.05), _lognormal(3, 6, 100.0, 0.02)
    r = throughput_ratio(a, b, confidence=0.9)
    ref = scipy.stats.ttest_ind(np.log(a), np.log(b), equal_var=False)
    ci = ref.confidence_interval(confidence_level=0.9)
    assert r.estimate == pytest.approx(math.exp(np.log(a).mean() - np.log(b).mean()))
    assert (r.ci_low, r.ci_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert (r.welch_t, r.welch_p, r.welch_dof) == pytest.approx((ref.statistic, ref.pvalue, ref.df))
    mwu = scipy.stats.mannwhitneyu(a, b, alternative="two-sided")
    assert (r.mwu_u, r.mwu_p) == (mwu.statistic, mwu.pvalue)


def test_swapping_a_and_b_inverts_ratio_and_ci():
    a, b = _lognormal(4, 7, 90.0), _lognormal(5, 8, 100.0)
    ab, ba = throughput_ratio(a, b), throughput_ratio(b, a)
    assert ab.estimate * ba.estimate == pytest.approx(1.0, rel=1e-12)
    assert ab.ci_low * ba.ci_high == pytest.approx(1.0, rel=1e-12)
    assert ab.ci_high * ba.ci_low == pytest.approx(1.0, rel=1e-12)
    assert ab.welch_p == pytest.approx(ba.welch_p) and ab.welch_t == pytest.approx(-ba.welch_t)


def test_single_trial_ratio_has_nan_ci_and_a_note():
    r = throughput_ratio([110.0], [100.0, 101.0, 99.0])
    assert r.estimate == pytest.approx(110.0 / scipy.stats.gmean([100.0, 101.0, 99.0]))
    assert math.isnan(r.ci_low) and math.isnan(r.welch_p) and "single trial" in r.note


def test_holm_matches_r_p_adjust():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm")  -> 0.03 0.06 0.06 0.02
    # R: p.adjust(c(0.04, 0.001, 0.03, 0.2, 0.6), "holm")  -> 0.120 0.005 0.120 0.400 0.600
    # (values derived by hand from Holm 1979: sorted p_(j) times (m - j + 1), running max, cap 1)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.04, 0.001, 0.03, 0.2, 0.6]) == pytest.approx([0.12, 0.005, 0.12, 0.4, 0.6])


def test_holm_skips_nan_and_caps_at_one():
    # R: p.adjust(c(NA, 0.5, 0.02), "holm")  -> NA 0.50 0.04  (NA does not count in m)
    out = holm([np.nan, 0.5, 0.02])
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.5, 0.04])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_engine_comparison_holm_within_models_and_failed_engine_note():
    df = synth_trials(
        effect=lambda c: 1.15 if c["engine"] == "deepsparse" else 1.0,
        precisions=("f32", "default"),
        fail=lambda c: "compile error" if (c["model"], c["engine"], c["pruner"])
        == ("vgg19", "openvino", "gmp") else None,
    )  # fmt: skip
    out = engine_comparison(df, "deepsparse", "openvino")
    assert set(out["precision"]) == {"f32"} and len(out) == 9  # 3 models x 3 pruners
    failed = out[(out["model"] == "vgg19") & (out["pruner"] == "gmp")].iloc[0]
    assert math.isnan(failed["estimate"]) and "compile error" in failed["note"]
    dense = out[out["pruner"] == "none"]
    assert dense["p_holm"].to_numpy() == pytest.approx(holm(dense["pvalue"].to_numpy()))
    ok = out.dropna(subset=["estimate"])
    assert ((ok["ci_low"] < 1.15) & (ok["ci_high"] > 1.15)).sum() >= 7  # 95% CIs, 8 rows


def test_pruning_speedup_uses_exporter_matched_dense_else_torch():
    df = synth_trials(
        models=("resnet50",), pruners=("none", "gmp"), exporters=("torch", "sparseml"),
        engines=("deepsparse",), effect=lambda c: 1.5 if c["pruner"] == "gmp" else 1.0,
    )  # fmt: skip
    out = pruning_speedup(df)
    assert list(out["dense_exporter"]) == list(out["exporter"])
    no_sparseml_dense = df[~((df["pruner"] == "none") & (df["exporter"] == "sparseml"))]
    out2 = pruning_speedup(no_sparseml_dense)
    assert list(out2["dense_exporter"]) == ["torch", "torch"]
    assert ((out["ci_low"] < 1.5) & (out["ci_high"] > 1.5)).all()
    dense = df[(df["pruner"] == "none") & (df["exporter"] == "torch")]["cell"].unique()
    assert out2.iloc[0]["cells_b"] == tuple(dense)


_DRIFT = np.random.default_rng(99).normal(0.0, 0.2, 50)  # log drift of the machine per round


def _blocked_frame(**kwargs) -> pd.DataFrame:
    """synth_trials (each model a block, trial i its round i) with a common drift per round."""
    return synth_trials(drift=lambda cell, r: math.exp(_DRIFT[r]), **kwargs)


def test_engine_comparison_pairs_by_round_in_a_block_as_scipy_ttest_rel():
    df = _blocked_frame(models=("resnet50",), pruners=("gmp",), n_trials=7)
    row = engine_comparison(df, "deepsparse", "openvino").iloc[0]
    logs = np.log(df.pivot(index="round", columns="engine", values="throughput"))
    ref = scipy.stats.ttest_rel(logs["deepsparse"], logs["openvino"])
    ci = ref.confidence_interval()
    assert row["method"] == "paired" and row["n_rounds"] == 7
    assert (row["pvalue"], row["t"], row["dof"]) == pytest.approx((ref.pvalue, ref.statistic, 6))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    welch = scipy.stats.ttest_ind(logs["deepsparse"], logs["openvino"], equal_var=False)
    assert row["welch_p"] == pytest.approx(welch.pvalue)  # kept: the unpaired test of all trials


def test_engine_comparison_without_blocks_is_welch_and_holm_uses_pvalue():
    unblocked = synth_trials(pruners=("gmp",)).assign(block="")  # rows of schema version < 3
    out = engine_comparison(unblocked, "deepsparse", "openvino")
    assert (out["method"] == "unpaired").all() and (out["n_rounds"] == 0).all()
    assert out["pvalue"].to_numpy() == pytest.approx(out["welch_p"].to_numpy())
    assert out["p_holm"].to_numpy() == pytest.approx(holm(out["pvalue"].to_numpy()))


def test_pruning_speedup_int8_variant_falls_back_to_the_fp32_dense_file():
    df = _blocked_frame(models=("resnet50",), pruners=("none", "gmp"), engines=("openvino",))
    int8 = df[df["pruner"] == "gmp"].assign(quant="torch", cell=lambda d: d["cell"] + "-q")
    out = pruning_speedup(pd.concat([df, int8], ignore_index=True))
    assert list(zip(out["quant"], out["dense_quant"])) == [("none", "none"), ("torch", "none")]
    assert (out["method"] == "paired").all() and (out["dense_exporter"] == "torch").all()
    dense_int8 = df[df["pruner"] == "none"].assign(quant="torch", cell=lambda d: d["cell"] + "-q")
    out2 = pruning_speedup(pd.concat([df, int8, dense_int8], ignore_index=True))
    assert list(out2["dense_quant"]) == ["none", "torch"]
    assert out2.iloc[1]["cells_b"] == tuple(dense_int8["cell"].unique())


# --- TOST ---------------------------------------------------------------------------------------


def test_tost_one_sample_equals_two_scipy_one_sided_t_tests():
    x = np.random.default_rng(8).normal(0.01, 0.03, 15)
    r = tost_one_sample(x, -0.05, 0.05)
    greater = scipy.stats.ttest_1samp(x, -0.05, alternative="greater").pvalue
    less = scipy.stats.ttest_1samp(x, 0.05, alternative="less").pvalue
    assert (r.p_lower, r.p_upper) == pytest.approx((greater, less), rel=1e-10)
    assert r.pvalue == max(r.p_lower, r.p_upper) and r.equivalent == (r.pvalue < 0.05)


def test_tost_equivalent_exactly_when_90_percent_ci_inside_margins():
    for estimate in np.linspace(-0.08, 0.08, 33):
        r = tost(float(estimate), 0.01, 12.0, -0.05, 0.05)
        inside = r.ci90_low > -0.05 and r.ci90_high < 0.05
        assert r.equivalent == inside


def test_tost_nan_se_is_not_equivalent_and_bad_margins_raise():
    assert not tost(0.0, math.nan, math.nan, -0.1, 0.1).equivalent
    with pytest.raises(ValueError, match="low < high"):
        tost(0.0, 0.1, 5.0, 0.1, -0.1)


# --- Welch contrast and meta-analysis -----------------------------------------------------------


def test_welch_contrast_of_two_samples_is_scipy_welch():
    x, y = np.log(_lognormal(9, 7, 100.0, 0.04)), np.log(_lognormal(10, 11, 90.0, 0.02))
    c = welch_contrast([x, y], [1, -1])
    ref = scipy.stats.ttest_ind(x, y, equal_var=False)
    ci = ref.confidence_interval()
    assert c.dof == pytest.approx(ref.df, rel=1e-12)
    assert c.se == pytest.approx((ci.high - ci.low) / 2 / scipy.stats.t.ppf(0.975, ref.df))


def test_welch_contrast_of_four_samples_matches_hand_formula():
    rng = np.random.default_rng(11)
    xs = [rng.normal(0, s, n) for s, n in ((0.1, 4), (0.2, 6), (0.05, 5), (0.3, 9))]
    c = welch_contrast(xs, [1, -1, -1, 1])
    parts = [x.var(ddof=1) / x.size for x in xs]
    dof = sum(parts) ** 2 / sum(p**2 / (x.size - 1) for p, x in zip(parts, xs))
    est = xs[0].mean() - xs[1].mean() - xs[2].mean() + xs[3].mean()
    assert (c.estimate, c.se, c.dof) == pytest.approx((est, math.sqrt(sum(parts)), dof))


# metafor::dat.raudenbush1985 (teacher expectancy, 19 studies)
RAUDENBUSH_YI = [0.03, 0.12, -0.14, 1.18, 0.26, -0.06, -0.02, -0.32, 0.27, 0.80, 0.54, 0.18,
                 -0.02, 0.23, -0.18, -0.06, 0.30, 0.07, -0.07]  # fmt: skip
RAUDENBUSH_VI = [0.0156, 0.0216, 0.0279, 0.1391, 0.1362, 0.0106, 0.0106, 0.0484, 0.0269, 0.0630,
                 0.0912, 0.0497, 0.0835, 0.0841, 0.0253, 0.0279, 0.0193, 0.0088, 0.0303]  # fmt: skip


def test_random_effects_matches_metafor_dl_knha_raudenbush():
    # R: rma(yi, vi, data=dat.raudenbush1985, method="DL", test="knha")
    # -> tau2 0.0259, mu 0.0893, se 0.0636, t 1.405, ci [-0.0442, 0.2229]; and with the default
    # test="z": se 0.0558. Values from metafor's tests/testthat/test_analysis_example_raudenbush2009.r
    # (Table 16.3 of the Handbook of Research Synthesis, 2009).
    r = random_effects(RAUDENBUSH_YI, RAUDENBUSH_VI, hksj_floor=False)
    assert (r.tau2, r.estimate, r.se) == pytest.approx((0.0259, 0.0893, 0.0636), abs=6e-5)
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.0442, 0.2229), abs=6e-5)
    assert r.estimate / r.se == pytest.approx(1.405, abs=6e-4) and r.dof == 18
    assert r.se_dl == pytest.approx(0.0558, abs=6e-5)


# metafor::dat.bcg (BCG vaccine trials): tpos, tneg, cpos, cneg
BCG = [(4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619),
       (33, 5036, 47, 5761), (180, 1361, 372, 1079), (8, 2537, 10, 619), (505, 87886, 499, 87892),
       (29, 7470, 45, 7232), (17, 1699, 65, 1600), (186, 50448, 141, 27197), (5, 2493, 3, 2338),
       (27, 16886, 29, 17825)]  # fmt: skip


def test_random_effects_matches_metafor_dl_on_bcg():
    # R: dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
    #    rma(yi, vi, data=dat, method="DL")  -> estimate -0.7141, CI [-1.0644, -0.3638] (z-based),
    #    tau^2 0.3088 (the DL fit printed in metafor's documentation of rma)
    #    rma(yi, vi, data=dat, method="EE")  -> QE 152.2330
    # (metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r, checked against Stata)
    a, b, c, d = np.array(BCG, dtype=float).T
    yi = np.log(a / (a + b)) - np.log(c / (c + d))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    r = random_effects(yi, vi)
    z = scipy.stats.norm.ppf(0.975)
    assert (r.estimate, r.tau2) == pytest.approx((-0.7141, 0.3088), abs=6e-5)
    assert (r.estimate - z * r.se_dl, r.estimate + z * r.se_dl) == pytest.approx(
        (-1.0644, -0.3638), abs=6e-5
    )
    assert r.q == pytest.approx(152.2330, abs=6e-5)


def test_hksj_floor_never_narrower_than_dl():
    y, v = [0.010, 0.011, 0.009, 0.010], [1e-4, 2e-4, 1e-4, 3e-4]  # far less spread than v says
    plain, floored = random_effects(y, v, hksj_floor=False), random_effects(y, v)
    assert plain.se < plain.se_dl and floored.se == pytest.approx(floored.se_dl)


def test_common_effect_matches_metafor_ee_on_bcg():
    # R: rma(yi, vi, data=dat, method="EE")  -> estimate -0.4303, se 0.0405,
    #    ci [-0.5097, -0.3509], QE 152.2330 (normal reference: known variances, dof inf here)
    a, b, c, d = np.array(BCG, dtype=float).T
    yi = np.log(a / (a + b)) - np.log(c / (c + d))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    r = common_effect(yi, vi, [np.inf] * len(yi))
    assert (r.estimate, r.se, r.q) == pytest.approx((-0.4303, 0.0405, 152.2330), abs=6e-5)
    assert (r.ci_low, r.ci_high) == pytest.approx((-0.5097, -0.3509), abs=6e-5)


def test_common_effect_dof_of_equal_studies_is_their_sum():
    r = common_effect([0.01, 0.02, 0.0], [1e-4, 1e-4, 1e-4], [9, 9, 9])
    assert r.dof == pytest.approx(27.0) and r.se == pytest.approx(math.sqrt(1e-4 / 3))
