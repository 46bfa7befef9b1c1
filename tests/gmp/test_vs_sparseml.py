"""gmp side by side with SparseML 1.8 itself: same model, seed, data and recipe, identical results.

Reference: ``sparseml.pytorch.optim.ScheduledModifierManager`` 1.8.0 (installed), driven exactly as
its docs show (``manager.modify(model, optimizer, steps_per_epoch)`` then
``manager.finalize(model)``).
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest
import torch

from gmp import GMP, sparsity_report
from tests.gmp.conftest import digits_batches, make_cnn, train

SPE = 6  # steps per epoch
EPOCHS = 6


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)


def _yaml(modifier: str, params: str, init: float, final: float, mask_type: str, lr: bool) -> str:
    lr_modifier = """
  - !LearningRateFunctionModifier
    start_epoch: 0.0
    end_epoch: 5.0
    lr_func: cosine
    init_lr: 0.05
    final_lr: 0.001
"""
    return f"""
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: {EPOCHS}
{lr_modifier if lr else ""}  - !{modifier}
    params: {params}
    init_sparsity: {init}
    final_sparsity: {final}
    start_epoch: 1.0
    end_epoch: 4.0
    update_frequency: 0.5
    mask_type: {mask_type}
"""


def _run_sparseml(yaml_text, params):
    from sparseml.pytorch.optim import ScheduledModifierManager

    model = make_cnn()
    manager = ScheduledModifierManager.from_yaml(yaml_text)
    optimizer = manager.modify(model, _sgd(model), SPE)
    history = train(model, optimizer, digits_batches(EPOCHS * SPE), params)
    manager.finalize(model)
    return model, history


def _run_gmp(yaml_text, params):
    model = make_cnn()
    optimizer = _sgd(model)
    pruner = GMP.from_recipe(yaml_text, model, optimizer, steps_per_epoch=SPE)
    assert pruner.epochs == EPOCHS
    history = train(model, optimizer, digits_batches(EPOCHS * SPE), params)
    pruner.finalize()
    return model, history


# name: (modifier, params, init_sparsity, final_sparsity, mask_type, with a cosine LR modifier)
CASES = {
    "layerwise": ("MagnitudePruningModifier", "__ALL_PRUNABLE__", 0.05, 0.8, "unstructured", False),
    "global+lr": (
        "GlobalMagnitudePruningModifier",
        "__ALL_PRUNABLE__",
        0.05,
        0.8,
        "unstructured",
        True,
    ),
    "block4": ("MagnitudePruningModifier", "__ALL_PRUNABLE__", 0.1, 0.75, "block4", False),
    "2:4": ("MagnitudePruningModifier", "['fc1.weight', 'fc2.weight']", 0.5, 0.5, "'2:4'", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_zeros_masks_and_weights_as_sparseml(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # SparseML writes ./sparse_logs/
    modifier, params, init, final, mask_type, lr = CASES[case]
    params_list = ["fc1.weight", "fc2.weight"] if case == "2:4" else ["__ALL_PRUNABLE__"]
    yaml_text = _yaml(modifier, params, init, final, mask_type, lr)
    ref_model, ref_hist = _run_sparseml(yaml_text, params_list)
    model, hist = _run_gmp(yaml_text, params_list)
    # The schedule really pruned something, and differently over time.
    assert hist[-1] != hist[0] and sum(hist[-1].values()) > 0
    # Identical zero counts per layer after every optimizer step.
    assert hist == ref_hist
    # The report reads a SparseML-pruned model (plain weights) and a gmp one alike.
    assert sparsity_report(model, params_list) == sparsity_report(ref_model, params_list)
    ref = dict(ref_model.named_parameters())
    for name, p in model.named_parameters():
        assert not name.endswith(("_orig", "_mask"))
        # Identical masks (IoU 1.0) and the same surviving weights.
        assert torch.equal(p != 0, ref[name] != 0), name
        torch.testing.assert_close(p, ref[name], rtol=1e-5, atol=1e-6)
