"""gmp.lr.RecipeLR: resuming, removal and input checks.

The per-step comparison with SparseML 1.8's learning-rate modifiers is in the repository's
tests/gmp/test_lr.py.
"""

from __future__ import annotations

import pytest
import torch

from gmp.lr import LRModifierSpec, RecipeLR
from gmp.recipe import load_recipe

SPE = 5  # steps per epoch; 5 puts many epoch boundaries of the recipes off the step grid
STEPS = 6 * SPE


def _optimizer() -> torch.optim.Optimizer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    groups = [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.4}]
    return torch.optim.SGD(groups, lr=0.3, momentum=0.9)


def _gmp_lrs(text: str, steps: int = STEPS) -> list[tuple[float, float]]:
    optimizer = _optimizer()
    RecipeLR(optimizer, load_recipe(text).lr, SPE)
    lrs = []
    for _ in range(steps):
        optimizer.step()
        lrs.append(tuple(group["lr"] for group in optimizer.param_groups))
    return lrs


def _recipe(*modifiers: str) -> str:
    body = "".join(f"  - {m.strip()}\n" for m in modifiers)
    return "modifiers:\n" + body


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
    specs = load_recipe(_recipe(STEP)).lr
    reference = _gmp_lrs(_recipe(STEP))
    optimizer = _optimizer()
    first = RecipeLR(optimizer, specs, SPE)
    lrs = []
    for _ in range(7):
        optimizer.step()
        lrs.append(tuple(g["lr"] for g in optimizer.param_groups))
    state, opt_state = first.state_dict(), optimizer.state_dict()
    first.remove()
    resumed = _optimizer()
    resumed.load_state_dict(opt_state)
    second = RecipeLR(resumed, specs, SPE)
    second.load_state_dict(state)
    assert second.steps == 7
    for _ in range(STEPS - 7):
        resumed.step()
        lrs.append(tuple(g["lr"] for g in resumed.param_groups))
    assert lrs == reference


def test_remove_stops_changing_lr():
    optimizer = _optimizer()
    sched = RecipeLR(optimizer, load_recipe(_recipe(LINEAR)).lr, SPE)
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
        RecipeLR(_optimizer(), [], 0)


def test_step_size_below_one_step_raises():
    spec = LRModifierSpec(
        "scheduler", start_epoch=0.0, lr_class="StepLR", gamma=0.5, step_size=0.05, init_lr=0.1
    )
    with pytest.raises(ValueError, match="less than one step"):
        RecipeLR(_optimizer(), [spec], 4)


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
        RecipeLR(_optimizer(), [spec], SPE)
