"""The home-advantage estimator (study.stats.toolchain) against hand computations with numpy/scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from study.stats.toolchain import WholeToolchain, additivity, home_advantage, interaction
from tests.study._synth import synth_trials

REF = {"pruner": "gmp", "profile": "global", "mask": "unstructured", "quant": "none",
       "exporter": "torch", "sparsity": 0.9}  # fmt: skip
NM = {**REF, "profile": "vendor", "mask": "block4", "exporter": "sparseml"}
INTEL = {**REF, "pruner": "nncf"}
VENDOR, BLOCK4, EXPORTER = ({**REF, "profile": "vendor"}, {**REF, "mask": "block4"},
                            {**REF, "exporter": "sparseml"})  # fmt: skip
NM_T = WholeToolchain("neuralmagic", NM, REF, ((VENDOR, REF), (BLOCK4, REF), (EXPORTER, REF)),
                      ("profile:vendor", "mask:block4", "exporter"))  # fmt: skip
INTEL_T = WholeToolchain("intel", INTEL, REF)


def _effect(cell) -> float:
    """True throughputs: NM's toolchain gives DeepSparse +20%, Intel's gives OpenVINO +5%."""
    e = 1.0
    if cell["engine"] == "deepsparse" and cell["profile"] == "vendor" and cell["mask"] == "block4":
        e *= 1.2 if cell["exporter"] == "sparseml" else 1.1
    if cell["engine"] == "openvino" and cell["pruner"] == "nncf":
        e *= 1.05
    return e


@pytest.fixture(scope="module")
def trials() -> pd.DataFrame:
    df = synth_trials(
        models=("resnet18", "mobilenetv1"), pruners=("gmp", "nncf"),
        exporters=("torch", "sparseml"), profiles=("global", "vendor"),
        masks=("unstructured", "block4"), engines=("openvino", "deepsparse"), n_trials=9,
        sigma=0.03, effect=_effect, drift=lambda c, r: 1.0 + 0.1 * math.sin(r), seed=3,
    )  # fmt: skip
    return df


def _round_logs(df: pd.DataFrame, model: str, level: dict, engine: str) -> np.ndarray:
    sel = (df["model"] == model) & (df["engine"] == engine) & (df["status"] == "ok")
    for k, v in level.items():
        sel &= df[k] == v
    rows = df.loc[sel].sort_values("round")
    assert len(rows) == 9
    return np.log(rows["throughput"].to_numpy(dtype=float))


def _hand(df, model, terms, confidence=0.95, margin=0.10):
    """d_r = sum_v w_v [log N_v,r - log D_v,r]; one-sample t, TOST and MDE by scipy."""
    d = sum(
        w * (_round_logs(df, model, lv, "deepsparse") - _round_logs(df, model, lv, "openvino"))
        for lv, w in terms
    )
    n = len(d)
    mean, se, dof = d.mean(), d.std(ddof=1) / math.sqrt(n), n - 1
    t = sps.t.ppf(1 - (1 - confidence) / 2, dof)
    alpha = 1 - confidence
    p_low = sps.t.sf((mean - math.log(1 - margin)) / se, dof)
    p_up = sps.t.cdf((mean - math.log(1 + margin)) / se, dof)
    mde = math.expm1((t + sps.t.ppf(0.8, dof)) * se)
    return dict(
        estimate=math.exp(mean), ci_low=math.exp(mean - t * se), ci_high=math.exp(mean + t * se),
        tost=max(p_low, p_up), gap=p_up, mde=mde, se=se, log=mean, alpha=alpha,
    )  # fmt: skip


def _check(row, hand):
    assert row.method == "paired" and row.n_rounds == 9
    assert row.estimate == pytest.approx(hand["estimate"], rel=1e-10)
    assert row.ci_low == pytest.approx(hand["ci_low"], rel=1e-10)
    assert row.ci_high == pytest.approx(hand["ci_high"], rel=1e-10)
    assert row.tost.pvalue == pytest.approx(hand["tost"], rel=1e-8)
    assert row.gap_pvalue == pytest.approx(hand["gap"], rel=1e-8)
    assert row.mde == pytest.approx(hand["mde"], rel=1e-8)


def test_interaction_matches_a_hand_computation_per_architecture(trials):
    rows = interaction(trials, NM_T, INTEL_T, "deepsparse", "openvino")
    by_model = {r.model: r for r in rows}
    for model in ("resnet18", "mobilenetv1"):
        # B(NM) / B(Intel) with a common reference: the reference's cells cancel.
        hand = _hand(trials, model, [(NM, 1), (INTEL, -1)])
        _check(by_model[model], hand)
        assert by_model[model].channel == "interaction:neuralmagic/intel"
    # truth 1.2 / (1 / 1.05) = 1.26: the estimate is near it and the CI covers it
    pooled = by_model["pooled"]
    assert pooled.ci_low < 1.2 * 1.05 < pooled.ci_high


def test_pooled_interaction_is_the_equal_weight_mean(trials):
    rows = interaction(trials, NM_T, INTEL_T, "deepsparse", "openvino")
    hands = [_hand(trials, m, [(NM, 1), (INTEL, -1)]) for m in ("mobilenetv1", "resnet18")]
    v = np.array([h["se"] ** 2 for h in hands])
    logs = np.array([h["log"] for h in hands])
    pooled = next(r for r in rows if r.model == "pooled")
    assert pooled.log_estimate == pytest.approx(float(logs.mean()), rel=1e-10)
    assert pooled.se == pytest.approx(math.sqrt(v.sum()) / 2, rel=1e-10)
    assert pooled.k == 2 and pooled.pool == "equal"


def test_interaction_equals_the_ratio_of_the_two_toolchain_bs(trials):
    rows = home_advantage(trials, [NM_T, INTEL_T], [("deepsparse", "openvino")])
    get = {(r.channel, r.model): r for r in rows}
    for model in ("resnet18", "mobilenetv1"):
        nm = get[("toolchain:neuralmagic", model)].log_estimate
        intel = get[("toolchain:intel", model)].log_estimate
        inter = get[("interaction:neuralmagic/intel", model)].log_estimate
        assert inter == pytest.approx(nm - intel, abs=1e-12)
        _check(get[("toolchain:intel", model)], _hand(trials, model, [(INTEL, 1), (REF, -1)]))


def test_additivity_matches_a_hand_computation(trials):
    rows = additivity(trials, NM_T, "deepsparse", "openvino")
    terms = [(NM, 1), (REF, -1), (VENDOR, -1), (REF, 1), (BLOCK4, -1), (REF, 1)]
    terms += [(EXPORTER, -1), (REF, 1)]
    for model in ("resnet18", "mobilenetv1"):
        row = next(r for r in rows if r.model == model)
        _check(row, _hand(trials, model, terms))
    # truth: whole 1.2; the single factors 1 each: additivity = 1.2 (the factors do not add up)
    pooled = next(r for r in rows if r.model == "pooled")
    assert pooled.ci_low < 1.2 < pooled.ci_high and pooled.ci_low > 1.0


def test_a_toolchain_without_single_factors_has_no_additivity_rows(trials):
    assert additivity(trials, INTEL_T, "deepsparse", "openvino") == []


def test_a_missing_toolchain_cell_gives_nan_with_a_note_and_the_rest_stands(trials):
    broken = trials.loc[~((trials["pruner"] == "nncf") & (trials["model"] == "resnet18"))]
    rows = interaction(broken, NM_T, INTEL_T, "deepsparse", "openvino")
    by_model = {r.model: r for r in rows}
    assert math.isnan(by_model["resnet18"].estimate)
    note = by_model["resnet18"].note
    assert "no trials for deepsparse on" in note and "pruner=nncf" in note
    assert math.isfinite(by_model["mobilenetv1"].estimate)
    assert by_model["pooled"].k == 1


def test_a_toolchain_is_tested_only_on_the_architectures_it_is_made_for(trials):
    """An int8 arm on ResNet-18 alone: MobileNetV1's single-factor cells exist, its whole
    variant was never in the design, so it gets no "not estimable" row (it did before)."""
    import dataclasses

    no_nm = trials.loc[~((trials["model"] == "mobilenetv1") & (trials["exporter"] == "sparseml")
                         & (trials["mask"] == "block4"))]  # fmt: skip
    only = dataclasses.replace(NM_T, models=("resnet18",))
    rows = home_advantage(no_nm, [only, INTEL_T], [("deepsparse", "openvino")])
    for name in (
        "toolchain:neuralmagic",
        "interaction:neuralmagic/intel",
        "additivity:neuralmagic",
    ):
        assert sorted(r.model for r in rows if r.channel == name) == ["pooled", "resnet18"], name
        assert all(math.isfinite(r.estimate) for r in rows if r.channel == name), name
    intel = sorted(r.model for r in rows if r.channel == "toolchain:intel")
    assert intel == ["mobilenetv1", "pooled", "resnet18"]  # Intel's toolchain: both, as made
    everywhere = home_advantage(no_nm, [NM_T, INTEL_T], [("deepsparse", "openvino")])
    nm_mobile = next(
        r for r in everywhere if r.channel == "toolchain:neuralmagic" and r.model == "mobilenetv1"
    )
    assert math.isnan(nm_mobile.estimate)  # without `models`, the old "not estimable" row


def test_bad_terms_are_refused_with_the_value():
    from study.stats.toolchain import weighted_bias

    df = synth_trials(models=("m",), pruners=("gmp",), n_trials=3)
    with pytest.raises(ValueError, match=r"level keys must be a non-empty subset of .*colour"):
        weighted_bias(df, "x", [({"colour": "red"}, 1.0)], "deepsparse", "openvino")
    with pytest.raises(ValueError, match="`denominator` must differ from `numerator`"):
        weighted_bias(df, "x", [(REF, 1.0)], "openvino", "openvino")
    with pytest.raises(ValueError, match="at least one level with a non-zero weight"):
        weighted_bias(df, "x", [(REF, 1.0), (REF, -1.0)], "deepsparse", "openvino")


def _records(intel_sparsity: float, nm_trained: bool) -> list:
    """Manifest stand-ins: mobilenetv1's Intel file at ``intel_sparsity``, its NM file gated."""
    from types import SimpleNamespace as R

    out = []
    for model in ("resnet18", "mobilenetv1"):
        for level in (REF, NM, INTEL, VENDOR, BLOCK4, EXPORTER):
            odd = model == "mobilenetv1"
            sparsity = intel_sparsity if (odd and level is INTEL) else 0.9
            trained = nm_trained if (odd and level is NM) else True
            out.append(R(model=model, **level, measured_sparsity=sparsity, trained=trained))
    return out


def test_the_set_apart_rule_holds_in_the_home_advantage_test(trials):
    # mobilenetv1's Intel file is 3 points sparser than the reference, its NM file below the gate:
    # each test that compares one of them shows mobilenetv1 apart and pools resnet18 alone.
    from study.analysis.summary import apart_for_levels

    records = _records(intel_sparsity=0.93, nm_trained=False)
    models = ["resnet18", "mobilenetv1"]

    def apart(levels):
        return apart_for_levels(records, levels, models, 0.8)

    pair = [("deepsparse", "openvino")]
    judged = home_advantage(trials, [NM_T, INTEL_T], pair, apart=apart)
    plain = home_advantage(trials[trials["model"] == "resnet18"], [NM_T, INTEL_T], pair)
    names = {"toolchain:neuralmagic", "toolchain:intel", "interaction:neuralmagic/intel"}
    names |= {"additivity:neuralmagic"}
    assert {r.channel for r in judged} == names
    for name in names:
        rows = {r.model: r for r in judged if r.channel == name}
        alone = next(r for r in plain if r.channel == name and r.model == "pooled")
        assert rows["pooled"].k == 1 and rows["pooled"].estimate == alone.estimate
        assert (
            rows["pooled"].ci_low == alone.ci_low
            and "set apart: mobilenetv1" in rows["pooled"].note
        )
        note = rows["mobilenetv1"].note
        assert note.startswith("set apart, not in the pooled B: ")
        gated = name != "toolchain:intel"  # every test but Intel's own B compares the NM file
        assert ("below the accuracy gate of 80%" in note) == gated
        sparse = name in ("toolchain:intel", "interaction:neuralmagic/intel")
        assert ("more than 1 point of overall sparsity (93.0% vs 90.0%)" in note) == sparse
    # Within the tolerance and above the gate nothing is set apart: the pool is unchanged.
    fine = _records(intel_sparsity=0.905, nm_trained=True)
    kept = home_advantage(
        trials, [NM_T, INTEL_T], pair,
        apart=lambda levels: apart_for_levels(fine, levels, models, 0.8),
    )  # fmt: skip
    assert [r.estimate for r in kept] == [
        r.estimate for r in home_advantage(trials, [NM_T, INTEL_T], pair)
    ]
    assert all(r.k == 2 for r in kept if r.model == "pooled")


def test_a_test_whose_every_architecture_is_set_apart_says_so(trials):
    rows = home_advantage(
        trials, [INTEL_T], [("deepsparse", "openvino")],
        apart=lambda levels: {"resnet18": "x", "mobilenetv1": "y"},
    )  # fmt: skip
    pooled = next(r for r in rows if r.model == "pooled")
    assert pooled.k == 0 and math.isnan(pooled.estimate)
    assert pooled.note == "pooled 0 architectures: every one is set apart (see their notes)"


def test_the_answer_sentence_gives_each_vendors_own_number_of_architectures():
    """Intel's B pooled two architectures while Neural Magic's one: the sentence said "k = 1"."""
    from types import SimpleNamespace

    from study.analysis.toolchain_text import _files_note, _sentences

    def row(channel, k, est):
        return SimpleNamespace(channel=channel, k=k, estimate=est, ci_low=est - 0.1,
                               ci_high=est + 0.1, numerator="deepsparse", denominator="openvino",
                               note="")  # fmt: skip

    text = _sentences([row("toolchain:neuralmagic", 1, 1.09), row("toolchain:intel", 2, 0.885)],
                      "", "fp32")  # fmt: skip
    assert text == [
        "- Neural Magic's toolchain moves DeepSparse/OpenVINO by +9.0% [-1.0%, +19.0%] (pooled "
        "over 1 architecture); Intel's by -11.5% [-21.5%, -1.5%] (pooled over 2 architectures); "
        "fp32."
    ]
    forms = {"openvino": "fq", "deepsparse": "qdq", "onnxruntime": "qdq"}

    def rec(pruner, quant="nncf"):
        return SimpleNamespace(model="resnet18", pruner=pruner, onnx_path=f"{pruner}.onnx",
                               quant=quant,
                               extra={"engine_file_forms": forms, "qdq_path": "q.onnx"})  # fmt: skip

    notes = _files_note(
        [rec("nncf"), rec("gmp"), rec("gmp", "nncf_ptq")], ("openvino", "deepsparse")
    )
    assert notes[0].startswith("- resnet18, Intel's toolchain, int8: OpenVINO measured NNCF's")
    assert notes[1].startswith("- resnet18, NNCF's int8 of the gmp weights (quantizer:nncf): ")
    assert notes[2].startswith("- resnet18, NNCF's int8 of the gmp weights (quantizer:nncf_ptq): ")


def test_whole_toolchains_match_each_architectures_own_sparsity(trials):
    """quick prunes MobileNetV1 to 80% and ResNet-18 to 90% (model_sparsity): the whole-toolchain
    columns, taken from the first architecture, matched no MobileNetV1 row while they held 0.9."""
    from study.config import load_config
    from study.design import whole_toolchains

    fp32 = [w for w in whole_toolchains(load_config("quick")) if not w.name.endswith(":int8")]
    assert {w.name for w in fp32} == {"neuralmagic", "intel"}
    for w in fp32:
        assert "sparsity" not in w.variant and "sparsity" not in w.reference
        assert all("sparsity" not in a and "sparsity" not in b for a, b in w.singles)
    mobile = (trials["model"] == "mobilenetv1") & (trials["sparsity"] == 0.9)
    mixed = trials.assign(sparsity=np.where(mobile, 0.8, trials["sparsity"]))
    rows = home_advantage(mixed, fp32, [("deepsparse", "openvino")])
    for name in ("toolchain:intel", "toolchain:neuralmagic", "interaction:neuralmagic/intel"):
        found = [r for r in rows if r.channel == name]
        assert {r.model for r in found} == {"mobilenetv1", "resnet18", "pooled"}, name
        assert all(math.isfinite(r.estimate) for r in found), name
