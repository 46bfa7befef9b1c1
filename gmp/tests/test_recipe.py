"""gmp.recipe.load_recipe: values, errors and the recipes shipped with gmp.

Field-by-field comparisons with SparseML 1.8's own recipe parser are in the repository's
tests/gmp/test_recipe.py; they read the same recipe files (tests/data here).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from gmp.recipe import MODIFIERS, load_recipe

DATA = Path(__file__).resolve().parent / "data"
MIXED = (DATA / "mixed_recipe.yaml").read_text()  # every modifier, variables, eval(...)
MARKDOWN = (DATA / "recipe_card.md").read_text()  # YAML front matter in a markdown card
RECIPES = files("gmp") / "recipes"  # package data: installed with the distribution


def test_mixed_recipe_values():
    recipe = load_recipe(MIXED)
    assert len(recipe.pruning) == 5  # the dict target expands to two specs
    assert len(recipe.lr) == 4
    assert recipe.variables["prune_end"] == 8.0
    assert recipe.variables["blocks"] == ["re:.*conv2.weight"]
    assert recipe.epochs == 12.0


def test_shipped_recipes_are_package_data():
    names = sorted(p.name for p in RECIPES.iterdir() if p.name.endswith(".yaml"))
    assert names == ["global_step_lr.yaml", "seed_study.yaml"]
    seed = load_recipe(RECIPES / "seed_study.yaml")
    assert sorted(s.final_sparsity for s in seed.pruning) == [0.5, 0.7, 0.8, 0.85, 0.9]
    assert seed.epochs > max(s.end_epoch for s in seed.pruning)  # fine-tuning after pruning
    assert load_recipe(RECIPES / "global_step_lr.yaml").pruning[0].global_sparsity is True


def test_markdown_front_matter():
    recipe = load_recipe(MARKDOWN)
    assert recipe.pruning[0].inter_func == "inverse_cubic"
    assert recipe.epochs == 5.0


def test_variable_overrides():
    recipe = load_recipe(MIXED, variables={"num_epochs": 20})
    assert recipe.epochs == 20.0
    assert recipe.variables["prune_end"] == 12.0


def test_markdown_file(tmp_path):
    path = tmp_path / "recipe.md"
    path.write_text(MARKDOWN)
    assert load_recipe(path) == load_recipe(MARKDOWN)


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
