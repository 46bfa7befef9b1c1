"""Tests of study.make.diagnostics: where the zeros of a pruned model are."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from gmp.masks import magnitude_mask, n_zeros_for
from study.make.data import digits, loaders
from study.make.diagnostics import layer_diagnostics, mask_diagnostics
from study.make.models import build_model
from study.make.train import TrainConfig, train

# out = 4 rows, in = 6 columns: blocks [0:4] and the 2-column remainder [4:6].
HAND = torch.tensor(
    [
        [0, 0, 0, 0, 0, 0],  # empty filter: 0 non-zeros, both blocks zero
        [1, 0, 0, 0, 0, 1],  # 2 non-zeros, no zero block
        [1, 1, 0, 1, 1, 1],  # 5
        [1, 1, 0, 1, 0, 0],  # 3, the remainder block zero
    ],
    dtype=torch.float32,
)


def test_hand_made_linear_weight():
    d = layer_diagnostics(HAND)
    # Non-zeros per output channel [0, 2, 5, 3]: mean 2.5, population variance 13 / 4.
    assert d["cv_nonzeros_per_out_channel"] == pytest.approx(math.sqrt(13 / 4) / 2.5)
    assert d["sparsity"] == pytest.approx(14 / 24)
    assert d["zero_filters"] == 0.25
    assert d["zero_input_channels"] == pytest.approx(1 / 6)  # column 2
    assert d["zero_blocks_1x4"] == pytest.approx(3 / 8)


def test_conv_blocks_run_along_the_input_channel_at_each_kernel_position():
    weight = torch.zeros(2, 5, 1, 2)  # blocks: 2 out x 2 kernel positions x (4 + 1) channels
    weight[0, 4, 0, 1] = 1.0  # the 1-channel remainder block of (o=0, kw=1)
    weight[1, :4, 0, 0] = 1.0  # the first block of (o=1, kw=0), whole
    d = layer_diagnostics(weight)
    assert d["zero_blocks_1x4"] == pytest.approx(6 / 8)
    assert d["zero_input_channels"] == 0.0  # every channel index has a weight somewhere
    assert d["zero_filters"] == 0.0
    # Non-zeros per output channel [1, 4]: mean 2.5, std 1.5.
    assert d["cv_nonzeros_per_out_channel"] == pytest.approx(0.6)


def test_depthwise_weight_has_one_input_channel_per_group():
    weight = torch.ones(3, 1, 3, 3)
    weight[1] = 0.0
    d = layer_diagnostics(weight)
    assert d["zero_filters"] == pytest.approx(1 / 3)
    assert d["zero_input_channels"] == 0.0
    assert d["zero_blocks_1x4"] == pytest.approx(1 / 3)  # 27 one-channel blocks, 9 zero


def test_empty_layer_has_no_cv_and_model_means_are_numel_weighted():
    model = nn.Sequential(nn.Linear(6, 4, bias=False), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(HAND)
        model[1].weight.zero_()
    d = mask_diagnostics(model)
    json.dumps(d, allow_nan=False)  # NaN written as None
    first, second = d["layers"]
    assert (first["name"], first["shape"], first["numel"]) == ("0.weight", [4, 6], 24)
    assert second["cv_nonzeros_per_out_channel"] is None
    assert second["zero_filters"] == second["zero_input_channels"] == 1.0
    assert second["zero_blocks_1x4"] == 1.0
    summary = d["model"]
    assert (summary["layers"], summary["numel"]) == (2, 32)
    assert summary["sparsity"] == pytest.approx((14 + 8) / 32)
    assert summary["zero_filters"] == pytest.approx((24 * 0.25 + 8 * 1.0) / 32)
    assert summary["zero_blocks_1x4"] == pytest.approx((24 * 3 / 8 + 8 * 1.0) / 32)
    # The CV is averaged over the layers where it is defined.
    assert summary["cv_nonzeros_per_out_channel"] == first["cv_nonzeros_per_out_channel"]


def test_random_unstructured_zeros_fill_blocks_by_chance():
    torch.manual_seed(0)
    weight = torch.randn(256, 128)
    weight *= magnitude_mask(weight.abs(), n_zeros_for(0.8, weight.numel()))
    d = layer_diagnostics(weight)
    # Independent zeros: a 1x4 block is empty with probability 0.8 ** 4 = 0.41.
    assert d["zero_blocks_1x4"] == pytest.approx(0.8**4, abs=0.01)
    assert d["sparsity"] == pytest.approx(0.8, abs=1e-4)


def test_bad_weight_raises():
    with pytest.raises(ValueError, match=r"`weight` must have >= 2 dims.*\(4,\)"):
        layer_diagnostics(torch.ones(4))
    with pytest.raises(ValueError, match="no Conv or Linear layer"):
        mask_diagnostics(nn.Sequential(nn.ReLU()))


def _magnitude_prune(model: nn.Module, sparsity: float) -> nn.Module:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                weight = module.weight
                weight.mul_(magnitude_mask(weight.abs(), n_zeros_for(sparsity, weight.numel())))
    return model


def test_trained_masks_are_more_uneven_than_random_init_masks():
    """Magnitude pruning of trained weights keeps more in some filters than in others; of
    random-init weights (i.i.d. per layer) it keeps nearly the same number in every filter."""
    train_ds, val_ds = digits(image_size=16, channels=3, seed=0)
    train_loader, val_loader = loaders(train_ds, val_ds, batch_size=32, seed=0)
    init = build_model("small_cnn", num_classes=10, seed=0)
    config = TrainConfig(epochs=3, lr=0.1, momentum=0.9, nesterov=True, schedule="onecycle")
    result = train(copy.deepcopy(init), None, train_loader, val_loader, "dense", config, False)
    accuracy = result.epochs[-1].val_accuracy
    assert accuracy > 0.8, f"training did not work: val accuracy {accuracy:.3f}"
    trained = mask_diagnostics(_magnitude_prune(result.model, 0.9))["model"]
    random_init = mask_diagnostics(_magnitude_prune(copy.deepcopy(init), 0.9))["model"]
    assert trained["sparsity"] == pytest.approx(random_init["sparsity"])
    cv_trained = trained["cv_nonzeros_per_out_channel"]
    cv_random = random_init["cv_nonzeros_per_out_channel"]
    # Measured: 0.37 (trained, accuracy 0.97) vs 0.18 (random init).
    assert cv_trained > 1.5 * cv_random, (
        f"CV of non-zeros per output channel: trained {cv_trained:.3f} vs random init "
        f"{cv_random:.3f} (val accuracy {accuracy:.3f}); zero filters {trained['zero_filters']:.4f} "
        f"vs {random_init['zero_filters']:.4f}"
    )
