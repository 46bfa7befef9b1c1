"""Tests of study.stats.channels: B per architecture and pooled, its tests, MDE and Holm, against
scipy and hand computations, on blocked (paired) and unblocked (unpaired) designs."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from study.records.jsonl import append_jsonl
from study.records.results import load_results
from study.records.schema import TrialRow
from study.stats import (
    RANDOM_EFFECTS_MIN_K,
    Channel,
    channel_bias,
    channel_table,
    holm,
    holm_family,
    minimum_detectable_effect,
    random_effects,
    round_values,
)
from tests.study._synth import synth_trials
from tests.study.test_paired import drifting_block

REF = {"pruner": "gmp", "profile": "uniform", "mask": "unstructured", "quant": "none",
       "exporter": "torch"}  # fmt: skip
VENDOR = {**REF, "profile": "vendor"}
PROFILE = Channel("profile-vendor", VENDOR, REF, "vendor profile vs uniform")
PRUNER = Channel("pruner", {"pruner": "sparseml"}, {"pruner": "gmp"}, "A/A: SparseML vs gmp")
VARIANTS = (VENDOR, REF, {**REF, "pruner": "sparseml"})  # the third: other cells of the block
ENGINES = ("deepsparse", "openvino", "onnxruntime")
MODELS5 = ("resnet50", "vgg19", "mobilenetv1_100", "efficientnet_b0", "inception_v3")


def channel_trials(
    *, models=("resnet50",), log_b=0.0, n_rounds=10, blocked=True, machine="m0", seed=0,
    fail=None, rho=0.99, sd=0.15, noise=0.03, sparsity=0.9,
) -> list[dict]:  # fmt: skip
    """TrialRow dicts: every model a block of 3 variants x 3 engines under a common drift.

    True B (PROFILE channel, deepsparse / openvino) is ``exp(log_b)`` (a number, or a function of
    the model). ``fail`` = (model, variant index, engine) makes that cell one failure row."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        cells = list(itertools.product(range(len(VARIANTS)), ENGINES))
        b = log_b(model) if callable(log_b) else log_b
        log_means = [4.6 + 0.2 * ENGINES.index(e) - 0.1 * v
                     + (b if (v, e) == (0, "deepsparse") else 0.0) for v, e in cells]  # fmt: skip
        names, rounds, x = drifting_block(rng, log_means, n_rounds, rho, sd, noise)
        trials = {}
        for name, r, throughput in zip(names, rounds, x):
            v, engine = cells[int(name[1:])]
            variant = VARIANTS[v]
            stem = f"{model}-{variant['pruner']}-{variant['profile']}"
            cell = hashlib.sha256(f"{machine}/{stem}/{engine}".encode()).hexdigest()[:12]
            if fail == (model, v, engine):
                if cell not in trials:
                    trials[cell] = 0
                    rows.append(_row(machine, model, variant, engine, stem, cell, sparsity,
                                     trial=-1, round=-1, block=f"{machine}/{model}",
                                     throughput=math.nan, status="failed",
                                     error="engine crashed"))  # fmt: skip
                continue
            trial = trials.setdefault(cell, 0)
            trials[cell] += 1
            block = f"{machine}/{model}" if blocked else f"own/{cell}"
            rows.append(_row(machine, model, variant, engine, stem, cell, sparsity, trial=trial,
                             round=r, block=block, throughput=float(throughput)))  # fmt: skip
    return rows


def _row(machine, model, variant, engine, stem, cell, sparsity, **fields) -> dict:
    return TrialRow(
        run_id="synthetic", machine=machine, cell=cell, model=model, sparsity=sparsity,
        onnx_path=f"models/{stem}.onnx", onnx_sha256=hashlib.sha256(stem.encode()).hexdigest(),
        engine=engine, precision="f32", scenario="sync", batch_size=1, threads=2, items=50,
        seconds=1.0, calls=50, **variant, **fields,
    ).to_dict()  # fmt: skip


def _frame(**kwargs) -> pd.DataFrame:
    return pd.DataFrame(channel_trials(**kwargs))


def _bias(df, channel=PROFILE, **kwargs):
    return channel_bias(df, channel, "deepsparse", "openvino", **kwargs)


def _pooled(results):
    (row,) = [r for r in results if r.model == "pooled"]
    return row


# --- one architecture ---------------------------------------------------------------------------


def test_b_is_the_paired_t_on_the_four_cells_round_values():
    df = _frame(log_b=math.log(1.05), seed=1)
    r = _bias(df)[0]
    cells = {}
    for slot, (variant, engine) in {
        "c0": (VENDOR, "deepsparse"),
        "c1": (VENDOR, "openvino"),
        "c2": (REF, "deepsparse"),
        "c3": (REF, "openvino"),
    }.items():
        sel = (df["engine"] == engine) & (df["profile"] == variant["profile"])
        cells[slot] = df.loc[sel & (df["pruner"] == "gmp"), "cell"].iloc[0]
    d = round_values(df, dict(zip(cells.values(), (1, -1, -1, 1))))
    ref = scipy.stats.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval()
    assert r.method == "paired" and r.n_rounds == 10 and r.dof == 9 and len(r.cells) == 4
    assert r.log_estimate == pytest.approx(d.mean(), rel=1e-12)
    assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    assert (r.ci_low, r.ci_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))


def test_results_file_paired_ci_covers_true_b_and_is_narrower_than_unpaired(tmp_path):
    # A strong common drift (AR(1), rho 0.995 per trial, sd 0.3), written as JSON lines and loaded
    # with study.records.results; the unpaired copy puts every cell in a block of its own. (Over 300 such
    # runs the paired CI's median width is 2.5x narrower than Welch's, see test_paired.py; single
    # runs vary: the ratio is 1.5-3.5 over seeds 0-7, 3.35 at this seed 0.)
    truth = 1.04
    kwargs = dict(log_b=math.log(truth), n_rounds=12, rho=0.995, sd=0.3, noise=0.02, seed=0)
    append_jsonl(tmp_path / "blocked" / "bench.jsonl", channel_trials(**kwargs))
    append_jsonl(tmp_path / "own" / "bench.jsonl", channel_trials(**kwargs, blocked=False))
    paired = _bias(load_results(tmp_path / "blocked"))[0]
    unpaired = _bias(load_results(tmp_path / "own"))[0]
    assert (paired.method, unpaired.method) == ("paired", "unpaired")
    assert paired.log_estimate == pytest.approx(unpaired.log_estimate, rel=1e-9)  # same rounds
    assert paired.ci_low < truth < paired.ci_high
    ratio = math.log(unpaired.ci_high / unpaired.ci_low) / math.log(paired.ci_high / paired.ci_low)
    assert ratio > 2.0, f"unpaired/paired CI width ratio {ratio:.2f}"


def test_gap_and_tost_pvalues_equal_a_hand_t_computation():
    r = _bias(_frame(log_b=0.02, seed=3), margin=0.08)[0]
    low, high = math.log(0.92), math.log(1.08)
    gap = scipy.stats.t.cdf((r.log_estimate - high) / r.se, r.dof)
    lower = scipy.stats.t.sf((r.log_estimate - low) / r.se, r.dof)
    assert r.gap_pvalue == pytest.approx(gap, rel=1e-10) and r.gap_ruled_out == (gap < 0.05)
    assert r.tost.p_upper == pytest.approx(gap, rel=1e-10)
    assert r.tost.p_lower == pytest.approx(lower, rel=1e-10)
    assert r.tost.pvalue == pytest.approx(max(gap, lower), rel=1e-10)


@pytest.mark.parametrize("dof", [2, 4, 9, 30])
def test_power_at_the_minimum_detectable_effect_is_about_80_percent(dof):
    se = 0.01
    mde = minimum_detectable_effect(se, dof)
    t_crit = scipy.stats.t.ppf(0.975, dof)
    power = scipy.stats.nct.sf(t_crit, dof, mde / se) + scipy.stats.nct.cdf(-t_crit, dof, mde / se)
    assert 0.75 <= power <= 0.85


def test_result_mde_is_the_formula_on_its_se_and_dof():
    r = _bias(_frame(seed=4))[0]
    t = scipy.stats.t
    assert r.mde == pytest.approx(math.expm1((t.ppf(0.975, r.dof) + t.ppf(0.8, r.dof)) * r.se))


def test_swapping_levels_gives_the_inverse_b_and_the_same_p():
    df = _frame(models=("resnet50", "vgg19"), log_b=0.03, seed=5)
    swapped = Channel("profile-swapped", PROFILE.level_b, PROFILE.level_a)
    for x, y in zip(_bias(df), _bias(df, swapped)):
        assert x.model == y.model and x.estimate * y.estimate == pytest.approx(1.0, rel=1e-12)
        assert x.pvalue == pytest.approx(y.pvalue, rel=1e-10)
        assert x.ci_low * y.ci_high == pytest.approx(1.0, rel=1e-12)


def test_the_same_file_in_two_cells_is_an_aa_control_with_a_note():
    df = _frame(seed=6)
    gmp = df[df["pruner"] == "gmp"]
    twin = gmp.assign(pruner="sparseml", cell=gmp["cell"] + "-s")  # same onnx_sha256
    twin = twin.assign(throughput=gmp["throughput"] * np.exp(np.random.default_rng(0).normal(
        0.0, 0.01, len(gmp))))  # fmt: skip
    aa = Channel("pruner", {**REF, "pruner": "sparseml"}, REF)
    r = _bias(pd.concat([gmp, twin], ignore_index=True), aa)[0]
    assert r.method == "paired" and math.isfinite(r.estimate) and "A/A" in r.note


def _synth(**kwargs) -> pd.DataFrame:
    defaults = dict(pruners=("gmp", "sparseml"), engines=("openvino", "deepsparse"))
    return synth_trials(**{**defaults, **kwargs})


def test_unpaired_b_is_the_hand_computed_four_cell_log_contrast():
    df = _synth(effect=lambda c: 1.1 if c["engine"] == "deepsparse" else 1.0).assign(block="")
    r = _bias(df, PRUNER)[0]
    sel = df[df["model"] == r.model]

    def logs(engine, pruner):
        return np.log(sel.loc[(sel["engine"] == engine) & (sel["pruner"] == pruner), "throughput"])

    parts = [logs("deepsparse", "sparseml"), logs("openvino", "sparseml"),
             logs("deepsparse", "gmp"), logs("openvino", "gmp")]  # fmt: skip
    log_b = parts[0].mean() - parts[1].mean() - parts[2].mean() + parts[3].mean()
    v = [x.var(ddof=1) / x.size for x in parts]
    dof = sum(v) ** 2 / sum(vi**2 / (x.size - 1) for vi, x in zip(v, parts))
    assert r.method == "unpaired" and r.n_trials == 32 and len(r.cells) == 4
    assert (r.log_estimate, r.se, r.dof) == pytest.approx((log_b, math.sqrt(sum(v)), dof))


def test_tight_data_around_one_is_equivalent_and_rules_out_a_gap():
    models = ("resnet50", "vgg19", "mobilenetv1_100", "efficientnet_b0", "inception_v3")
    pooled = _pooled(_bias(_synth(models=models, sigma=0.01, n_trials=10, seed=3), PRUNER))
    assert pooled.k == 5 and pooled.pool == "random" and pooled.method == "paired"
    assert (
        pooled.equivalent and pooled.gap_ruled_out and 0.95 < pooled.ci_low < pooled.ci_high < 1.05
    )


def test_a_true_ten_percent_bias_is_detected_and_not_ruled_out():
    def effect(c):
        return 1.10 if (c["engine"], c["pruner"]) == ("deepsparse", "sparseml") else 1.0

    results = _bias(_synth(sigma=0.02, effect=effect, seed=4), PRUNER, margin=0.05)
    pooled = _pooled(results)
    assert pooled.pool == "equal" and pooled.pvalue < 0.05 and not pooled.equivalent
    assert not pooled.gap_ruled_out and pooled.ci_low < 1.10 < pooled.ci_high


def test_b_is_per_machine():
    results = _bias(_synth(machines=("m0", "m1"), models=("resnet50", "vgg19")), PRUNER)
    assert [(r.machine, r.model) for r in results] == [
        ("m0", "resnet50"), ("m0", "vgg19"), ("m0", "pooled"),
        ("m1", "resnet50"), ("m1", "vgg19"), ("m1", "pooled"),
    ]  # fmt: skip


# --- pooling ------------------------------------------------------------------------------------


def test_few_architectures_pool_as_the_equal_weight_mean():
    results = _bias(_frame(models=("resnet50", "vgg19", "mobilenetv1_100"), seed=7))
    arch, pooled = results[:3], results[3]
    v = np.array([r.se**2 for r in arch])
    y = np.array([r.log_estimate for r in arch])
    nu = np.array([r.dof for r in arch])
    mu, se = float(y.mean()), float(math.sqrt(v.sum()) / 3)
    dof = v.sum() ** 2 / np.sum(v**2 / nu)  # Satterthwaite
    w = 1 / v
    q = float(np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2))  # Cochran's Q, inverse-variance
    assert RANDOM_EFFECTS_MIN_K > 3 and pooled.pool == "equal" and pooled.k == 3
    assert (pooled.log_estimate, pooled.se, pooled.dof) == pytest.approx((mu, se, dof), rel=1e-12)
    assert (pooled.q, pooled.q_pvalue) == pytest.approx((q, scipy.stats.chi2.sf(q, 2)))
    half = scipy.stats.t.ppf(0.975, dof) * se
    assert pooled.ci_low == pytest.approx(math.exp(mu - half), rel=1e-12)
    assert pooled.method == "paired" and pooled.n_rounds == 30


def test_five_architectures_use_the_random_effects_pool():
    results = _bias(_frame(models=MODELS5, seed=8))
    arch, pooled = results[:5], results[5]
    ref = random_effects([r.log_estimate for r in arch], [r.se**2 for r in arch])
    assert pooled.pool == "random" and pooled.k == 5 and pooled.dof == 4
    assert (pooled.log_estimate, pooled.se, pooled.tau2) == pytest.approx(
        (ref.estimate, ref.se, ref.tau2), rel=1e-12
    )


def test_one_architecture_pool_is_that_architecture():
    resnet, pooled = _bias(_frame(seed=9))
    assert pooled.model == "pooled" and pooled.pool == "single" and pooled.k == 1
    assert (pooled.estimate, pooled.ci_low, pooled.ci_high, pooled.mde) == (
        resnet.estimate, resnet.ci_low, resnet.ci_high, resnet.mde,
    )  # fmt: skip


def test_a_missing_cell_gives_nan_with_its_name_and_the_rest_still_computes():
    models = ("resnet50", "vgg19", "mobilenetv1_100")
    results = _bias(_frame(models=models, seed=10, fail=("vgg19", 1, "deepsparse")))
    vgg = next(r for r in results if r.model == "vgg19")
    assert math.isnan(vgg.estimate) and math.isnan(vgg.mde) and not vgg.equivalent
    assert "deepsparse on b (profile=uniform)" in vgg.note and "engine crashed" in vgg.note
    others = [r for r in results if r.model in ("resnet50", "mobilenetv1_100")]
    assert all(math.isfinite(r.estimate) and r.method == "paired" for r in others)
    pooled = _pooled(results)
    assert pooled.k == 2 and "skipped vgg19" in pooled.note and math.isfinite(pooled.estimate)


def test_held_columns_give_their_own_rows_and_pool():
    df = pd.concat([_frame(seed=11), _frame(seed=12, sparsity=0.8, machine="m1")])
    results = _bias(df)
    keys = [(r.machine, r.held["sparsity"], r.model) for r in results]
    assert keys == [("m0", 0.9, "resnet50"), ("m0", 0.9, "pooled"),
                    ("m1", 0.8, "resnet50"), ("m1", 0.8, "pooled")]  # fmt: skip


def test_architectures_at_their_own_sparsity_pool_together_when_asked():
    """The study's model_sparsity: ResNet-50 at 0.9 and VGG19 at 0.8 are one pool, k = 2."""
    df = pd.concat([_frame(models=("resnet50",), seed=14),
                    _frame(models=("vgg19",), seed=15, sparsity=0.8)])  # fmt: skip
    assert [(r.model, r.held["sparsity"]) for r in _bias(df)] == [
        ("vgg19", 0.8), ("pooled", 0.8), ("resnet50", 0.9), ("pooled", 0.9)]  # fmt: skip
    results = _bias(df, per_architecture=("sparsity",))
    assert [(r.model, r.held["sparsity"]) for r in results] == [
        ("resnet50", 0.9), ("vgg19", 0.8), ("pooled", "0.8, 0.9")]  # fmt: skip
    assert _pooled(results).k == 2
    alone = {r.model: r.estimate for r in _bias(df) if r.model != "pooled"}
    assert {r.model: r.estimate for r in results if r.model != "pooled"} == alone
    twice = pd.concat([df, _frame(models=("vgg19",), seed=16, sparsity=0.7)])
    with pytest.raises(ValueError, match=r"'vgg19' has rows at sparsity \[0.7, 0.8\]"):
        _bias(twice, per_architecture=("sparsity",))


# --- Holm and the table -------------------------------------------------------------------------


def test_holm_family_adjusts_the_two_sided_pvalues_by_hand():
    df = _frame(models=("resnet50", "vgg19"), log_b=lambda m: 0.05 if m == "vgg19" else 0.0)
    family = _bias(df)
    out = holm_family(family)
    p = np.array([r.pvalue for r in family])
    order = np.argsort(p)
    hand = np.empty(3)
    hand[order] = np.minimum(1, np.maximum.accumulate((3 - np.arange(3)) * p[order]))
    assert [r.p_holm for r in out] == pytest.approx(hand.tolist(), rel=1e-12)
    assert [r.p_holm for r in out] == pytest.approx(holm(p).tolist())
    assert [dataclasses.replace(r, p_holm=math.nan) for r in out] == family


def test_channel_table_has_one_row_per_result_with_flat_tost():
    results = _bias(_frame(models=("resnet50", "vgg19"), seed=13))
    table = channel_table(results)
    assert len(table) == 3 and "tost" not in table.columns
    assert table["tost_ci90_low"].to_numpy() == pytest.approx(
        [math.exp(r.tost.ci90_low) for r in results]
    )
    assert table.loc[0, "level_a"].startswith("pruner=gmp, profile=vendor")
    assert list(table["held"]) == ["sparsity=0.9"] * 3
    assert list(table["gap_ruled_out"]) == [r.gap_ruled_out for r in results]


# --- input checks -------------------------------------------------------------------------------


def test_channel_rejects_levels_that_do_not_select_two_variants():
    with pytest.raises(ValueError, match="`level_b` must differ from `level_a`"):
        Channel("same", REF, dict(REF))
    with pytest.raises(ValueError, match="must set the same columns"):
        Channel("keys", {"pruner": "gmp"}, {"profile": "uniform"})
    with pytest.raises(ValueError, match=r"`level_a` keys must be in .*got \['engine'\]"):
        Channel("engine", {"engine": "openvino"}, {"engine": "deepsparse"})


def test_channel_bias_rejects_bad_arguments():
    df = _frame()
    with pytest.raises(ValueError, match="`margin` must be in"):
        _bias(df, margin=1.5)
    with pytest.raises(ValueError, match="`denominator` must differ from `numerator`"):
        channel_bias(df, PROFILE, "openvino", "openvino")
    with pytest.raises(ValueError, match="`channel` must be a study.stats.Channel"):
        channel_bias(df, {"profile": "vendor"}, "deepsparse", "openvino")
