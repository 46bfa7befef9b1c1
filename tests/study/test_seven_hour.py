"""The seven_hour preset (issue 22 item 3) and the keys it needs: per-architecture target
sparsities, a sweep limited to some architectures, the op-profile step."""

from __future__ import annotations

import pytest

from study.config import load_config
from study.design import reference, target_sparsity, variants
from study.make.models import build_model, model_names
from study.make.profiles import _evaluated_target, profile_recipe, with_target

THREE = ("efficientnet_b0", "efficientnet_b2", "mobilevit_xs")  # the original study's self-pruned


def test_seven_hour_preset_loads_and_plans_the_original_questions():
    cfg = load_config("seven_hour")
    assert set(cfg.models) == set(model_names(original_only=True))
    assert set(cfg.engines) == {"onnxruntime", "openvino", "deepsparse"}
    assert cfg.levels("profile") == ("global", "vendor")
    assert cfg.gzip_level == 9 and cfg.opprofile == {"iterations": 10}
    for model in cfg.models:
        plan = variants(cfg, model)
        pruned = [v for v in plan if v.pruner == "gmp"]
        assert {v.profile for v in pruned} == {"global", "vendor"}
        # reference and vendor profile at the architecture's sparsity, not the recipe's 0.9
        assert {v.sparsity for v in pruned} == {cfg.model_sparsity[model]}
        assert reference(cfg, model).sparsity == cfg.model_sparsity[model]
        sweep = sorted(v.sparsity for v in plan if v.pruner == "oneshot")
        assert sweep == ([0.85, 0.99] if model in THREE else [])
    assert all(0.54 <= cfg.model_sparsity[m] <= 0.62 for m in THREE)


@pytest.mark.parametrize("model", model_names(original_only=True))
def test_vendor_profile_reaches_each_architectures_target(model):
    cfg = load_config("seven_hour")
    net = build_model(model, num_classes=10)
    text = profile_recipe(cfg.recipe_for(model), net, "vendor", "unstructured")
    assert "final_sparsity" in text
    assert _evaluated_target(cfg.recipe_for(model)) == cfg.model_sparsity[model]


def test_with_target_rewrites_only_the_final_sparsity():
    recipe = load_config("seven_hour").recipe
    assert target_sparsity(recipe) == 0.9
    text = with_target(recipe, 0.58)
    assert target_sparsity(text) == 0.58
    assert "update_frequency: 0.25" in text and "SetLearningRateModifier" in text
    with pytest.raises(ValueError, match=r"`sparsity` must be in \(0, 1\); got 1.5"):
        with_target(recipe, 1.5)
    per_layer = recipe.replace(
        "final_sparsity: eval(target_sparsity)", "final_sparsity: {0.9: [a]}"
    )
    with pytest.raises(ValueError, match="per-layer dict"):
        with_target(per_layer, 0.5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sweep_models": ["resnet51"]}, r"unknown model\(s\) \['resnet51'\] in `sweep_models`"),
        (
            {"model_sparsity": {"vgg19": 1.2}},
            r"`model_sparsity` values must be numbers in \(0, 1\)",
        ),
        ({"model_sparsity": {"vgg20": 0.5}}, r"unknown model\(s\) \['vgg20'\] in `model_sparsity`"),
        ({"model_sparsity": [0.5]}, r"`model_sparsity` must be a mapping"),
        ({"opprofile": {"rounds": 3}}, r"`opprofile` must be null \(off\) or a mapping"),
        ({"opprofile": {"iterations": 0}}, r"`opprofile.iterations` must be a positive integer"),
    ],
)
def test_bad_keys_name_the_value(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config("seven_hour", overrides)


def test_models_flag_picks_a_subset_of_the_preset():
    cfg = load_config("seven_hour", {"models": ["efficientnet_b0"]})
    assert [v.sparsity for v in variants(cfg, "efficientnet_b0") if v.pruner != "none"] == [
        0.58,
        0.58,
        0.85,
        0.99,
    ]


def test_other_presets_are_unchanged_by_the_new_keys():
    cfg = load_config("smoke")
    assert cfg.sweep_models is None and cfg.model_sparsity is None and cfg.opprofile is None
    assert cfg.recipe_for("small_cnn") == cfg.recipe
    assert cfg.sweep_for("small_cnn") == cfg.sweep
