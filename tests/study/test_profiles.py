"""Tests of study.make.profiles: vendor/global/uniform profiles and block4 masks as recipe rewrites."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import baselines  # noqa: F401  (registers SparseML's toolchain with the training loop)
from gmp.masks import n_zeros_for
from gmp.recipe import load_recipe
from study.make.data import digits, loaders
from study.make.models import build_model
from study.make.profiles import (
    MASK_TYPES,
    PROFILES,
    layer_targets,
    profile_recipe,
    vendor_dense_layers,
)
from study.make.train import TrainConfig, train

TARGET = 0.8
RECIPE = f"""
num_epochs: 3.0
pruning_end: 2.0
target_sparsity: {TARGET}
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !LearningRateFunctionModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
    lr_func: cosine
    init_lr: 0.05
    final_lr: 0.001
pruning_modifiers:
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: eval(target_sparsity)
    start_epoch: 0.0
    end_epoch: eval(pruning_end)
    update_frequency: 0.5
"""


def _mobile_net(seed: int = 0) -> nn.Sequential:
    """A stem, two depthwise convs, four pointwise convs and a classifier (8.5% dense share)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 0: stem
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # 3: depthwise
        nn.Conv2d(8, 32, 1, bias=False),  # 4
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32, bias=False),  # 6: depthwise
        nn.Conv2d(32, 64, 1, bias=False),  # 7
        nn.ReLU(),
        nn.Conv2d(64, 64, 1, bias=False),  # 9
        nn.ReLU(),
        nn.Conv2d(64, 64, 1, bias=False),  # 11
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),  # 15: classifier
    )


def _zeros(model: nn.Module, names) -> dict[str, int]:
    params = dict(model.named_parameters())
    return {n: int((params[n] == 0).sum()) for n in names}


def _numel(model: nn.Module, names) -> dict[str, int]:
    params = dict(model.named_parameters())
    return {n: params[n].numel() for n in names}


# ---------------------------------------------------------------------------- layers


def test_vendor_dense_layers_of_mobilenetv1_are_stem_13_depthwise_and_classifier():
    model = build_model("mobilenetv1")
    depthwise = [
        f"{name}.weight"
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1
    ]
    assert len(depthwise) == 13 and all(n.endswith("conv_dw.weight") for n in depthwise)
    # timm's MobileNetV1: conv_stem, 13 blocks of (conv_dw, conv_pw), classifier.
    assert vendor_dense_layers(model) == ["conv_stem.weight", *depthwise, "classifier.weight"]


def test_vendor_dense_layers_of_the_small_net():
    assert vendor_dense_layers(_mobile_net()) == ["0.weight", "3.weight", "6.weight", "15.weight"]


def test_uniform_and_global_targets():
    model = _mobile_net()
    uniform = layer_targets(model, "uniform", 0.7)
    assert list(uniform) == [n for n, p in model.named_parameters() if p.dim() > 1]
    assert set(uniform.values()) == {0.7}
    assert layer_targets(model, "global", 0.7) is None


@pytest.mark.parametrize("name", ["mobilenetv1", "efficientnet_b0", "mobilevit_xs"])
def test_vendor_targets_ramp_in_three_groups_and_match_overall_sparsity(name):
    model = build_model(name)
    targets = layer_targets(model, "vendor", 0.9)
    numel = _numel(model, targets)
    dense = vendor_dense_layers(model)
    assert [n for n, s in targets.items() if s == 0.0] == dense
    ramp = [s for n, s in targets.items() if n not in dense]
    assert ramp == sorted(ramp)  # consecutive groups, less sparse first
    levels = sorted(set(ramp))
    assert 2 <= len(levels) <= 3 and max(levels) <= 0.99
    uncapped = [s for s in levels if s < 0.99]
    assert all(b - a == pytest.approx(0.05) for a, b in zip(uncapped, uncapped[1:]))
    zeros = sum(n_zeros_for(s, numel[n]) for n, s in targets.items())
    assert abs(zeros / sum(numel.values()) - 0.9) <= 0.002


def test_vendor_raises_when_dense_layers_exceed_the_allowed_share():
    model = _mobile_net()  # dense share 1216 / 11712 = 10.4%
    with pytest.raises(ValueError, match=r"Sequential.*hold 10\.4%.*target sparsity 0\.95"):
        layer_targets(model, "vendor", 0.95)


@pytest.mark.parametrize(
    ("profile", "sparsity", "match"),
    [
        ("ramp", 0.5, r"`profile` must be one of \['uniform', 'vendor', 'global'\]; got 'ramp'"),
        ("uniform", 1.0, r"`sparsity` must be in \(0, 1\); got 1\.0"),
    ],
)
def test_layer_targets_rejects_bad_arguments(profile, sparsity, match):
    with pytest.raises(ValueError, match=match):
        layer_targets(_mobile_net(), profile, sparsity)


# ---------------------------------------------------------------------------- recipe text


@pytest.mark.parametrize(
    ("profile", "mask", "match"),
    [
        ("layerwise", "unstructured", r"\['uniform', 'vendor', 'global'\]; got 'layerwise'"),
        ("uniform", "2:4", r"`mask` must be one of \['unstructured', 'block4'\]; got '2:4'"),
    ],
)
def test_profile_recipe_rejects_unknown_values(profile, mask, match):
    with pytest.raises(ValueError, match=match):
        profile_recipe(RECIPE, _mobile_net(), profile, mask)


def test_profile_recipe_needs_one_pruning_modifier():
    text = RECIPE.split("pruning_modifiers:")[0]
    with pytest.raises(ValueError, match="exactly one pruning modifier.*found 0"):
        profile_recipe(text, _mobile_net(), "uniform", "unstructured")


def _tagged(text: str) -> dict:
    """The recipe as plain data: ``!Name`` mappings as {"!Name": args}."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor(
        "!", lambda loader, tag, node: {"!" + tag: loader.construct_mapping(node, deep=True)}
    )
    return yaml.load(text, Loader=Loader)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("mask", MASK_TYPES)
def test_round_trip_keeps_other_modifiers_and_variables(profile, mask):
    text = profile_recipe(RECIPE, _mobile_net(), profile, mask)
    assert text == profile_recipe(RECIPE, _mobile_net(), profile, mask)  # deterministic
    before, after = _tagged(RECIPE), _tagged(text)
    assert list(after) == list(before)  # variables and modifier lists, in order
    for key in ("num_epochs", "pruning_end", "target_sparsity", "training_modifiers"):
        assert after[key] == before[key]
    assert "eval(num_epochs)" in text and "eval(pruning_end)" in text
    (modifier,) = after["pruning_modifiers"]
    (tag, args) = modifier.popitem()
    original = before["pruning_modifiers"][0]["!GMPruningModifier"]
    assert tag == (
        "!GlobalMagnitudePruningModifier" if profile == "global" else "!GMPruningModifier"
    )
    assert args.get("mask_type", "unstructured") == mask
    changed = {"mask_type"} | ({"params", "final_sparsity"} if profile == "vendor" else set())
    if (profile, mask) == ("global", "block4"):  # the block target of equal weight sparsity
        changed.add("final_sparsity")
    assert {k: v for k, v in args.items() if k not in changed} == {
        k: v for k, v in original.items() if k not in changed
    }
    parsed, reference = load_recipe(text), load_recipe(RECIPE)
    assert (parsed.lr, parsed.epochs, parsed.variables) == (
        reference.lr,
        reference.epochs,
        reference.variables,
    )


def _weights_pruned(model: nn.Module, target: float) -> float:
    from gmp.masks import compute_masks, parse_mask_type

    scores = [p.detach().abs() for p in model.parameters() if p.dim() > 1]
    masks = compute_masks(scores, [target] * len(scores), parse_mask_type("block4"), True)
    return sum(int((~m).sum()) for m in masks) / sum(m.numel() for m in masks)


def test_global_block4_targets_the_share_of_weights_not_of_blocks():
    """Depthwise layers have 1-weight blocks; when they survive, a global block threshold at 80%
    pruned more than 80% of the weights (MobileNetV1: 82.9%). The rewritten recipe's block target
    prunes the recipe's share of weights, so the B compares files of equal sparsity."""
    model = _mobile_net()
    with torch.no_grad():
        for i in (3, 6):  # large depthwise weights: their 1-weight blocks are kept
            model[i].weight.mul_(10.0)
    assert _weights_pruned(model, TARGET) > TARGET + 0.01  # the overshoot, uncorrected
    text = profile_recipe(RECIPE, model, "global", "block4")
    (spec,) = [s for s in load_recipe(text).pruning if s.kind == "gmp"]
    assert spec.final_sparsity < TARGET
    assert abs(_weights_pruned(model, spec.final_sparsity) - TARGET) < 0.005
    # without depthwise layers the blocks are all 1x4: the target stays the recipe's
    plain = nn.Sequential(nn.Conv2d(8, 32, 1), nn.Conv2d(32, 64, 1))
    (spec,) = [s for s in load_recipe(profile_recipe(RECIPE, plain, "global", "block4")).pruning
               if s.kind == "gmp"]  # fmt: skip
    assert spec.final_sparsity == pytest.approx(TARGET, abs=1e-4)


def test_uniform_unstructured_recipe_is_the_same_recipe():
    text = profile_recipe(RECIPE, _mobile_net(), "uniform", "unstructured")
    assert load_recipe(text) == load_recipe(RECIPE)


def test_vendor_recipe_is_sparsemls_per_layer_form():
    model = _mobile_net()
    args = _tagged(profile_recipe(RECIPE, model, "vendor", "unstructured"))["pruning_modifiers"]
    args = args[0]["!GMPruningModifier"]
    assert args["params"] == []
    targets = layer_targets(model, "vendor", TARGET)
    expected: dict[float, list[str]] = {}
    for name, sparsity in targets.items():
        if sparsity > 0:
            expected.setdefault(sparsity, []).append(name)
    assert args["final_sparsity"] == expected
    assert list(args["final_sparsity"]) == sorted(expected)


# ---------------------------------------------------------------------------- pruning runs


def test_vendor_profile_through_gmp_leaves_exactly_the_dense_layers_dense():
    model = build_model("mobilenetv1", num_classes=10, seed=0)
    recipe = """
target_sparsity: 0.9
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 2.0
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: eval(target_sparsity)
    start_epoch: 0.0
    end_epoch: 1.0
    update_frequency: 0.5
"""
    text = profile_recipe(recipe, model, "vendor", "unstructured")
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    train_loader = DataLoader(TensorDataset(images, labels), batch_size=4)  # 2 steps per epoch
    val_loader = DataLoader(TensorDataset(images[:4], labels[:4]), batch_size=4)
    config = TrainConfig(lr=0.01, momentum=0.9, log_zeros_every=0)
    result = train(model, text, train_loader, val_loader, "gmp", config, progress=False)
    targets = layer_targets(model, "vendor", 0.9)
    numel = _numel(result.model, targets)
    zeros = _zeros(result.model, targets)
    assert [n for n, z in zeros.items() if z == 0] == vendor_dense_layers(model)
    assert zeros == {n: n_zeros_for(s, numel[n]) for n, s in targets.items()}
    assert abs(sum(zeros.values()) / sum(numel.values()) - 0.9) <= 0.002


@pytest.fixture(scope="module")
def digits_data():
    train_ds, val_ds = digits(image_size=8, channels=3, seed=0)
    # 256 training images, batch 64: 4 steps per epoch.
    return loaders(Subset(train_ds, range(256)), val_ds, batch_size=64, seed=0)


@pytest.mark.parametrize(
    ("profile", "mask"),
    [
        ("uniform", "unstructured"),
        ("vendor", "unstructured"),
        ("global", "unstructured"),
        ("uniform", "block4"),
    ],
)
def test_gmp_and_sparseml_prune_identically(digits_data, tmp_path, monkeypatch, profile, mask):
    monkeypatch.chdir(tmp_path)  # in case SparseML writes ./sparse_logs/
    text = profile_recipe(RECIPE, _mobile_net(), profile, mask)
    config = TrainConfig(lr=0.05, momentum=0.9, weight_decay=1e-4)
    runs = {
        toolchain: train(
            _mobile_net(), text, *digits_data, toolchain=toolchain, config=config, progress=False
        )
        for toolchain in ("gmp", "sparseml")
    }
    gmp_run, ref_run = runs["gmp"], runs["sparseml"]
    assert [s.zeros for s in gmp_run.steps] == [s.zeros for s in ref_run.steps]
    expected = dict(ref_run.model.named_parameters())
    for name, param in gmp_run.model.named_parameters():
        assert torch.equal(param != 0, expected[name] != 0), name  # the same mask tensors
        torch.testing.assert_close(param, expected[name], rtol=1e-5, atol=1e-6)
    names = [n for n, p in gmp_run.model.named_parameters() if p.dim() > 1]
    zeros, numel = _zeros(gmp_run.model, names), _numel(gmp_run.model, names)
    overall = sum(zeros.values()) / sum(numel.values())
    if mask == "unstructured":
        assert abs(overall - TARGET) <= 0.002, overall
    targets = layer_targets(gmp_run.model, profile, TARGET)
    if profile == "vendor":
        assert zeros == {n: n_zeros_for(s, numel[n]) for n, s in targets.items()}
    if profile == "global":  # one threshold: uneven per layer, exact overall
        assert sum(zeros.values()) == n_zeros_for(TARGET, sum(numel.values()))
        assert len({round(zeros[n] / numel[n], 2) for n in names}) > 1
    if mask == "block4":  # every 1x4 block along the input channel is all-zero or all-kept
        weight = gmp_run.model[9].weight.detach()[:, :, 0, 0]  # [64, 64]
        blocks = (weight.reshape(64, 16, 4) == 0).sum(-1)
        assert set(blocks.unique().tolist()) <= {0, 4}
