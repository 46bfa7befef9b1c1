"""Mask functions: exact counts, the radix selection against torch.kthvalue, the in-place AND.

The comparisons with SparseML 1.8's own mask creators are in the repository's tests/gmp/test_masks.py;
N:M and true 2-D blocks, which SparseML gets wrong, are checked against hand-written masks in
test_structured_masks.py.
"""

from __future__ import annotations

import random

import pytest
import torch

from gmp.masks import (
    _RADIX_MIN_NUMEL,
    _and_masks_,
    _radix_kth,
    compute_masks,
    magnitude_mask,
    n_zeros_for,
    parse_mask_type,
)


def test_n_zeros_uses_bankers_rounding():
    assert [n_zeros_for(0.5, n) for n in (1, 3, 5)] == [0, 2, 2]  # round(0.5)=0, 1.5->2, 2.5->2


def test_true_2x2_blocks_are_constant_per_block():
    t = torch.rand(8, 8, generator=torch.Generator().manual_seed(4))
    (m,) = compute_masks([t], [0.5], parse_mask_type([2, 2]))
    blocks = m.reshape(4, 2, 4, 2).permute(0, 2, 1, 3).reshape(16, 4)
    assert bool((blocks.all(1) | ~blocks.any(1)).all()) and int((~m).sum()) == 32


@pytest.mark.parametrize("bad", ["block8", "3:2", "x:y", [1, 0], [1, 2, 3]])
def test_unknown_mask_type_raises(bad):
    with pytest.raises(ValueError, match="`mask_type` must be"):
        parse_mask_type(bad)


# ---------------------------------------------------------------- radix selection vs kthvalue


def _reference_mask(scores, n_zeros):
    """The kthvalue-based magnitude_mask this package had before the radix selection."""
    flat = scores.detach().reshape(-1)
    n = flat.numel()
    if n_zeros == 0:
        return torch.ones(scores.shape, dtype=torch.bool)
    threshold = torch.kthvalue(flat, n_zeros).values
    keep = flat > threshold
    at_or_below = n - int(torch.count_nonzero(keep))
    excess = at_or_below - n_zeros
    if excess == 0:
        return keep.reshape(scores.shape)
    ties = torch.nonzero(flat == threshold).squeeze(1)
    if ties.numel() < at_or_below:
        keep[ties[:excess]] = True
        return keep.reshape(scores.shape)
    order = list(range(ties.numel()))
    random.Random(42).shuffle(order)
    keep[ties] = True
    keep[ties[torch.tensor(order[:n_zeros], dtype=torch.int64)]] = False
    return keep.reshape(scores.shape)


def _ranks(n):
    g = torch.Generator().manual_seed(n)
    mid = [int(torch.randint(1, n + 1, (1,), generator=g)) for _ in range(3)]
    return sorted(({1, 2, n - 1, n, n // 2, round(0.55 * n)} | set(mid)) & set(range(1, n + 1)))


def _bits(values):
    return torch.tensor(values, dtype=torch.int32).view(torch.float32)


def _cases():
    """Non-negative float32 score tensors that stress the selection (name, tensor)."""
    g = torch.Generator().manual_seed(7)
    c = _RADIX_MIN_NUMEL
    for n in (1, 2, 3, 17, 1000, c - 1, c, c + 1, 3 * c + 5):
        yield f"rand{n}", torch.rand(n, generator=g)
    yield "normal_abs", torch.randn(4 * c, generator=g).abs()
    yield "ties", torch.randint(0, 7, (2 * c,), generator=g).float() / 7
    half = torch.randn(2 * c + 1, generator=g).abs()
    half[torch.randperm(half.numel(), generator=g)[: half.numel() // 2]] = 0.0
    yield "half_zeros", half
    yield "mostly_zeros", torch.where(torch.rand(2 * c, generator=g) < 0.9, 0.0, 1.0)
    tiny = torch.randint(0, 1 << 20, (2 * c,), generator=g, dtype=torch.int32)
    yield "denormals", tiny.view(torch.float32)  # all below the smallest normal float32
    tiny_zeros = tiny.clone()
    tiny_zeros[:c] = 0
    yield "denormals_and_zeros", tiny_zeros.view(torch.float32)
    bucket = (0x3F12 << 16) | torch.randint(0, 1 << 16, (2 * c,), generator=g, dtype=torch.int32)
    yield "one_bucket", bucket.view(torch.float32)  # same high 16 bits everywhere
    yield "one_bucket_few_lows", ((0x3F12 << 16) | (bucket & 3)).view(torch.float32)
    straddle = torch.tensor([0x3F11FFFF, 0x3F120000, 0x3F120001], dtype=torch.int32)
    yield "bucket_edges", straddle[torch.randint(0, 3, (2 * c,), generator=g)].view(torch.float32)
    yield "all_equal", torch.full((2 * c,), 0.25)
    yield "all_zero", torch.zeros(2 * c)
    huge = torch.rand(2 * c, generator=g)
    huge[123] = 3.0e38
    yield "one_huge", huge
    inf = torch.rand(2 * c, generator=g)
    inf[5] = float("inf")
    yield "one_inf", inf
    yield "largest_finite_ties", torch.full((2 * c,), torch.finfo(torch.float32).max)
    yield "conv_shaped", torch.randn(64, 32, 3, 3, generator=g).abs()


@pytest.mark.parametrize(
    "name,scores", list(_cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_radix_threshold_equals_kthvalue(name, scores):
    flat = scores.reshape(-1)
    for k in _ranks(flat.numel()):
        threshold, at_or_below, (ties,) = _radix_kth([flat], k)
        assert torch.equal(threshold, torch.kthvalue(flat, k).values), (name, k)
        assert at_or_below == int((flat <= threshold).sum()), (name, k)
        assert torch.equal(ties, torch.nonzero(flat == threshold).squeeze(1)), (name, k)


@pytest.mark.parametrize(
    "name,scores", list(_cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_magnitude_mask_equals_kthvalue_reference(name, scores):
    for k in [0, *_ranks(scores.numel())]:
        ours = magnitude_mask(scores, k)
        assert torch.equal(ours, _reference_mask(scores, k)), (name, k)
        assert int((~ours).sum()) == k


@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float16, torch.bfloat16], ids=lambda d: str(d)[6:]
)
def test_other_dtypes_use_kthvalue(dtype):
    g = torch.Generator().manual_seed(8)
    t = (torch.randint(0, 50, (2 * _RADIX_MIN_NUMEL,), generator=g).float() / 50).to(dtype)
    for k in _ranks(t.numel()):
        assert torch.equal(magnitude_mask(t, k), _reference_mask(t, k))


@pytest.mark.parametrize("bad", ["negative", "neg_zero", "nan"])
def test_negative_or_nan_scores_use_kthvalue(bad):
    t = torch.rand(2 * _RADIX_MIN_NUMEL, generator=torch.Generator().manual_seed(9))
    t[::7] = {"negative": -0.5, "neg_zero": -0.0, "nan": float("nan")}[bad]
    assert _radix_kth([t], 10) is None
    for k in _ranks(t.numel()):
        assert torch.equal(magnitude_mask(t, k), _reference_mask(t, k))


@pytest.mark.parametrize("kind", ["rand", "ties", "half_zeros", "zeros_random42"])
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.55, 0.9])
def test_global_chunks_equal_reference_on_concatenation(kind, sparsity):
    g = torch.Generator().manual_seed(10)
    c = _RADIX_MIN_NUMEL
    shapes = [(64, 16, 3, 3), (c // 2,), (3, 7), (2 * c,), (0,), (11,)]
    ts = [torch.rand(s, generator=g) for s in shapes]
    if kind == "ties":
        ts = [(t * 5).floor() / 5 for t in ts]
    if kind in ("half_zeros", "zeros_random42"):
        ts = [torch.where(torch.rand(t.shape, generator=g) < 0.5, 0.0, t) for t in ts]
    if kind == "zeros_random42":  # threshold at the minimum (0): SparseML's Random(42) draw
        sparsity = min(sparsity, 0.3)
    ours = compute_masks(ts, [sparsity] * len(ts), ("unstructured",), global_sparsity=True)
    flat = torch.cat([t.reshape(-1) for t in ts])
    ref = _reference_mask(flat, n_zeros_for(sparsity, flat.numel()))
    assert torch.equal(torch.cat([m.reshape(-1) for m in ours]), ref)
    assert [m.shape for m in ours] == [t.shape for t in ts]


def test_flushed_denormals_use_kthvalue():
    g = torch.Generator().manual_seed(11)
    t = torch.randint(0, 1 << 20, (2 * _RADIX_MIN_NUMEL,), generator=g, dtype=torch.int32)
    t[::3] = 0
    t = t.view(torch.float32)  # zeros and denormals
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        assert _radix_kth([t], 10) is None
        for k in _ranks(t.numel()):
            assert torch.equal(magnitude_mask(t, k), _reference_mask(t, k))
    finally:
        torch.set_flush_denormal(False)


# ---------------------------------------------------------------- in-place AND (the pruner's update)


def _pruner_state(kind, g):
    """(weights, 0/1 float mask) as the pruner holds them: |w * mask| is 0 where mask is 0."""
    c = _RADIX_MIN_NUMEL
    shapes = [(32, c // 256, 3, 3), (c // 32, 48), (2 * c + 5,), (7, 3)]
    w = [torch.randn(s, generator=g) for s in shapes]
    if kind == "ties":
        w = [(t * 4).round() / 4 for t in w]
    if kind.startswith("all_equal"):
        w = [torch.full_like(t, -0.5) for t in w]
    masks = [(torch.rand(t.shape, generator=g) > 0.4).float() for t in w]
    if kind in ("dense", "all_equal_dense"):
        masks = [torch.ones_like(t) for t in w]
    return w, masks


@pytest.mark.parametrize("kind", ["normal", "ties", "all_equal", "dense", "all_equal_dense"])
@pytest.mark.parametrize("global_", [False, True], ids=["layerwise", "global"])
@pytest.mark.parametrize("sparsity", [0.2, 0.4, 0.55, 0.9])
def test_and_masks_in_place_equals_compute_masks_and(kind, global_, sparsity):
    w, masks = _pruner_state(kind, torch.Generator().manual_seed(13))
    scores = [(t * m).abs_() for t, m in zip(w, masks)]
    sp = [sparsity] * len(w)
    expected = [
        m * new for m, new in zip(masks, compute_masks(scores, sp, ("unstructured",), global_))
    ]
    _and_masks_(masks, scores, sp, ("unstructured",), global_)
    assert all(torch.equal(a, b) for a, b in zip(masks, expected))


@pytest.mark.parametrize(
    "layout", ["channels_last", "float64", "block4"], ids=lambda v: v.replace("_", "-")
)
def test_and_masks_other_layouts_equal_compute_masks_and(layout):
    w, masks = _pruner_state("ties", torch.Generator().manual_seed(14))
    w, masks = w[:1], masks[:1]  # (32, 64, 3, 3)
    mask_type = parse_mask_type("block4") if layout == "block4" else ("unstructured",)
    if layout == "channels_last":
        w = [t.contiguous(memory_format=torch.channels_last) for t in w]
        masks = [m.contiguous(memory_format=torch.channels_last) for m in masks]
    if layout == "float64":
        w, masks = [t.double() for t in w], [m.double() for m in masks]
    scores = [(t * m).abs_() for t, m in zip(w, masks)]
    expected = [m * new for m, new in zip(masks, compute_masks(scores, [0.6], mask_type))]
    _and_masks_(masks, scores, [0.6], mask_type)
    assert all(torch.equal(a, b) for a, b in zip(masks, expected))
