"""The blocked design's schedule: which cells form a block, the replicates' order, each round's order.

A *block* is a set of cells loaded together; a *replicate* of a block is one fresh set of its
worker processes (fresh engine loads and compiles), timed in *rounds*, each timing every live cell
once. Replicates of different blocks are interleaved in time (:func:`interleave`: block A's
replicate 0, block B's replicate 0, block A's replicate 1, ...), so a slow drift of the machine
falls on every block's replicates alike. Each replicate loads its cells in its own seeded order
(:func:`load_order`), and its round orders are counterbalanced in pairs: round ``2p`` runs a seeded
random permutation of the block's live cells and round ``2p + 1`` runs it reversed, so a drift that
is linear in time within a pair of rounds adds the same amount to every cell's mean over the pair.
Orders are pure functions of (seed, block, replicate, round, cells): a rerun with the same seed
repeats them, and two replicates of one run draw different ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

__all__ = ["group_blocks", "interleave", "load_order", "round_order"]

T = TypeVar("T")


def round_order(
    cell_keys: Iterable[str], *, seed: int, block: str, round: int, replicate: int = 0
) -> list[str]:
    """The order in which round ``round`` of ``block``'s replicate ``replicate`` times its live cells.

    With ``p = round // 2``, round ``2p`` is a permutation of the cell keys (sorted first, so the
    result does not depend on the order they are given in) drawn with
    ``random.Random(f"{seed}:{block}:{replicate}:{p}")``, and round ``2p + 1`` is that permutation
    reversed.

    Args:
        cell_keys: the keys of the block's live cells (distinct).
        seed: ``BenchSettings.seed``.
        block: the block's name.
        round: 0-based round index within the replicate.
        replicate: 0-based replicate index of the block within its run.

    Returns:
        The keys in timing order.

    Raises:
        ValueError: ``round`` or ``replicate`` is negative.

    Example:
        >>> first = round_order(["a", "b", "c"], seed=0, block="resnet50", round=0)
        >>> round_order(["c", "b", "a"], seed=0, block="resnet50", round=1) == first[::-1]
        True
    """
    if not isinstance(round, int) or round < 0:
        raise ValueError(f"`round` must be an integer >= 0; got {round!r}")
    _check_replicate(replicate)
    keys = sorted(cell_keys)
    random.Random(f"{seed}:{block}:{replicate}:{round // 2}").shuffle(keys)
    return keys if round % 2 == 0 else keys[::-1]


def load_order(cell_keys: Iterable[str], *, seed: int, block: str, replicate: int) -> list[str]:
    """The order in which replicate ``replicate`` of ``block`` starts loading and warms up its cells.

    A permutation of the sorted keys drawn with ``random.Random(f"{seed}:{block}:{replicate}:load")``,
    so the memory layout and the compile order differ between replicates but repeat across reruns.

    Raises:
        ValueError: ``replicate`` is negative.

    Example:
        >>> order = load_order(["a", "b", "c"], seed=0, block="resnet50", replicate=1)
        >>> sorted(order), order == load_order(["c", "b", "a"], seed=0, block="resnet50", replicate=1)
        (['a', 'b', 'c'], True)
    """
    _check_replicate(replicate)
    keys = sorted(cell_keys)
    random.Random(f"{seed}:{block}:{replicate}:load").shuffle(keys)
    return keys


def interleave(replicates: Mapping[str, Sequence[int]]) -> list[tuple[str, int]]:
    """The (block, replicate) pairs in measuring order: every block's first pending replicate, then
    every block's second, and so on; blocks in the order given.

    Args:
        replicates: block -> the replicate indices still to measure, in order.

    Example:
        >>> interleave({"a": [0, 1, 2], "b": [1, 2]})
        [('a', 0), ('b', 1), ('a', 1), ('b', 2), ('a', 2)]
    """
    slots = max((len(v) for v in replicates.values()), default=0)
    return [
        (block, reps[i])
        for i in range(slots)
        for block, reps in replicates.items()
        if i < len(reps)
    ]


def _check_replicate(replicate: object) -> None:
    if not isinstance(replicate, int) or isinstance(replicate, bool) or replicate < 0:
        raise ValueError(f"`replicate` must be an integer >= 0; got {replicate!r}")


def group_blocks(items: Sequence[T], block_of: Callable[[T], str]) -> dict[str, list[T]]:
    """Items grouped by ``block_of(item)``, blocks in the order they first appear, items in order.

    Example:
        >>> group_blocks(["a1", "b1", "a2"], lambda s: s[0])
        {'a': ['a1', 'a2'], 'b': ['b1']}
    """
    blocks: dict[str, list[T]] = {}
    for item in items:
        blocks.setdefault(block_of(item), []).append(item)
    return blocks
