"""The blocked design's schedule: which cells form a block, and the order of each round.

A *block* is a set of cells loaded together; a *round* times every live cell of the block once.
Round orders are counterbalanced in pairs: round ``2p`` runs a seeded random permutation of the
block's live cells and round ``2p + 1`` runs it reversed, so a drift that is linear in time within
a pair of rounds adds the same amount to every cell's mean over the pair. The order is a pure
function of (seed, block, round, live cells): a resumed run continues the same schedule.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

__all__ = ["group_blocks", "round_order"]

T = TypeVar("T")


def round_order(cell_keys: Iterable[str], *, seed: int, block: str, round: int) -> list[str]:
    """The order in which round ``round`` of ``block`` times its live cells.

    With ``p = round // 2``, round ``2p`` is a permutation of the cell keys (sorted first, so the
    result does not depend on the order they are given in) drawn with
    ``random.Random(f"{seed}:{block}:{p}")``, and round ``2p + 1`` is that permutation reversed.

    Args:
        cell_keys: the keys of the block's live cells (distinct).
        seed: ``BenchSettings.seed``.
        block: the block's name.
        round: 0-based round index.

    Returns:
        The keys in timing order.

    Raises:
        ValueError: ``round`` is negative.

    Example:
        >>> first = round_order(["a", "b", "c"], seed=0, block="resnet50", round=0)
        >>> round_order(["c", "b", "a"], seed=0, block="resnet50", round=1) == first[::-1]
        True
    """
    if not isinstance(round, int) or round < 0:
        raise ValueError(f"`round` must be an integer >= 0; got {round!r}")
    keys = sorted(cell_keys)
    random.Random(f"{seed}:{block}:{round // 2}").shuffle(keys)
    return keys if round % 2 == 0 else keys[::-1]


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
