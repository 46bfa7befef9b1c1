"""Magnitude masks as pure functions on tensors, with SparseML 1.8's exact counts and tie rules.

Reference: ``sparseml/pytorch/sparsification/pruning/mask_creator.py`` (1.8.0). A mask is a
``torch.bool`` tensor, True = keep. SparseML sorts every score tensor to find the threshold (the
``n_zeros``-th smallest score). Here the threshold is selected without sorting and only entries
tied at it are looked at again, which gives SparseML's masks bit for bit at a fraction of the cost.

Selection: non-negative float32 values order like their bit patterns read as int32 (+0.0 is 0),
so for float32 scores on CPU one ``torch.bincount`` of the high 16 bits finds the bucket holding
the threshold, and the few entries of that bucket give its exact value (a radix select; a global
threshold is selected chunk by chunk, without a concatenated copy of the scores). Other dtypes
and devices, scores with a negative (-0.0 included) or NaN entry, tensors of fewer than
``_RADIX_MIN_NUMEL`` entries, and a threshold of 0.0 or a denormal under
``torch.set_flush_denormal(True)`` use ``torch.kthvalue``. Both give the same value, so the masks
do not depend on which one ran.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    return _prune_lowest([flat], n_zeros)[0].reshape(scores.shape)


# Below this many entries torch.kthvalue is as fast (measured on 2 CPU cores: crossover 12-16k).
_RADIX_MIN_NUMEL = 1 << 14
_SORT_MAX = 4096  # a bucket this small is sorted; a larger one is counted on its low 16 bits
_INF_BITS = 0x7F800000  # +inf read as int32; NaNs read larger, the sign bit reads negative
_EIGHT = torch.arange(8)
_DENORMAL = torch.tensor(1, dtype=torch.int32).view(torch.float32)  # the smallest, 2**-149


def _radix_kth(chunks: list[Tensor], k: int) -> tuple[Tensor, int, list[Tensor]] | None:
    """The ``k``-th smallest entry of the concatenated ``chunks``, by counting its bit patterns.

    Non-negative float32 values order like their bit patterns read as int32, so a histogram
    (``torch.bincount``) of the high 16 bits finds the bucket holding the k-th entry, and the
    few entries of that bucket give its exact value: the one ``torch.kthvalue`` returns.

    Args:
        chunks: 1-D float32 tensors, read as one concatenated tensor.
        k: Rank, in ``[1, total numel]``.

    Returns:
        ``(threshold, at_or_below, ties)``: the value as a 0-dim float32 tensor, the count of
        entries <= it, and per chunk the (ascending) indices of the entries equal to it. None if
        an entry is negative (-0.0 included) or NaN, where the bit order is not the value order
        (the caller then uses ``torch.kthvalue``).
    """
    bits = [c.view(torch.int32) for c in chunks]
    found = [_high_histogram(b) for b in bits]
    if any(f is None for f in found):
        return None
    counts = found[0][1]
    for _, c in found[1:]:
        counts += c
    cum = counts.cumsum(0)
    bucket = int(torch.searchsorted(cum, k))  # first bucket whose cumulative count reaches k
    if bucket < 0x80 and not bool(_DENORMAL > 0):  # threshold 0.0 or denormal, and
        return None  # torch.set_flush_denormal(True): comparisons read denormals as 0, bits don't
    before = int(cum[bucket - 1]) if bucket else 0  # entries in the buckets below
    where = [_bucket_where(h, int(c[bucket]), bucket) for h, c in found]  # the bucket's entries
    inside = [b[w] for b, w in zip(bits, where)]
    values = torch.cat(inside)
    if values.numel() <= _SORT_MAX:
        value = int(values.sort().values[k - before - 1])
    else:  # e.g. the bucket of 0.0, holding every pruned entry
        cum_low = torch.bincount(values & 0xFFFF, minlength=1 << 16).cumsum(0)
        value = (bucket << 16) | int(torch.searchsorted(cum_low, k - before))
    at_or_below = before + int(torch.count_nonzero(values <= value))
    ties = [w[v == value] for w, v in zip(where, inside)]
    threshold = torch.tensor(value, dtype=torch.int32).view(torch.float32)
    return threshold, at_or_below, ties


def _high_histogram(bits: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(bits >> 16, its 2**15-bin histogram)``, or None if some bits are negative or NaN."""
    if bits.numel():
        lowest, highest = torch.aminmax(bits)
        if lowest.item() < 0 or highest.item() > _INF_BITS:
            return None
    high = bits >> 16  # sign (0), exponent and top 7 mantissa bits: at most 0x7F80
    return high, torch.bincount(high, minlength=1 << 15)


def _bucket_where(high: Tensor, count: int, bucket: int) -> Tensor:
    """Ascending indices of the ``count`` entries of ``high`` equal to ``bucket``."""
    hit = high == bucket  # (n,) bool
    n = hit.numel()
    if 64 * count > n:
        return torch.nonzero(hit).squeeze(1)
    # Few hits: nonzero over the mask read as int64 words reads 8x fewer elements than over the
    # bools, then the hits are picked out of the (at most 8 per hit) candidates.
    n8 = n - n % 8
    words = torch.nonzero(hit[:n8].view(torch.int64)).squeeze(1)
    where = (words.unsqueeze(1) * 8 + _EIGHT).reshape(-1)
    return torch.cat([where[hit[where]], torch.nonzero(hit[n8:]).squeeze(1) + n8])


def _prune_lowest(
    chunks: list[Tensor], n_zeros: int, out: list[Tensor] | None = None
) -> list[Tensor] | None:
    """Keep masks of 1-D ``chunks`` read as one concatenated tensor, its ``n_zeros`` lowest pruned.

    The rules of :func:`magnitude_mask` on the concatenation; ``n_zeros`` in ``[1, total]``.
    The radix selection works chunk by chunk, so a global threshold needs no concatenated copy.

    Args:
        chunks: 1-D score tensors.
        n_zeros: Entries to prune in all.
        out: Optional 1-D 0/1 masks, one per chunk, to AND the keep masks into (in place, and
            None is returned). Each chunk must be 0 wherever its ``out`` is 0.

    Returns:
        One bool keep mask per chunk, or None with ``out``.
    """
    sizes = [c.numel() for c in chunks]
    found = _radix_kth(chunks, n_zeros) if _radix_applies(chunks) else None
    if found is None:  # kthvalue (== torch.sort(flat)[0][n_zeros - 1]) on one tensor
        flat = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        threshold = torch.kthvalue(flat, n_zeros).values
        keeps = [flat > threshold]
        at_or_below = flat.numel() - int(torch.count_nonzero(keeps[0]))
        if at_or_below > n_zeros:
            ties = [torch.nonzero(flat == threshold).squeeze(1)]  # row-major, as SparseML's
            _resolve_ties(keeps, ties, n_zeros, at_or_below)
        if len(chunks) > 1:
            keeps = list(keeps[0].split(sizes))
    else:
        threshold, at_or_below, ties = found
        # Entries kept score above 0 when the threshold is, so ``out`` keeps them already: the AND
        # is the new mask, written straight into ``out`` (one pass, no bool mask to multiply in).
        direct = out is not None and threshold.item() > 0
        if direct:
            keeps = [torch.gt(c, threshold, out=o) for c, o in zip(chunks, out)]
        else:
            keeps = [c > threshold for c in chunks]
        if at_or_below > n_zeros:
            _resolve_ties(keeps, ties, n_zeros, at_or_below)
        if direct:
            return None
    if out is None:
        return keeps
    for o, keep in zip(out, keeps):
        o.mul_(keep.view(torch.uint8))  # 0/1 as uint8 multiplies twice as fast as bool
    return None


def _radix_applies(chunks: list[Tensor]) -> bool:
    return (
        all(c.dtype == torch.float32 and c.device.type == "cpu" for c in chunks)
        and sum(c.numel() for c in chunks) >= _RADIX_MIN_NUMEL
    )


def _resolve_ties(keeps: list[Tensor], ties: list[Tensor], n_zeros: int, at_or_below: int) -> None:
    """Keep entries tied at the threshold (in place) until exactly ``n_zeros`` are pruned.

    Args:
        keeps: Per chunk, ``scores > threshold`` (bool, or 0/1 of another dtype).
        ties: Per chunk, the ascending indices of the entries equal to the threshold.
        n_zeros: Entries to prune in all.
        at_or_below: Entries <= the threshold in all (> ``n_zeros``).
    """
    n_ties = sum(t.numel() for t in ties)
    if n_ties < at_or_below:  # threshold above the minimum: keep the first ties
        excess = at_or_below - n_zeros
        for keep, t in zip(keeps, ties):
            keep[t[:excess]] = True
            excess -= min(excess, t.numel())
            if excess == 0:
                break
        return
    # threshold == minimum: prune n_zeros of the minima, drawn as SparseML does with Random(42)
    order = list(range(n_ties))
    random.Random(42).shuffle(order)
    pruned = torch.zeros(n_ties, dtype=torch.bool, device=keeps[0].device)
    pruned[torch.tensor(order[:n_zeros], dtype=torch.int64, device=pruned.device)] = True
    for keep, t, p in zip(keeps, ties, pruned.split([t.numel() for t in ties])):
        keep[t] = (~p).to(keep.dtype)


def _map_threads(fn: Callable[[Any], Any], jobs: list, sizes: list[int]) -> list:
    """``[fn(job) for job in jobs]``, large jobs (``sizes``: entries) spread over threads.

    ``torch.kthvalue`` and the counting loop of ``torch.bincount`` run on a single core per
    tensor; torch releases the GIL, so layers can be thresholded concurrently. Results do not
    depend on the thread count.
    """
    workers = min(torch.get_num_threads(), len(jobs))
    if workers < 2 or sum(sizes) < 1_000_000:
        return [fn(job) for job in jobs]
    largest_first = sorted(range(len(jobs)), key=lambda i: -sizes[i])
    out: list = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in zip(largest_first, pool.map(lambda i: fn(jobs[i]), largest_first)):
            out[i] = result
    return out


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
        chunks = [g.reshape(-1) for g in grouped]  # read as one concatenated tensor
        n_zeros = _global_n_zeros(sparsities, chunks)
        keeps = (
            _prune_lowest(chunks, n_zeros)
            if n_zeros
            else [torch.ones_like(c, dtype=torch.bool) for c in chunks]
        )
        group_masks = [k.reshape(g.shape) for k, g in zip(keeps, grouped)]
    else:
        jobs = [(g, n_zeros_for(sp, g.numel())) for g, sp in zip(grouped, sparsities)]
        group_masks = _map_threads(lambda j: magnitude_mask(*j), jobs, [g.numel() for g in grouped])
    return [expand_group_mask(gm, s.shape, mask_type) for gm, s in zip(group_masks, scores)]


def _global_n_zeros(sparsities: Sequence[float], chunks: Sequence[Tensor]) -> int:
    """Entries a global threshold prunes over all ``chunks``; their ``sparsities`` must be equal."""
    if any(sp != sparsities[0] for sp in sparsities):
        raise ValueError(f"global `sparsities` must all be equal; got {list(sparsities)}")
    return n_zeros_for(sparsities[0], sum(c.numel() for c in chunks))


def _and_masks_(
    masks: Sequence[Tensor],
    scores: Sequence[Tensor],
    sparsities: Sequence[float],
    mask_type: MaskType,
    global_sparsity: bool = False,
) -> None:
    """``m.mul_(new)`` for every mask ``m`` and its ``new`` mask from :func:`compute_masks`.

    For the pruner, whose masks only grow: ``scores`` (``|w_orig * w_mask|``) must be 0 wherever
    ``masks`` (0/1 tensors shaped like them) are 0. Unstructured masks of contiguous tensors are
    then AND-ed in place without bool masks in between (see :func:`_prune_lowest`); the result is
    the same.

    Args:
        masks: The masks to update in place.
        scores: Per-mask scores, 0 wherever the mask is 0.
        sparsities: As in :func:`compute_masks`.
        mask_type: As in :func:`compute_masks`.
        global_sparsity: As in :func:`compute_masks`.
    """
    in_place = mask_type[0] == "unstructured" and all(t.is_contiguous() for t in (*masks, *scores))
    if not in_place or len(scores) != len(sparsities):
        for m, new in zip(masks, compute_masks(scores, sparsities, mask_type, global_sparsity)):
            m.mul_(new.view(torch.uint8))  # 0/1 as uint8 multiplies twice as fast as bool
        return
    flats = [s.view(-1) for s in scores]
    outs = [m.view(-1) for m in masks]
    if global_sparsity and flats:
        n_zeros = _global_n_zeros(sparsities, flats)
        if n_zeros:
            _prune_lowest(flats, n_zeros, out=outs)
        return
    jobs = [(f, o, n_zeros_for(sp, f.numel())) for f, o, sp in zip(flats, outs, sparsities)]
    _map_threads(
        lambda j: _prune_lowest([j[0]], j[2], out=[j[1]]) if j[2] else None,
        jobs,
        [f.numel() for f in flats],
    )
