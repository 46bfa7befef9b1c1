"""Tests of study.make.train: one loop for every toolchain, identical data order, proper finalize."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import Subset

from study.make.data import digits, loaders
from study.make.train import TOOLCHAINS, TrainConfig, evaluate, train

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
    assert set(TOOLCHAINS) == {"gmp", "sparseml", "nncf", "dense"}


@pytest.mark.parametrize(
    ("toolchain", "recipe", "config", "match"),
    [
        ("magic", RECIPE, TrainConfig(), "`toolchain` must be one of"),
        ("gmp", None, TrainConfig(), "`recipe` is required"),
        ("dense", None, TrainConfig(), "no length"),
        ("dense", None, TrainConfig(epochs=1, optimizer="lbfgs"), "`config.optimizer`"),
        ("dense", None, TrainConfig(epochs=0), "`config.epochs`"),
        ("dense", None, TrainConfig(epochs=1, schedule="step"), "`config.schedule` must be one"),
        ("dense", None, TrainConfig(epochs=1, augment_shift=-1), "`config.augment_shift`"),
        (
            "gmp",
            RECIPE,
            TrainConfig(schedule="onecycle"),
            "only allowed for the 'dense' toolchain; got toolchain 'gmp'.*LR modifiers",
        ),
        ("sparseml", RECIPE, TrainConfig(schedule="cosine"), "only allowed for the 'dense'"),
    ],
)
def test_train_rejects_bad_arguments(data, toolchain, recipe, config, match):
    with pytest.raises(ValueError, match=match):
        train(_net(), recipe, *data, toolchain=toolchain, config=config, progress=False)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_schedule_lr_per_step_equals_torchs_scheduler_standalone(data, schedule):
    config = TrainConfig(epochs=3, lr=0.1, momentum=0.9, schedule=schedule)
    result = train(_net(), None, *data, toolchain="dense", config=config, progress=False)
    # The same scheduler on its own: 3 epochs x 4 steps, stepped after every optimizer step.
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    if schedule == "onecycle":  # TrainConfig documents pct_start=0.3 and no momentum cycling
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=0.1, total_steps=12, pct_start=0.3, cycle_momentum=False
        )
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=12)
    expected = []
    for _ in range(12):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [s.lr for s in result.steps] == expected
    assert len(set(expected)) == 12  # really a schedule


class _Recorder(nn.Module):
    """Identity that keeps a copy of every training batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return x


def _seen_batches(data, toolchain: str, recipe, **config) -> list[torch.Tensor]:
    model = nn.Sequential(_Recorder(), *_net())
    train(model, recipe, *data, toolchain=toolchain, config=TrainConfig(**config), progress=False)
    return model[0].seen


@pytest.fixture(scope="module")
def fixed_order_data():
    """Unshuffled loaders: the seed then changes only the augmentation draws."""
    train_ds, val_ds = digits(image_size=8, channels=1, seed=0)
    subset = Subset(train_ds, range(128))
    return (
        torch.utils.data.DataLoader(subset, batch_size=64, shuffle=False),
        torch.utils.data.DataLoader(val_ds, batch_size=64),
    )


def test_augment_shift_is_seeded_per_run(fixed_order_data):
    first = _seen_batches(fixed_order_data, "dense", None, epochs=2, augment_shift=2, seed=0)
    again = _seen_batches(fixed_order_data, "dense", None, epochs=2, augment_shift=2, seed=0)
    other = _seen_batches(fixed_order_data, "dense", None, epochs=2, augment_shift=2, seed=1)
    plain = _seen_batches(fixed_order_data, "dense", None, epochs=2, augment_shift=0, seed=0)
    assert len(first) == 4
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not any(torch.equal(a, b) for a, b in zip(first, other))
    assert not any(torch.equal(a, b) for a, b in zip(first, plain))
    # Epoch 2 re-draws: the same images get other shifts than in epoch 1.
    assert not torch.equal(first[0], first[2])


def test_every_toolchain_sees_the_same_augmented_batches(data):
    dense = _seen_batches(data, "dense", RECIPE, augment_shift=1, seed=2)
    for toolchain in ("gmp", "sparseml"):
        pruned = _seen_batches(data, toolchain, RECIPE, augment_shift=1, seed=2)
        assert len(pruned) == len(dense) == 12
        assert all(torch.equal(a, b) for a, b in zip(dense, pruned)), toolchain


def test_onecycle_trains_small_cnn_on_digits_to_90_percent():
    """Convergence check (measured 2026-12, 2 shared cores: ~0.5 s of training, 0.97 accuracy)."""
    import time

    from study.make.models import build_model

    train_ds, val_ds = digits(image_size=16, channels=3, seed=0)
    train_loader, val_loader = loaders(train_ds, val_ds, batch_size=32, seed=0)
    model = build_model("small_cnn", num_classes=10, seed=0)
    config = TrainConfig(
        epochs=3, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, schedule="onecycle"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two shared, busy cores run 10-20x slower here
    try:
        start = time.perf_counter()
        result = train(model, None, train_loader, val_loader, "dense", config, progress=False)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    accuracy = result.epochs[-1].val_accuracy
    assert accuracy >= 0.9 and seconds < 15, f"val accuracy {accuracy:.3f} in {seconds:.1f} s"


def test_vendor_toolchains_join_the_loop_by_registering():
    import baselines
    from study.make.train import TOOLCHAINS, register_toolchain

    assert TOOLCHAINS["sparseml"] is baselines.toolchains.attach_sparseml
    assert TOOLCHAINS["nncf"] is baselines.toolchains.attach_nncf
    register_toolchain("sparseml", baselines.toolchains.attach_sparseml)  # the same again: fine
    with pytest.raises(ValueError, match="'sparseml' is already registered"):
        register_toolchain("sparseml", lambda *args: None)
    with pytest.raises(ValueError, match="non-empty string"):
        register_toolchain("", baselines.toolchains.attach_sparseml)
