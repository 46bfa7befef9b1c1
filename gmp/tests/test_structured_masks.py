"""N:M and true 2-D block masks keep the top-|w| groups, checked against hand-written masks.

SparseML 1.8 is no reference here: its N:M mask has the wrong layout on convolutions and its
``[a, b]`` grouping with a, b > 1 takes a*b consecutive entries, not a x b blocks. The expected
masks below are written out by hand, and the random cases are checked against a plain-Python
ranking of each group (``sorted`` over the group's |w|), not against gmp's own functions.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from gmp import GMP
from gmp.masks import compute_masks, nm_mask, parse_mask_type

T, F = True, False


def _mask(weight, mask_type, sparsity):
    (m,) = compute_masks([weight.abs()], [sparsity], parse_mask_type(mask_type))
    return m.tolist()


# ---------------------------------------------------------------- N:M, hand-written


def test_nm_2_4_keeps_the_two_largest_of_a_linear_row():
    w = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    assert _mask(w, "2:4", 0.5) == [[F, T, F, T]]


def test_nm_uses_magnitudes_not_signed_values():
    w = torch.tensor([[-0.5, 0.1, 0.3, -0.2], [0.05, -0.9, 0.6, 0.7]])
    assert nm_mask(w, 2, 4).tolist() == [[T, F, T, F], [F, T, F, T]]


def test_nm_1_4_and_3_4_on_two_groups_per_row():
    w = torch.tensor([[0.1, 0.4, 0.2, 0.3, 0.8, 0.7, 0.6, 0.5]])
    assert nm_mask(w, 1, 4).tolist() == [[F, T, F, F, T, F, F, F]]
    assert nm_mask(w, 3, 4).tolist() == [[F, T, T, T, T, T, T, F]]


def test_nm_2_4_on_a_conv_groups_input_channels_at_each_kernel_position():
    # weight (out=1, in=4, kh=1, kw=2): one group of 4 input channels per kernel position.
    w = torch.zeros(1, 4, 1, 2)
    w[0, :, 0, 0] = torch.tensor([0.1, 0.4, 0.2, 0.3])  # keep channels 1 and 3
    w[0, :, 0, 1] = torch.tensor([0.9, 0.8, 0.05, 0.07])  # keep channels 0 and 1
    expected = [[[[F, T]], [[T, T]], [[F, F]], [[T, F]]]]  # [out][in][kh][kw]
    assert _mask(w, "2:4", 0.5) == expected
    # Grouping 4 consecutive row-major entries instead (SparseML's layout) gives another mask:
    wrong = nm_mask(w.reshape(1, 8), 2, 4).reshape(1, 4, 1, 2).tolist()
    assert wrong == [[[[F, T]], [[F, T]], [[T, F]], [[T, F]]]] != expected


def test_nm_2_4_on_a_conv_with_two_output_and_eight_input_channels():
    # weight (out=2, in=8, kh=1, kw=1): two groups per output channel.
    w = torch.tensor(
        [
            [0.8, 0.1, 0.2, 0.9, 0.3, 0.5, 0.4, 0.6],
            [0.2, 0.3, 0.1, 0.4, 0.9, 0.8, 0.7, 0.6],
        ]
    ).reshape(2, 8, 1, 1)
    expected = torch.tensor(
        [
            [T, F, F, T, F, T, F, T],
            [F, T, F, T, T, T, F, F],
        ]
    ).reshape(2, 8, 1, 1)
    assert _mask(w, "2:4", 0.5) == expected.tolist()


def _top_n_by_python(values: list[float], n: int) -> set[int]:
    return set(sorted(range(len(values)), key=lambda i: -abs(values[i]))[:n])


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 8)])
@pytest.mark.parametrize("shape", [(6, 8, 3, 3), (4, 16, 1, 1), (5, 24)])
def test_nm_kept_indices_are_the_top_abs_w_of_every_group(n, m, shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape) + m))
    keep = nm_mask(w, n, m)
    assert keep.shape == w.shape
    rows = w.movedim(1, -1).reshape(-1, w.shape[1]).tolist()  # (out * kh * kw, in)
    kept = keep.movedim(1, -1).reshape(-1, w.shape[1]).tolist()
    for row, row_keep in zip(rows, kept):
        for start in range(0, len(row), m):
            group, group_keep = row[start : start + m], row_keep[start : start + m]
            assert {i for i, k in enumerate(group_keep) if k} == _top_n_by_python(group, n)


def test_gmp_2_4_on_a_conv_keeps_the_top_two_of_every_input_group():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 4, 3)
    before = conv.weight.detach().clone()  # the first update (step 0) scores these weights
    opt = torch.optim.SGD(conv.parameters(), lr=0.01)
    pruner = GMP(
        conv, opt, init_sparsity=0.5, final_sparsity=0.5, start_step=0, end_step=2,
        update_frequency_steps=1, mask_type="2:4",
    )  # fmt: skip
    for _ in range(3):
        opt.zero_grad()
        conv(torch.randn(2, 8, 5, 5)).square().mean().backward()
        opt.step()
    pruner.finalize()
    groups = before.permute(0, 2, 3, 1).reshape(-1, 4).tolist()
    kept = (conv.weight != 0).permute(0, 2, 3, 1).reshape(-1, 4).tolist()
    for group, group_keep in zip(groups, kept):
        assert {i for i, k in enumerate(group_keep) if k} == _top_n_by_python(group, 2)


# ---------------------------------------------------------------- true 2x2 blocks, hand-written

# Four 2x2 blocks with means: top-left 0.25 (one large entry), top-right 0.3, bottom-left 0.1,
# bottom-right 0.55. Per-entry magnitude would keep the 1.0; block means do not.
W_2X2 = torch.tensor(
    [
        [1.0, 0.0, 0.3, 0.3],
        [0.0, 0.0, 0.3, 0.3],
        [0.1, 0.1, 0.5, 0.6],
        [0.1, 0.1, 0.5, 0.6],
    ]
)


def test_2x2_blocks_at_half_keep_the_two_highest_mean_blocks():
    assert _mask(W_2X2, [2, 2], 0.5) == [
        [F, F, T, T],
        [F, F, T, T],
        [F, F, T, T],
        [F, F, T, T],
    ]


def test_2x2_blocks_at_three_quarters_keep_the_highest_mean_block():
    assert _mask(W_2X2, [2, 2], 0.75) == [
        [F, F, F, F],
        [F, F, F, F],
        [F, F, T, T],
        [F, F, T, T],
    ]


def test_2x2_blocks_at_a_quarter_drop_only_the_lowest_mean_block():
    assert _mask(W_2X2, [2, 2], 0.25) == [
        [T, T, T, T],
        [T, T, T, T],
        [F, F, T, T],
        [F, F, T, T],
    ]


def test_2x2_blocks_on_a_conv_are_per_kernel_position():
    # weight (out=2, in=4, kh=1, kw=2): at each kernel position, two 2x2 blocks over (out, in).
    w = torch.zeros(2, 4, 1, 2)
    w[:, :2, 0, 0], w[:, 2:, 0, 0] = 0.9, 0.1  # position 0: keep the in-channel pair 0-1
    w[:, :2, 0, 1], w[:, 2:, 0, 1] = 0.2, 0.7  # position 1: keep the pair 2-3
    keep = [[[[T, F]], [[T, F]], [[F, T]], [[F, T]]]] * 2  # [out][in][kh][kw]
    assert _mask(w, [2, 2], 0.5) == keep


@pytest.mark.parametrize("shape", [(8, 6, 3, 3), (6, 10), (4, 4, 1, 1)])
@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.7])
def test_2x2_kept_blocks_are_the_top_mean_abs_w_blocks(shape, sparsity):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(len(shape) * 7 + shape[0]))
    keep = torch.tensor(_mask(w, [2, 2], sparsity))
    k = w.reshape(shape[0], shape[1], -1)  # (out, in, kernel positions)
    kk = keep.reshape(k.shape)
    blocks = {}
    for o, i, p in itertools.product(
        range(0, shape[0], 2), range(0, shape[1], 2), range(k.shape[2])
    ):
        entries = [k[o + a, i + b, p].abs().item() for a in (0, 1) for b in (0, 1)]
        kept = {bool(kk[o + a, i + b, p]) for a in (0, 1) for b in (0, 1)}
        assert len(kept) == 1, (o, i, p)  # all or nothing per block
        blocks[(o, i, p)] = (sum(entries) / 4, kept.pop())
    n_pruned = round(sparsity * len(blocks))
    ranked = sorted(blocks, key=lambda key: blocks[key][0])  # ascending mean |w|
    assert {key for key in blocks if not blocks[key][1]} == set(ranked[:n_pruned])
