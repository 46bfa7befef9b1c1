"""gmp side by side with SparseML 1.8 itself: same model, seed, data and recipe, identical results.

Reference: ``sparseml.pytorch.optim.ScheduledModifierManager`` 1.8.0 (installed), driven exactly as
its docs show (``manager.modify(model, optimizer, steps_per_epoch)`` then
``manager.finalize(model)``).
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import io

import pytest
import torch
from torch import nn

from gmp import GMP, sparsity_report
from gmp.report import layer_zeros
from gmp.schedule import update_events
from gmp.testing import make_cnn, train
from tests.gmp.conftest import digits_batches

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
    # The study's reference setting with SparseML's blocks; conv1 has 1 input channel (padded).
    "global+block4": (
        "GlobalMagnitudePruningModifier",
        "__ALL_PRUNABLE__",
        0.05,
        0.8,
        "block4",
        False,
    ),
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


# ---------------------------------------------------------------- resumed gmp vs uninterrupted SparseML


def _train_with_lr(model, optimizer, batches, lr_of):
    """Like ``train``; also the learning rate each step used (read after the step, as both tools
    set it before the step and never after)."""
    zeros, lrs = [], []
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        zeros.append(layer_zeros(model))
        lrs.append(lr_of())
    return zeros, lrs


# The global+lr case: updates every 3 steps (0.5 epoch at SPE 6) from step 6 to the final one at 24.
CUTS = {"between-updates": 14, "update-next": 15, "after-pruning": 27}


@pytest.mark.parametrize("cut", list(CUTS))
def test_resumed_from_recipe_with_lr_modifier_equals_uninterrupted_sparseml(
    cut, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # SparseML writes ./sparse_logs/
    from sparseml.pytorch.optim import ScheduledModifierManager

    cut_at = CUTS[cut]
    updates = {e.step for e in update_events(EPOCHS * SPE, SPE, 1.0, 4.0, 0.5)}
    assert (cut_at in updates) == (cut == "update-next")
    assert cut != "between-updates" or cut_at - 1 not in updates
    yaml_text = _yaml(*CASES["global+lr"][:5], lr=True)
    batches = digits_batches(EPOCHS * SPE)

    ref = make_cnn()
    manager = ScheduledModifierManager.from_yaml(yaml_text)
    ref_raw = _sgd(ref)
    ref_opt = manager.modify(ref, ref_raw, SPE)
    ref_zeros, ref_lrs = _train_with_lr(
        ref, ref_opt, batches, lambda: ref_raw.param_groups[0]["lr"]
    )
    manager.finalize(ref)

    a = make_cnn()
    a_opt = _sgd(a)
    a_pruner = GMP.from_recipe(yaml_text, a, a_opt, steps_per_epoch=SPE)
    zeros, lrs = _train_with_lr(a, a_opt, batches[:cut_at], lambda: a_opt.param_groups[0]["lr"])
    buf = io.BytesIO()
    torch.save(
        {"model": a.state_dict(), "opt": a_opt.state_dict(), "gmp": a_pruner.state_dict()}, buf
    )
    buf.seek(0)
    saved = torch.load(buf)

    b = make_cnn(seed=123)  # a different init: everything must come from the checkpoint
    b_opt = _sgd(b)
    b_pruner = GMP.from_recipe(yaml_text, b, b_opt, steps_per_epoch=SPE)
    b_pruner.load_state_dict(saved["gmp"])
    b.load_state_dict(saved["model"])
    b_opt.load_state_dict(saved["opt"])
    more_zeros, more_lrs = _train_with_lr(
        b, b_opt, batches[cut_at:], lambda: b_opt.param_groups[0]["lr"]
    )
    b_pruner.finalize()

    assert len(set(ref_lrs[cut_at:])) > 1  # the LR modifier still changes the LR after the cut
    assert lrs + more_lrs == ref_lrs  # exact, every step
    assert zeros + more_zeros == ref_zeros  # zeros per layer after every step
    ref_params = dict(ref.named_parameters())
    for name, p in b.named_parameters():
        assert torch.equal(p != 0, ref_params[name] != 0), name
        torch.testing.assert_close(p, ref_params[name], rtol=1e-5, atol=1e-6)
