"""gmp's masks against SparseML 1.8's own mask creators (installed reference).

``get_mask_creator_default(mask_type).create_sparsity_masks(tensors, target, global_sparsity)``
is the function SparseML's pruning modifiers call at every update. gmp's tests that need no
SparseML are in gmp/tests/test_masks.py and gmp/tests/test_structured_masks.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest
import torch

from gmp.masks import (
    _RADIX_MIN_NUMEL,
    _and_masks_,
    compute_masks,
    magnitude_mask,
    n_zeros_for,
    parse_mask_type,
)


def _sparseml(tensors, target, mask_type, global_=False):
    from sparseml.pytorch.sparsification.pruning.mask_creator import get_mask_creator_default

    creator = get_mask_creator_default(mask_type)
    return [m.bool() for m in creator.create_sparsity_masks(tensors, target, global_)]


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


def test_nm_linear_equals_sparseml_and_conv_keeps_n_of_m_along_input():
    t = torch.rand(6, 16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(compute_masks([t], [0.5], ("nm", 2, 4))[0], _sparseml([t], 0.5, "2:4")[0])
    c = torch.rand(4, 8, 3, 3, generator=torch.Generator().manual_seed(6))
    (m,) = compute_masks([c], [0.5], ("nm", 2, 4))
    assert m.shape == c.shape
    assert bool((m.permute(0, 2, 3, 1).reshape(-1, 4).sum(1) == 2).all())


@pytest.mark.parametrize("sparsity", [0.3, 0.55])
def test_radix_sized_tensors_equal_sparseml(sparsity):
    g = torch.Generator().manual_seed(12)
    c = _RADIX_MIN_NUMEL
    quantised = torch.randint(0, 200, (32, 16, 3, 3 * c // 4096), generator=g).float() / 200
    half_zeros = torch.randn(64, c // 64 + 3, generator=g).abs()
    half_zeros[half_zeros < 0.67] = 0.0  # about half; at 0.3 the threshold is 0 (Random(42))
    dense = torch.randn(2 * c + 7, generator=g).abs()
    ts = [quantised, half_zeros, dense]
    assert all(t.numel() >= c for t in ts)
    for t in ts:
        ours = magnitude_mask(t, n_zeros_for(sparsity, t.numel()))
        assert torch.equal(ours, _sparseml([t], sparsity, "unstructured")[0])
    ours = compute_masks(ts, [sparsity] * 3, ("unstructured",), global_sparsity=True)
    ref = _sparseml(ts, sparsity, "unstructured", True)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


# ---------------------------------------------------------------- global threshold + block4
# The study's reference setting. Input channels 10, 7, 1 and 3 are not multiples of 4, so SparseML
# pads each row of blocks with the mean of its remainder; the shapes below exercise that padding.
_PADDED_SHAPES = [(6, 10, 3, 3), (12, 7), (5, 8), (8, 1, 3, 3), (4, 3)]


def _scores(kind: str, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ts = [torch.rand(s, generator=g) for s in _PADDED_SHAPES]
    if kind == "ties":  # few distinct values: block means tie within and across tensors
        ts = [(t * 3).floor() / 3 for t in ts]
    if kind == "zeros":  # about a third of the blocks all-zero: at sparsity <= 0.3 the
        # threshold is the minimum, 0.0, where SparseML draws the pruned blocks with Random(42)
        ts = [torch.where(torch.rand(t.shape, generator=g) < 0.5, 0.0, t) for t in ts]
        ts = [(t * 2).floor() / 2 for t in ts]
    return ts


@pytest.mark.parametrize("kind", ["distinct", "ties", "zeros"])
@pytest.mark.parametrize("sparsity", [0.05, 0.3, 0.5, 0.8])
def test_global_block4_equals_sparseml_on_padded_shapes(kind, sparsity):
    ts = _scores(kind, seed=20)
    ours = compute_masks(ts, [sparsity] * len(ts), parse_mask_type("block4"), global_sparsity=True)
    ref = _sparseml(ts, sparsity, "block4", True)
    for name, a, b in zip(map(str, _PADDED_SHAPES), ours, ref):
        assert a.shape == b.shape, name
        assert torch.equal(a, b), (name, kind, sparsity)
    # The threshold really is global: the layers end at different sparsities.
    per_layer = {round(float((~m).float().mean()), 3) for m in ours}
    assert len(per_layer) > 1


def _block4_means(t: torch.Tensor) -> torch.Tensor:
    """Block4 means written out by hand (padding included) as an independent check of ties."""
    rows = t.movedim(1, -1).reshape(-1, t.shape[1])  # (out * kernel, in)
    out = []
    for row in rows:
        rem = row.numel() % 4
        if rem:
            row = torch.cat([row, row[-rem:].mean().repeat(4 - rem)])
        out.append(row.reshape(-1, 4).mean(1))
    return torch.cat(out)


def test_global_block4_ties_really_tie():
    # The "ties" scores must hold tied block means at the threshold, or the test above proves less.
    ts = _scores("ties", seed=20)
    means = torch.cat([_block4_means(t) for t in ts])
    k = n_zeros_for(0.5, means.numel())
    threshold = means.sort().values[k - 1]
    assert int((means == threshold).sum()) > 1


@pytest.mark.parametrize("kind", ["ties", "zeros"])
def test_global_block4_in_place_update_equals_sparseml(kind):
    # The pruner's own path (_and_masks_: masks only grow), from all-ones masks.
    ts = _scores(kind, seed=21)
    masks = [torch.ones_like(t) for t in ts]
    _and_masks_(masks, ts, [0.6] * len(ts), parse_mask_type("block4"), True)
    ref = _sparseml(ts, 0.6, "block4", True)
    assert all(torch.equal(m.bool(), r) for m, r in zip(masks, ref))
