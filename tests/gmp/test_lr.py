"""gmp.lr.RecipeLR: the per-step learning rates equal SparseML 1.8's for the same recipe.

Reference: ``ScheduledModifierManager.from_yaml(text).modify(model, optimizer, spe)`` (sparseml
1.8.0) stepping an SGD optimizer; ``optimizer.param_groups[g]["lr"]`` is recorded after every
step (it is the LR that step used: both set it before the step and never after).
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

from gmp.testing import lr_trace, recipe, two_group_sgd  # noqa: E402


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    # SparseML writes its modifier logs to ./sparse_logs whatever loggers it is given.
    monkeypatch.chdir(tmp_path)


SPE = 5  # steps per epoch; 5 puts many epoch boundaries of the recipes off the step grid
STEPS = 6 * SPE


def _sparseml_lrs(text: str, steps: int = STEPS) -> list[tuple[float, float]]:
    from sparseml.pytorch.optim import ScheduledModifierManager

    optimizer = two_group_sgd()
    model = torch.nn.Linear(1, 1)  # LR modifiers do not touch the module
    manager = ScheduledModifierManager.from_yaml(text)
    manager.initialize(model, epoch=0.0, loggers=[])
    wrapped = manager.modify(model, optimizer, steps_per_epoch=SPE)
    lrs = []
    for _ in range(steps):
        wrapped.step()
        lrs.append(tuple(group["lr"] for group in optimizer.param_groups))
    return lrs


SET = """!SetLearningRateModifier
    start_epoch: 1.3
    learning_rate: 0.01
    param_groups: [1]"""
LINEAR = """!LearningRateFunctionModifier
    start_epoch: 0.5
    end_epoch: 3.3
    lr_func: linear
    init_lr: 0.2
    final_lr: 0.02"""
COSINE = """!LearningRateFunctionModifier
    start_epoch: -1
    end_epoch: 4.1
    lr_func: cosine
    init_lr: 0.01
    final_lr: 0.1"""
CYCLIC = """!LearningRateFunctionModifier
    start_epoch: 1.0
    end_epoch: 5.0
    lr_func: cyclic_linear
    cycle_epochs: 1.5
    init_lr: 0.1
    final_lr: 0.01"""
STEP = """!LearningRateModifier
    start_epoch: 0.0
    end_epoch: 4.3
    lr_class: StepLR
    lr_kwargs: {step_size: 0.8, gamma: 0.5}
    init_lr: 0.2"""
MULTISTEP = """!LearningRateModifier
    start_epoch: 0.7
    lr_class: MultiStepLR
    lr_kwargs: {milestones: [1.5, 3, 4.9], gamma: 0.3}
    init_lr: 0.1"""
EXPONENTIAL = """!LearningRateModifier
    start_epoch: 1.0
    end_epoch: 5.0
    lr_class: ExponentialLR
    lr_kwargs: {gamma: 0.8}
    init_lr: 0.05"""


@pytest.mark.parametrize(
    "modifiers",
    [
        pytest.param([SET], id="set"),
        pytest.param([LINEAR], id="function-linear"),
        pytest.param([COSINE], id="function-cosine"),
        pytest.param([CYCLIC], id="function-cyclic_linear"),
        pytest.param([STEP], id="StepLR"),
        pytest.param([MULTISTEP], id="MultiStepLR"),
        pytest.param([EXPONENTIAL], id="ExponentialLR"),
        pytest.param([EXPONENTIAL, SET, LINEAR], id="set+function+exponential"),
    ],
)
def test_per_step_lr_equals_sparseml(modifiers):
    text = recipe(*modifiers)
    expected = _sparseml_lrs(text)
    got = lr_trace(text, SPE, STEPS)
    assert len(set(expected)) > 1  # the schedule does change the LR
    assert got == expected  # exact float equality, every step, every param group
