"""Magnitude masks as pure functions on tensors, with SparseML 1.8's exact counts and tie rules.

Reference: ``sparseml/pytorch/sparsification/pruning/mask_creator.py`` (1.8.0). A mask is a
``torch.bool`` tensor, True = keep. SparseML sorts every score tensor to find the threshold; here
``torch.kthvalue`` finds the same value in linear time and only entries tied at the threshold are
looked at again, which gives SparseML's masks bit for bit at a fraction of the cost.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

__all__ = [
    "MaskType",
    "check_mask_type_fits",
    "compute_masks",
    "expand_group_mask",
    "group_scores",
    "magnitude_mask",
    "n_zeros_for",
    "nm_mask",
    "parse_mask_type",
]

# Normalised mask type: ("unstructured",), ("block4",), ("block", a, b) or ("nm", n, m).
MaskType = tuple


def parse_mask_type(mask_type: str | Sequence[int]) -> MaskType:
    """Normalise a SparseML ``mask_type``.

    Args:
        mask_type: "unstructured", "block4" (1x4 blocks along input channels), "N:M" such as
            "2:4" (keep N of every M), "tensorrt" (= "2:4"), or two ints ``[a, b]`` (a x b blocks
            over the (out, in) dimensions).

    Returns:
        A tuple: ``("unstructured",)``, ``("block4",)``, ``("block", a, b)`` or ``("nm", n, m)``.

    Raises:
        ValueError: If the type is not one of the above.

    Example:
        >>> parse_mask_type("2:4")
        ('nm', 2, 4)
    """
    allowed = "'unstructured', 'block4', 'N:M' (e.g. '2:4') or [a, b] with positive ints"
    if isinstance(mask_type, str):
        if mask_type in ("unstructured", "block4"):
            return (mask_type,)
        if mask_type == "tensorrt":
            return ("nm", 2, 4)
        parts = mask_type.split(":")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            n, m = int(parts[0]), int(parts[1])
            if 0 < n < m:
                return ("nm", n, m)
        raise ValueError(f"`mask_type` must be {allowed}; got {mask_type!r}")
    if (
        isinstance(mask_type, Sequence)
        and len(mask_type) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in mask_type)
    ):
        return ("block", int(mask_type[0]), int(mask_type[1]))
    raise ValueError(f"`mask_type` must be {allowed}; got {mask_type!r}")


def check_mask_type_fits(mask_type: MaskType, shape: Sequence[int], name: str) -> None:
    """Raise if a tensor of ``shape`` cannot take masks of ``mask_type``.

    Args:
        mask_type: From :func:`parse_mask_type`.
        shape: The parameter's shape.
        name: The parameter's name, for the message.

    Raises:
        ValueError: Blocks that do not divide the tensor, or N:M on a tensor that is not 2-D/4-D
            or whose size is not a multiple of M.
    """
    shape = tuple(shape)
    if mask_type[0] == "block":
        a, b = mask_type[1:]
        if len(shape) < 2 or shape[0] % a or shape[1] % b:
            raise ValueError(
                f"`mask_type` [{a}, {b}] must divide the (out, in) dims of `{name}`; got shape {shape}"
            )
    if mask_type[0] == "nm":
        n, m = mask_type[1:]
        numel = math.prod(shape)
        if len(shape) not in (2, 4) or numel % m:
            raise ValueError(
                f"`mask_type` '{n}:{m}' needs a 2-D or 4-D tensor with a multiple of {m} "
                f"elements; `{name}` has shape {shape}"
            )


def n_zeros_for(sparsity: float, numel: int) -> int:
    """How many entries a target sparsity zeroes: ``round(sparsity * numel)`` (banker's rounding).

    Args:
        sparsity: Target fraction of zeros.
        numel: Number of entries (or blocks) scored.

    Returns:
        The count, 0 for ``sparsity <= 0``.

    Example:
        >>> n_zeros_for(0.5, 5)  # round(2.5) == 2, as SparseML
        2
    """
    if sparsity <= 0.0 or numel == 0:
        return 0
    return round(numel * sparsity)


def magnitude_mask(scores: Tensor, n_zeros: int) -> Tensor:
    """Keep all but the ``n_zeros`` lowest scores, with SparseML's exact tie rules.

    The threshold is the ``n_zeros``-th smallest score. If it is above the minimum score, entries
    above it are kept and, when several entries tie at it, the first ones in row-major
    (``torch.nonzero``) order are kept until exactly ``n_zeros`` are pruned. If the threshold
    equals the minimum (at least ``n_zeros`` entries share the minimum), the pruned ones are
    drawn among the minima with ``random.Random(42)``, as SparseML does.

    Args:
        scores: Any-shaped tensor of scores (e.g. ``|w|``).
        n_zeros: Number of entries to prune, in ``[0, scores.numel()]``.

    Returns:
        A bool tensor shaped like ``scores``; True = keep.

    Raises:
        ValueError: If ``n_zeros`` is outside ``[0, numel]``.

    Example:
        >>> magnitude_mask(torch.tensor([0.3, 0.1, 0.2, 0.1]), 2).tolist()
        [True, False, True, False]
    """
    flat = scores.detach().reshape(-1)  # (n,)
    n = flat.numel()
    if not 0 <= n_zeros <= n:
        raise ValueError(f"`n_zeros` must be in [0, {n}]; got {n_zeros!r}")
    if n_zeros == 0:
        return torch.ones(scores.shape, dtype=torch.bool, device=flat.device)
    threshold = torch.kthvalue(flat, n_zeros).values  # == torch.sort(flat)[0][n_zeros - 1]
    keep = flat > threshold  # (n,)
    at_or_below = n - int(torch.count_nonzero(keep))
    excess = at_or_below - n_zeros  # entries tied at the threshold pruned beyond the target
    if excess == 0:  # no ties to resolve; both of SparseML's branches give exactly this mask
        return keep.reshape(scores.shape)
    ties = torch.nonzero(flat == threshold).squeeze(1)  # row-major, like SparseML's nonzero
    if ties.numel() < at_or_below:  # threshold above the minimum: keep the first ties
        keep[ties[:excess]] = True
        return keep.reshape(scores.shape)
    # threshold == minimum: prune n_zeros of the minima, drawn as SparseML does with Random(42)
    order = list(range(ties.numel()))
    random.Random(42).shuffle(order)
    keep[ties] = True
    keep[ties[torch.tensor(order[:n_zeros], dtype=torch.int64, device=flat.device)]] = False
    return keep.reshape(scores.shape)


def group_scores(scores: Tensor, mask_type: MaskType) -> Tensor:
    """Reduce per-entry scores to one score per block (the mean), as SparseML groups them.

    ``block4``: the input channel (dim 1) is moved last, zero-padded to a multiple of 4 with the
    mean of the remainder, and split into 1x4 blocks. ``("block", a, b)``: a x b blocks over
    (out, in) for every remaining (kernel) position; for ``a == 1`` or ``b == 1`` this is
    SparseML's ``BlockMaskCreator`` grouping exactly. SparseML's grouping for ``a > 1 and b > 1``
    takes ``a*b`` consecutive row-major entries instead of an a x b block; here blocks are true.

    Args:
        scores: Scores shaped like the parameter.
        mask_type: From :func:`parse_mask_type`; unstructured/nm return ``scores`` unchanged.

    Returns:
        The grouped scores (row-major order defines the tie order).
    """
    kind = mask_type[0]
    if kind == "block4":
        t = scores
        if t.dim() > 2:
            perm = list(range(t.dim()))
            del perm[1]
            perm.append(1)
            t = t.permute(*perm)
        rem = t.size(-1) % 4
        if rem:
            pad = 4 - rem
            padded = torch.zeros(*t.shape[:-1], t.size(-1) + pad, device=t.device, dtype=t.dtype)
            padded[..., :-pad] = t
            padded[..., -pad:] = torch.mean(t[..., -rem:], dim=-1, keepdim=True)
            t = padded
        return torch.mean(t.reshape(-1, 4), dim=1, keepdim=True)  # (blocks, 1)
    if kind == "block":
        a, b = mask_type[1:]
        shape = scores.shape
        if a == 1 or b == 1:
            blocked = (
                [shape[0] * shape[1] // (a * b), a * b, -1] if b > 1 else [shape[0] // a, a, -1]
            )
            return torch.mean(scores.reshape(blocked), dim=1, keepdim=True)  # (G, 1, R)
        k = math.prod(shape[2:])
        t = scores.reshape(shape[0] // a, a, shape[1] // b, b, k)
        return torch.mean(t, dim=(1, 3))  # (O/a, I/b, K)
    return scores


def expand_group_mask(group_mask: Tensor, shape: Sequence[int], mask_type: MaskType) -> Tensor:
    """Map a per-block mask from :func:`group_scores` back onto the parameter's shape.

    Args:
        group_mask: Bool mask shaped like the grouped scores.
        shape: The parameter's shape.
        mask_type: From :func:`parse_mask_type`.

    Returns:
        A bool mask shaped ``shape``.
    """
    kind = mask_type[0]
    shape = list(shape)
    if kind == "block4":
        block = group_mask.expand(-1, 4).contiguous()
        work = list(shape)
        if len(work) > 2:
            work.append(work[1])
            del work[1]
        rem = work[-1] % 4
        if rem:
            work[-1] += 4 - rem
        block = block.reshape(work)
        if rem:
            block = block[..., : -(4 - rem)]
        if len(work) > 2:
            perm = list(range(len(work)))
            del perm[-1]
            perm.insert(1, len(perm))
            block = block.permute(*perm)
        return block.contiguous()
    if kind == "block":
        a, b = mask_type[1:]
        if a == 1 or b == 1:
            blocked = (
                [shape[0] * shape[1] // (a * b), a * b, -1] if b > 1 else [shape[0] // a, a, -1]
            )
            g = group_mask.reshape(blocked[0], -1).unsqueeze(1)  # (G, 1, R)
            return g.expand(blocked[0], blocked[1], g.shape[-1]).reshape(shape)
        k = math.prod(shape[2:])
        g = group_mask.reshape(shape[0] // a, 1, shape[1] // b, 1, k)
        return g.expand(shape[0] // a, a, shape[1] // b, b, k).reshape(shape)
    return group_mask.reshape(shape)


def nm_mask(scores: Tensor, n: int, m: int) -> Tensor:
    """Keep the ``n`` highest of every ``m`` consecutive scores (SparseML's ``NMPruningMaskCreator``).

    Groups run along the input channel: for 4-D tensors the scores are permuted to
    (out, kh, kw, in) first. SparseML returns that permuted mask without permuting it back (a
    shape error for convolutions); here it is permuted back. Ties follow ``torch.argsort``.

    Args:
        scores: 2-D or 4-D scores.
        n: Entries kept per group.
        m: Group size.

    Returns:
        A bool mask shaped like ``scores``.

    Example:
        >>> nm_mask(torch.tensor([[0.1, 0.4, 0.3, 0.2]]), 2, 4).tolist()
        [[False, True, True, False]]
    """
    groups = scores.numel() // m
    t = scores.detach().abs()
    if t.dim() == 4:
        t = t.permute(0, 2, 3, 1)
    permuted_shape = t.shape
    t = t.reshape(groups, m)
    index = torch.argsort(t, dim=1)[:, : m - n]
    keep = torch.ones(t.shape, dtype=torch.bool, device=t.device).scatter_(1, index, False)
    keep = keep.reshape(permuted_shape)
    if scores.dim() == 4:
        keep = keep.permute(0, 3, 1, 2)
    return keep.contiguous()


def _map_threads(jobs: list[tuple[Tensor, int]]) -> list[Tensor]:
    """``magnitude_mask`` over many tensors, large ones spread over threads.

    ``torch.kthvalue`` on one flat tensor runs on a single core; torch releases the GIL, so
    layers can be thresholded concurrently. Results do not depend on the thread count.
    """
    workers = min(torch.get_num_threads(), len(jobs))
    if workers < 2 or sum(g.numel() for g, _ in jobs) < 1_000_000:
        return [magnitude_mask(g, k) for g, k in jobs]
    largest_first = sorted(range(len(jobs)), key=lambda i: -jobs[i][0].numel())
    out: list[Tensor] = [jobs[0][0]] * len(jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, mask in zip(
            largest_first, pool.map(lambda i: magnitude_mask(*jobs[i]), largest_first)
        ):
            out[i] = mask
    return out


def compute_masks(
    scores: Sequence[Tensor],
    sparsities: Sequence[float],
    mask_type: MaskType,
    global_sparsity: bool = False,
) -> list[Tensor]:
    """Masks for several tensors at their target sparsities (layerwise or one global threshold).

    Args:
        scores: Per-parameter scores, e.g. ``|w|`` of the current (masked) weights.
        sparsities: One target per tensor; all equal when ``global_sparsity``.
        mask_type: From :func:`parse_mask_type`.
        global_sparsity: One threshold across all tensors' (grouped) scores, concatenated in
            order, with no per-layer normalisation (SparseML's GlobalMagnitudePruningModifier).

    Returns:
        One bool mask per tensor (True = keep).

    Raises:
        ValueError: If global targets differ or the counts do not match.

    Example:
        >>> ms = compute_masks([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5])], [0.5, 0.5],
        ...                    ("unstructured",), global_sparsity=True)
        >>> [m.tolist() for m in ms]
        [[False, True], [True, False]]
    """
    if len(scores) != len(sparsities):
        raise ValueError(f"`sparsities` must have {len(scores)} entries; got {len(sparsities)}")
    if mask_type[0] == "nm":
        n, m = mask_type[1:]
        return [
            torch.ones_like(s, dtype=torch.bool) if sp == 0.0 else nm_mask(s, n, m)
            for s, sp in zip(scores, sparsities)
        ]
    grouped = [group_scores(s, mask_type) for s in scores]
    if global_sparsity and len(grouped) > 0:
        if any(sp != sparsities[0] for sp in sparsities):
            raise ValueError(f"global `sparsities` must all be equal; got {list(sparsities)}")
        flat = torch.cat([g.reshape(-1) for g in grouped])  # (total,)
        keep = magnitude_mask(flat, n_zeros_for(sparsities[0], flat.numel()))
        group_masks = [
            p.reshape(g.shape) for p, g in zip(keep.split([g.numel() for g in grouped]), grouped)
        ]
    else:
        jobs = [(g, n_zeros_for(sp, g.numel())) for g, sp in zip(grouped, sparsities)]
        group_masks = _map_threads(jobs)
    return [expand_group_mask(gm, s.shape, mask_type) for gm, s in zip(group_masks, scores)]
