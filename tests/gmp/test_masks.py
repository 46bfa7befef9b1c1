"""Mask functions against SparseML 1.8's mask creators (installed reference) and exact counts."""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest
import torch

from gmp.masks import compute_masks, magnitude_mask, n_zeros_for, parse_mask_type


def _sparseml(tensors, target, mask_type, global_=False):
    from sparseml.pytorch.sparsification.pruning.mask_creator import get_mask_creator_default

    creator = get_mask_creator_default(mask_type)
    return [m.bool() for m in creator.create_sparsity_masks(tensors, target, global_)]


def test_n_zeros_uses_bankers_rounding():
    assert [n_zeros_for(0.5, n) for n in (1, 3, 5)] == [0, 2, 2]  # round(0.5)=0, 1.5->2, 2.5->2


@pytest.mark.parametrize("sparsity", [0.05, 0.37, 0.5, 0.9])
def test_unstructured_equals_sparseml_with_ties(sparsity):
    g = torch.Generator().manual_seed(0)
    # Quantised scores: many ties at every threshold exercise the nonzero-order tie rule.
    t = (torch.randint(0, 7, (16, 9, 3, 3), generator=g).float() / 7).abs()
    ours = magnitude_mask(t, n_zeros_for(sparsity, t.numel()))
    (ref,) = _sparseml([t], sparsity, "unstructured")
    assert torch.equal(ours, ref)
    assert int((~ours).sum()) == round(sparsity * t.numel())


def test_threshold_at_minimum_uses_sparseml_random_42():
    t = torch.zeros(50)
    t[40:] = torch.arange(1, 11).float()
    ours = magnitude_mask(t, 17)  # 40 minima, 17 to prune: SparseML's Random(42) branch
    (ref,) = _sparseml([t], 17 / 50, "unstructured")
    assert torch.equal(ours, ref) and int((~ours).sum()) == 17


def test_global_equals_sparseml():
    g = torch.Generator().manual_seed(1)
    ts = [torch.rand(8, 4, 3, 3, generator=g), torch.rand(10, 20, generator=g) * 0.5]
    ours = compute_masks(ts, [0.6, 0.6], ("unstructured",), global_sparsity=True)
    ref = _sparseml(ts, 0.6, "unstructured", True)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    assert sum(int((~m).sum()) for m in ours) == round(0.6 * sum(t.numel() for t in ts))


@pytest.mark.parametrize("shape", [(6, 10, 3, 3), (12, 7), (5, 8)])
def test_block4_equals_sparseml_including_padding(shape):
    t = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    ours = compute_masks([t], [0.5], parse_mask_type("block4"))
    assert torch.equal(ours[0], _sparseml([t], 0.5, "block4")[0])


@pytest.mark.parametrize("block", [[1, 4], [4, 1]])
def test_custom_block_equals_sparseml(block):
    t = torch.rand(8, 8, 3, 3, generator=torch.Generator().manual_seed(3))
    ours = compute_masks([t], [0.5], parse_mask_type(block))
    assert torch.equal(ours[0], _sparseml([t], 0.5, list(block))[0])


def test_true_2x2_blocks_are_constant_per_block():
    t = torch.rand(8, 8, generator=torch.Generator().manual_seed(4))
    (m,) = compute_masks([t], [0.5], parse_mask_type([2, 2]))
    blocks = m.reshape(4, 2, 4, 2).permute(0, 2, 1, 3).reshape(16, 4)
    assert bool((blocks.all(1) | ~blocks.any(1)).all()) and int((~m).sum()) == 32


def test_nm_linear_equals_sparseml_and_conv_keeps_n_of_m_along_input():
    t = torch.rand(6, 16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(compute_masks([t], [0.5], ("nm", 2, 4))[0], _sparseml([t], 0.5, "2:4")[0])
    c = torch.rand(4, 8, 3, 3, generator=torch.Generator().manual_seed(6))
    (m,) = compute_masks([c], [0.5], ("nm", 2, 4))
    assert m.shape == c.shape
    assert bool((m.permute(0, 2, 3, 1).reshape(-1, 4).sum(1) == 2).all())


@pytest.mark.parametrize("bad", ["block8", "3:2", "x:y", [1, 0], [1, 2, 3]])
def test_unknown_mask_type_raises(bad):
    with pytest.raises(ValueError, match="`mask_type` must be"):
        parse_mask_type(bad)
