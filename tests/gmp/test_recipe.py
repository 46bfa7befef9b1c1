"""gmp.recipe.load_recipe, checked field by field against SparseML 1.8's own recipe parser.

Reference: ``sparseml.pytorch.optim.ScheduledModifierManager.from_yaml(text)`` (sparseml 1.8.0),
whose modifiers' attributes are compared with the specs gmp produces for the same text.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

from gmp.recipe import MODIFIERS, load_recipe  # noqa: E402
from gmp.spec import PruningModifierSpec  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "gmp" / "recipes"

MIXED = """
version: 1.1.0
num_epochs: 12
half: eval(num_epochs / 2)
prune_end: eval(half + 2)
freq: 0.5
blocks: ["re:.*conv2.weight"]
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !LearningRateModifier
    start_epoch: 0
    end_epoch: eval(half)
    lr_class: StepLR
    lr_kwargs: {step_size: 2, gamma: 0.5}
    init_lr: 0.1
  - !LearningRateModifier
    start_epoch: eval(half)
    lr_class: ExponentialLR
    lr_kwargs: {gamma: 0.9}
    init_lr: 0.01
  - !LearningRateFunctionModifier
    start_epoch: 1
    end_epoch: 3
    lr_func: cosine
    init_lr: 0.2
    final_lr: 0.0
    param_groups: [1]
  - !SetLearningRateModifier
    start_epoch: eval(num_epochs - 1)
    learning_rate: 0.001
pruning_modifiers:
  - !GMPruningModifier
    init_sparsity: 0.05
    final_sparsity: {0.9: ["conv1.weight", "fc.weight"], 0.7: ["re:layer1.*weight"]}
    start_epoch: 1
    end_epoch: eval(prune_end)
    update_frequency: eval(freq)
    params: []
  - !MagnitudePruningModifier
    init_sparsity: __FROM_PARAM__
    final_sparsity: 0.6
    start_epoch: 2.0
    end_epoch: 5.5
    update_frequency: -1
    params: eval(blocks)
    inter_func: linear
    mask_type: block4
    leave_enabled: False
  - !GlobalMagnitudePruningModifier
    init_sparsity: 0.0
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 4.0
    update_frequency: 1.0
    params: __ALL_PRUNABLE__
    mask_type: [1, 4]
  - !ConstantPruningModifier
    params: ["re:.*bn.*"]
    start_epoch: eval(prune_end)
"""

MARKDOWN = """---
num_epochs: 5
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !GMPruningModifier
    init_sparsity: 0.05
    final_sparsity: 0.5
    start_epoch: 0.0
    end_epoch: 3.0
    update_frequency: 1.0
    params: ["re:.*weight"]
    inter_func: inverse_cubic
---

# A recipe card
Text after the front matter is ignored.
"""


def _sparseml_modifiers(text_or_path, **kwargs):
    from sparseml.pytorch.optim import ScheduledModifierManager

    manager = ScheduledModifierManager.from_yaml(text_or_path, **kwargs)
    return list(manager.modifiers)  # a copy: the manager empties its list when collected


def _expected_pruning(mod) -> list[tuple]:
    """gmp spec tuples for one SparseML pruning modifier (a dict target -> one per target)."""
    name = type(mod).__name__
    if name == "ConstantPruningModifier":
        fields = (mod.params, mod.start_epoch, mod.end_epoch, float(mod.update_frequency))
        return [("constant", tuple(fields[0]), *fields[1:], False)]
    common = (
        mod.init_sparsity,
        mod.start_epoch,
        mod.end_epoch,
        float(mod.update_frequency),
        mod.inter_func,
        tuple(mod.mask_type) if isinstance(mod.mask_type, list) else mod.mask_type,
        mod.global_sparsity,
        mod.leave_enabled,
    )
    params = mod.params if isinstance(mod.params, list) else [mod.params]
    if isinstance(mod.final_sparsity, dict):
        return [
            ("gmp", tuple(names), target, *common) for target, names in mod.final_sparsity.items()
        ]
    return [("gmp", tuple(params), mod.final_sparsity, *common)]


def _spec_tuple(spec: PruningModifierSpec) -> tuple:
    if spec.kind == "constant":
        return (
            "constant",
            spec.params,
            spec.start_epoch,
            spec.end_epoch,
            spec.update_frequency,
            spec.leave_enabled,
        )
    return (
        "gmp",
        spec.params,
        spec.final_sparsity,
        spec.init_sparsity,
        spec.start_epoch,
        spec.end_epoch,
        spec.update_frequency,
        spec.inter_func,
        spec.mask_type,
        spec.global_sparsity,
        spec.leave_enabled,
    )


def _expected_lr(mod) -> tuple | None:
    name = type(mod).__name__
    groups = getattr(mod, "param_groups", None)
    groups = tuple(groups) if groups is not None else None
    if name == "SetLearningRateModifier":
        return ("set", mod.start_epoch, mod.end_epoch, mod.learning_rate, groups)
    if name == "LearningRateFunctionModifier":
        return ("function", mod.start_epoch, mod.end_epoch, mod.lr_func, mod.init_lr,
                mod.final_lr, mod.cycle_epochs, groups)  # fmt: skip
    if name == "LearningRateModifier":
        kwargs = mod.lr_kwargs  # SparseML rewrites ExponentialLR as StepLR(step_size=1.0)
        miles = tuple(kwargs["milestones"]) if "milestones" in kwargs else None
        return ("scheduler", mod.start_epoch, mod.end_epoch, mod.init_lr, mod.lr_class,
                kwargs["gamma"], kwargs.get("step_size"), miles)  # fmt: skip
    return None


def _lr_tuple(spec) -> tuple:
    if spec.kind == "set":
        return ("set", spec.start_epoch, spec.end_epoch, spec.learning_rate, spec.param_groups)
    if spec.kind == "function":
        return ("function", spec.start_epoch, spec.end_epoch, spec.lr_func, spec.init_lr,
                spec.final_lr, spec.cycle_epochs, spec.param_groups)  # fmt: skip
    lr_class, step = spec.lr_class, spec.step_size
    if lr_class == "ExponentialLR":
        lr_class, step = "StepLR", 1.0
    return ("scheduler", spec.start_epoch, spec.end_epoch, spec.init_lr, lr_class, spec.gamma,
            step, spec.milestones)  # fmt: skip


def _assert_same_as_sparseml(recipe, modifiers):
    pruning_names = {
        "GMPruningModifier",
        "MagnitudePruningModifier",
        "GlobalMagnitudePruningModifier",
        "ConstantPruningModifier",
    }
    expected_pruning = [
        t for m in modifiers if type(m).__name__ in pruning_names for t in _expected_pruning(m)
    ]
    expected_lr = [t for t in map(_expected_lr, modifiers) if t is not None]
    assert sorted(map(repr, map(_spec_tuple, recipe.pruning))) == sorted(
        map(repr, expected_pruning)
    )
    assert sorted(map(repr, map(_lr_tuple, recipe.lr))) == sorted(map(repr, expected_lr))
    ranges = [m for m in modifiers if type(m).__name__ == "EpochRangeModifier"]
    if ranges:
        assert recipe.epochs == max(m.end_epoch for m in ranges)


def test_mixed_recipe_matches_sparseml():
    recipe = load_recipe(MIXED)
    _assert_same_as_sparseml(recipe, _sparseml_modifiers(MIXED))
    assert len(recipe.pruning) == 5  # the dict target expands to two specs
    assert recipe.variables["prune_end"] == 8.0
    assert recipe.variables["blocks"] == ["re:.*conv2.weight"]
    assert recipe.epochs == 12.0


def test_seed_study_recipe_matches_sparseml():
    path = RECIPES / "seed_study.yaml"
    recipe = load_recipe(path)
    _assert_same_as_sparseml(recipe, _sparseml_modifiers(str(path)))
    assert sorted(s.final_sparsity for s in recipe.pruning) == [0.5, 0.7, 0.8, 0.85, 0.9]
    assert {(s.init_sparsity, s.update_frequency) for s in recipe.pruning} == {(0.05, 1.0)}
    assert recipe.epochs > max(s.end_epoch for s in recipe.pruning)  # fine-tuning after pruning


def test_seed_study_params_resolve_on_resnet18_with_sparseml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # SparseML writes logs to ./sparse_logs
    # SparseML raises if any pattern matches no parameter of the model.
    import torchvision
    from sparseml.pytorch.optim import ScheduledModifierManager

    model = torchvision.models.resnet18(num_classes=10)
    manager = ScheduledModifierManager.from_yaml(str(RECIPES / "seed_study.yaml"))
    manager.initialize(model, epoch=0.0, loggers=[])
    counts = [len(m.module_masks.layers) for m in manager.modifiers if hasattr(m, "module_masks")]
    # layer1: 4 convs; layer2-4: 4 convs + 1 downsample each; fc: 1.
    assert sorted(counts) == [1, 4, 5, 5, 5]


def test_global_recipe_matches_sparseml():
    path = RECIPES / "global_step_lr.yaml"
    recipe = load_recipe(path)
    _assert_same_as_sparseml(recipe, _sparseml_modifiers(str(path)))
    assert recipe.pruning[0].global_sparsity is True


def test_markdown_front_matter_matches_sparseml():
    recipe = load_recipe(MARKDOWN)
    _assert_same_as_sparseml(recipe, _sparseml_modifiers(MARKDOWN))
    assert recipe.pruning[0].inter_func == "inverse_cubic"
    assert recipe.epochs == 5.0


def test_markdown_file(tmp_path):
    path = tmp_path / "recipe.md"
    path.write_text(MARKDOWN)
    assert load_recipe(path) == load_recipe(MARKDOWN)


def test_variable_overrides_match_sparseml():
    recipe = load_recipe(MIXED, variables={"num_epochs": 20})
    _assert_same_as_sparseml(
        recipe, _sparseml_modifiers(MIXED, recipe_variables={"num_epochs": 20})
    )
    assert recipe.epochs == 20.0
    assert recipe.variables["prune_end"] == 12.0


def test_override_of_undefined_variable_raises():
    with pytest.raises(ValueError, match="'epochs'.*does not define"):
        load_recipe(MIXED, variables={"epochs": 3})


def test_epochs_without_epoch_range_is_largest_end():
    text = MARKDOWN.replace("  - !EpochRangeModifier\n    start_epoch: 0.0\n", "").replace(
        "    end_epoch: eval(num_epochs)\n", ""
    )
    assert load_recipe(text).epochs == 3.0


def test_unknown_modifier_lists_supported():
    text = "modifiers:\n  - !QuantizationModifier\n    start_epoch: 0.0\n"
    with pytest.raises(ValueError, match="unknown modifier !QuantizationModifier") as info:
        load_recipe(text)
    assert all(name in str(info.value) for name in MODIFIERS)


def test_unknown_argument_lists_supported():
    text = MARKDOWN.replace("inter_func: inverse_cubic", "inter_fnuc: cubic")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['inter_fnuc'\].*inter_func"):
        load_recipe(text)


def test_missing_required_argument():
    text = MARKDOWN.replace("    update_frequency: 1.0\n", "")
    with pytest.raises(ValueError, match=r"missing required \['update_frequency'\]"):
        load_recipe(text)


def test_malformed_yaml_names_line():
    text = "num_epochs: 5\nmodifiers:\n  - !EpochRangeModifier\n    start_epoch: [0.0\n"
    with pytest.raises(ValueError, match="malformed recipe YAML: line 5"):
        load_recipe(text)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("final_sparsity: 0.5", "final_sparsity: 1.0", r"`final_sparsity` must be a number in \(0, 1\); got 1.0"),
        ("init_sparsity: 0.05", "init_sparsity: -0.1", r"`init_sparsity` must be a number in \[0, 1\)"),
        ("end_epoch: 3.0", "end_epoch: 0.0", r"`end_epoch` must be > start_epoch"),
        ("update_frequency: 1.0", "update_frequency: 0", r"`update_frequency` must be > 0"),
        ("inter_func: inverse_cubic", "inter_func: quadratic", r"`inter_func` must be one of"),
        ('params: ["re:.*weight"]', "params: re:.*weight", r"`params` must be"),
        ("start_epoch: 0.0\n    end_epoch: 3.0", "start_epoch: -1\n    end_epoch: 3.0", r"`start_epoch` must be a number >= 0"),
    ],
)  # fmt: skip
def test_invalid_values_name_field_value_and_allowed(old, new, message):
    assert old in MARKDOWN
    with pytest.raises(ValueError, match=message):
        load_recipe(MARKDOWN.replace(old, new))


def test_eval_cannot_run_python():
    text = MARKDOWN.replace("eval(num_epochs)", "eval(__import__('os').getcwd())")
    with pytest.raises(ValueError, match="unsupported syntax|not allowed"):
        load_recipe(text)


def test_eval_with_undefined_variable_names_it():
    text = MARKDOWN.replace("eval(num_epochs)", "eval(epochs + 1)")
    with pytest.raises(ValueError, match="unknown variable 'epochs'"):
        load_recipe(text)


def test_dict_final_sparsity_with_params_raises():
    text = MIXED.replace("    params: []\n", '    params: ["fc.weight"]\n', 1)
    with pytest.raises(ValueError, match=r"`params` must be \[\] when final_sparsity is a dict"):
        load_recipe(text)


def test_lr_modifier_validation():
    text = MIXED.replace("learning_rate: 0.001", "learning_rate: 2.0")
    with pytest.raises(ValueError, match=r"`learning_rate` must be a number in \(0, 1\]"):
        load_recipe(text)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
