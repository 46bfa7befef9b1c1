"""gmp.recipe.load_recipe, checked field by field against SparseML 1.8's own recipe parser.

Reference: ``sparseml.pytorch.optim.ScheduledModifierManager.from_yaml(text)`` (sparseml 1.8.0),
whose modifiers' attributes are compared with the specs gmp produces for the same text. The
recipes are gmp's test data (gmp/tests/data) and the recipes shipped with gmp; gmp's tests of
values and errors are in gmp/tests/test_recipe.py.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

from gmp.recipe import load_recipe  # noqa: E402
from gmp.spec import PruningModifierSpec  # noqa: E402

RECIPES = files("gmp") / "recipes"
DATA = Path(__file__).resolve().parents[2] / "gmp" / "tests" / "data"
MIXED = (DATA / "mixed_recipe.yaml").read_text()
MARKDOWN = (DATA / "recipe_card.md").read_text()


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


def test_variable_overrides_match_sparseml():
    recipe = load_recipe(MIXED, variables={"num_epochs": 20})
    _assert_same_as_sparseml(
        recipe, _sparseml_modifiers(MIXED, recipe_variables={"num_epochs": 20})
    )
    assert recipe.epochs == 20.0
    assert recipe.variables["prune_end"] == 12.0
