"""Tests of study.train: one loop for every toolchain, identical data order, proper finalize."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import Subset

from study.data import digits, loaders
from study.train import TOOLCHAINS, TrainConfig, evaluate, train

RECIPE = """
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 3.0
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.07
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 2.0
    update_frequency: 0.5
"""


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


@pytest.fixture(scope="module")
def data():
    train_ds, val_ds = digits(image_size=8, channels=1, seed=0)
    # 256 training images, batch 64: 4 steps per epoch.
    return loaders(Subset(train_ds, range(256)), val_ds, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def sparseml_run(data):
    return train(
        _net(), RECIPE, *data, toolchain="sparseml", config=TrainConfig(lr=0.1), progress=False
    )


def test_sparseml_run_takes_recipe_epochs_and_logs_every_step(sparseml_run):
    assert len(sparseml_run.epochs) == 3
    assert [s.step for s in sparseml_run.steps] == list(range(12))
    assert [s.epoch for s in sparseml_run.steps] == [0] * 4 + [1] * 4 + [2] * 4


def test_sparseml_run_reaches_final_sparsity_per_layer(sparseml_run):
    # SparseML prunes k = round(s * n) entries per layer (mask_creator.py, Python round).
    assert sparseml_run.steps[-1].zeros == {
        "0.weight": round(0.8 * 72),
        "5.weight": round(0.8 * 320),
    }
    layers = {x.name: x.zeros for x in sparseml_run.report.layers}
    assert layers == {"0.weight": 58, "5.weight": 256}


def test_sparseml_run_applies_recipe_learning_rate(sparseml_run):
    # SetLearningRateModifier overrides TrainConfig.lr=0.1 from the first step on.
    assert {s.lr for s in sparseml_run.steps} == {0.07}


def test_finalized_model_has_plain_weights_and_no_hooks(sparseml_run):
    model = sparseml_run.model
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert all(not p._backward_hooks for p in model.parameters())
    assert int((model[0].weight == 0).sum()) == 58
    assert not any(n.endswith(("_orig", "_mask")) for n, _ in model.state_dict().items())


def test_gmp_and_sparseml_give_identical_runs(data, sparseml_run):
    result = train(
        _net(), RECIPE, *data, toolchain="gmp", config=TrainConfig(lr=0.1), progress=False
    )
    assert [s.zeros for s in result.steps] == [s.zeros for s in sparseml_run.steps]
    assert [s.lr for s in result.steps] == [s.lr for s in sparseml_run.steps]
    expected = sparseml_run.model.state_dict()
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-6)


def test_dense_runs_are_reproducible_and_keep_the_callers_init(data):
    model = _net(seed=5)
    init = copy.deepcopy(model.state_dict())
    config = TrainConfig(epochs=2, lr=0.1, momentum=0.9, seed=3)
    first = train(
        copy.deepcopy(model), None, *data, toolchain="dense", config=config, progress=False
    )
    # The loader's generator was advanced by the first run; the loop re-seeds it.
    second = train(model, None, *data, toolchain="dense", config=config, progress=False)
    assert [s.loss for s in first.steps] == [s.loss for s in second.steps]
    assert first.steps[0].zeros == {"0.weight": 0, "5.weight": 0}
    assert not torch.equal(second.model[0].weight, init["0.weight"])


def test_dense_uses_recipe_length_but_not_its_modifiers(data):
    result = train(
        _net(), RECIPE, *data, toolchain="dense", config=TrainConfig(lr=0.1), progress=False
    )
    assert len(result.epochs) == 3
    assert {s.lr for s in result.steps} == {0.1}
    assert result.report.total_zeros == 0


def test_log_zeros_every_thins_the_zero_logs(data):
    config = TrainConfig(epochs=1, log_zeros_every=2)
    result = train(_net(), None, *data, toolchain="dense", config=config, progress=False)
    assert [bool(s.zeros) for s in result.steps] == [True, False, True, False]


def test_evaluate_matches_a_manual_count(data):
    model = _net().eval()
    _, val_loader = data
    images, labels = val_loader.dataset.tensors
    with torch.no_grad():
        expected = float((model(images).argmax(1) == labels).float().mean())
    assert evaluate(model, val_loader) == pytest.approx(expected)
    assert not model.training


def test_registry_names():
    assert set(TOOLCHAINS) == {"gmp", "sparseml", "dense"}


@pytest.mark.parametrize(
    ("toolchain", "recipe", "config", "match"),
    [
        ("magic", RECIPE, TrainConfig(), "`toolchain` must be one of"),
        ("gmp", None, TrainConfig(), "`recipe` is required"),
        ("dense", None, TrainConfig(), "no length"),
        ("dense", None, TrainConfig(epochs=1, optimizer="lbfgs"), "`config.optimizer`"),
        ("dense", None, TrainConfig(epochs=0), "`config.epochs`"),
    ],
)
def test_train_rejects_bad_arguments(data, toolchain, recipe, config, match):
    with pytest.raises(ValueError, match=match):
        train(_net(), recipe, *data, toolchain=toolchain, config=config, progress=False)
