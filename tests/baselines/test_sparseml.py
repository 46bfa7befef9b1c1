"""Tests of baselines.sparseml: SparseML's manager attached the way its examples attach it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines.sparseml import SparseMLPruner, attach, recipe_text

RECIPE = """
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 2.0
  - !GMPruningModifier
    params: ['0.weight']
    init_sparsity: 0.05
    final_sparsity: 0.75
    start_epoch: 0.0
    end_epoch: 1.0
    update_frequency: 0.5
"""


def _setup(steps_per_epoch: int = 2) -> tuple[nn.Module, torch.optim.Optimizer, SparseMLPruner]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer, attach(RECIPE, model, optimizer, steps_per_epoch)


def _step(model, optimizer) -> None:
    optimizer.zero_grad()
    model(torch.randn(4, 10)).sum().backward()
    optimizer.step()


def test_attach_reads_training_length_and_wraps_optimizer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, optimizer, pruner = _setup()
    assert isinstance(pruner, SparseMLPruner)
    assert pruner.epochs == 2
    assert pruner.optimizer is not optimizer
    assert pruner.optimizer.param_groups is optimizer.param_groups
    # SparseML's default logger would create ./sparse_logs; attach must not.
    assert list(tmp_path.iterdir()) == []


def test_masks_follow_sparsml_schedule_and_survive_finalize():
    model, _, pruner = _setup(steps_per_epoch=2)
    zeros = []
    for _ in range(4):
        _step(model, pruner.optimizer)
        zeros.append(int((model[0].weight == 0).sum()))
    # Updates before steps 0 (epoch 0: 5%), 1 (0.5: cubic 1-(1-.5)^3=0.875 -> 0.05+0.875*0.7=0.6625)
    # and 2 (epoch 1 = end: 75%); k = round(s * 100) (SparseML mask_creator, Python round).
    assert zeros == [5, 66, 75, 75]
    pruner.finalize()
    pruner.finalize()  # idempotent
    assert int((model[0].weight == 0).sum()) == 75
    assert int((model[2].weight == 0).sum()) == 0
    assert not model[0]._forward_pre_hooks and not model[0].weight._backward_hooks


def test_recipe_text_reads_files_and_passes_text(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    assert recipe_text(path) == RECIPE
    assert recipe_text(str(path)) == RECIPE
    assert recipe_text(RECIPE) == RECIPE


def test_recipe_text_rejects_missing_file():
    with pytest.raises(ValueError, match="`recipe` must be a path to an existing recipe file"):
        recipe_text("/nonexistent/recipe.yaml")


def test_attach_rejects_bad_steps_per_epoch():
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="`steps_per_epoch` must be a positive integer; got 0"):
        attach(RECIPE, model, optimizer, 0)
