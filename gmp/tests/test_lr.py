"""gmp.lr.RecipeLR: resuming, removal and input checks.

The per-step comparison with SparseML 1.8's learning-rate modifiers is in the repository's
tests/gmp/test_lr.py.
"""

from __future__ import annotations

import pytest

from gmp.lr import LRModifierSpec, RecipeLR
from gmp.recipe import load_recipe
from gmp.testing import lr_trace, recipe, two_group_sgd

SPE = 5  # steps per epoch; 5 puts many epoch boundaries of the recipes off the step grid
STEPS = 6 * SPE


LINEAR = """!LearningRateFunctionModifier
    start_epoch: 0.5
    end_epoch: 3.3
    lr_func: linear
    init_lr: 0.2
    final_lr: 0.02"""
STEP = """!LearningRateModifier
    start_epoch: 0.0
    end_epoch: 4.3
    lr_class: StepLR
    lr_kwargs: {step_size: 0.8, gamma: 0.5}
    init_lr: 0.2"""


def test_state_dict_resumes_exactly():
    specs = load_recipe(recipe(STEP)).lr
    reference = lr_trace(recipe(STEP), SPE, STEPS)
    optimizer = two_group_sgd()
    first = RecipeLR(optimizer, specs, SPE)
    lrs = []
    for _ in range(7):
        optimizer.step()
        lrs.append(tuple(g["lr"] for g in optimizer.param_groups))
    state, opt_state = first.state_dict(), optimizer.state_dict()
    first.remove()
    resumed = two_group_sgd()
    resumed.load_state_dict(opt_state)
    second = RecipeLR(resumed, specs, SPE)
    second.load_state_dict(state)
    assert second.steps == 7
    for _ in range(STEPS - 7):
        resumed.step()
        lrs.append(tuple(g["lr"] for g in resumed.param_groups))
    assert lrs == reference


def test_remove_stops_changing_lr():
    optimizer = two_group_sgd()
    sched = RecipeLR(optimizer, load_recipe(recipe(LINEAR)).lr, SPE)
    for _ in range(2 * SPE):
        optimizer.step()
    sched.remove()
    before = [g["lr"] for g in optimizer.param_groups]
    for _ in range(SPE):
        optimizer.step()
    assert [g["lr"] for g in optimizer.param_groups] == before
    assert sched.steps == 2 * SPE


def test_steps_per_epoch_validated():
    with pytest.raises(ValueError, match=r"`steps_per_epoch` must be an int >= 1; got 0"):
        RecipeLR(two_group_sgd(), [], 0)


def test_step_size_below_one_step_raises():
    spec = LRModifierSpec(
        "scheduler", start_epoch=0.0, lr_class="StepLR", gamma=0.5, step_size=0.05, init_lr=0.1
    )
    with pytest.raises(ValueError, match="less than one step"):
        RecipeLR(two_group_sgd(), [spec], 4)


def test_spec_validation_names_field():
    with pytest.raises(ValueError, match=r"`lr_kwargs.milestones` must all lie in"):
        LRModifierSpec(
            "scheduler", start_epoch=2.0, lr_class="MultiStepLR", gamma=0.5,
            milestones=(1.0,), init_lr=0.1,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"`lr_func` must be one of"):
        LRModifierSpec("function", 0.0, 1.0, lr_func="step", init_lr=0.1, final_lr=0.0)


def test_param_group_out_of_range_raises():
    spec = LRModifierSpec("set", start_epoch=0.0, learning_rate=0.1, param_groups=(2,))
    with pytest.raises(ValueError, match=r"`param_groups` \[2\].*2 param group"):
        RecipeLR(two_group_sgd(), [spec], SPE)
