"""Per-layer sparsity of a model: zeros counted in the weights the model actually uses.

Works on a finalized model (plain weights), on a model whose ``torch.nn.utils.prune``
reparametrisation is active (zeros of ``weight_orig * weight_mask``, reported as ``weight``) and
on a SparseML-pruned model (plain weights with zeros).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from gmp._optional import require
from gmp.params import ALL_PRUNABLE, select_params

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LayerSparsity", "SparsityReport", "layer_zeros", "sparsity_report"]


@dataclass(frozen=True)
class LayerSparsity:
    """Zeros in one parameter."""

    # Full parameter name, e.g. "features.0.weight" (never "..._orig").
    name: str
    # The parameter's shape.
    shape: tuple[int, ...]
    # Number of entries.
    numel: int
    # Number of entries exactly equal to 0 (-0.0 included).
    zeros: int
    # zeros / numel.
    sparsity: float


@dataclass(frozen=True)
class SparsityReport:
    """Sparsity of the selected parameters of a model, per layer and in total."""

    # One entry per selected parameter, in model order.
    layers: tuple[LayerSparsity, ...]

    @property
    def total_numel(self) -> int:
        """Entries over all layers."""
        return sum(layer.numel for layer in self.layers)

    @property
    def total_zeros(self) -> int:
        """Zeros over all layers."""
        return sum(layer.zeros for layer in self.layers)

    @property
    def sparsity(self) -> float:
        """total_zeros / total_numel (0.0 for an empty report)."""
        return self.total_zeros / self.total_numel if self.total_numel else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row per layer: name, shape, numel, zeros, sparsity.

        Raises:
            ImportError: If pandas is missing (it comes with gmp's ``sensitivity`` extra).
        """
        pandas = require("pandas", "SparsityReport.to_frame")  # imported on use: slow, optional

        return pandas.DataFrame(
            [(x.name, x.shape, x.numel, x.zeros, x.sparsity) for x in self.layers],
            columns=["name", "shape", "numel", "zeros", "sparsity"],
        )

    def __str__(self) -> str:
        width = max([len("total"), *(len(x.name) for x in self.layers)])
        lines = [f"{'name':<{width}}  {'shape':<20} {'numel':>12} {'zeros':>12} {'sparsity':>8}"]
        for x in self.layers:
            shape = "x".join(map(str, x.shape))
            lines.append(
                f"{x.name:<{width}}  {shape:<20} {x.numel:>12,} {x.zeros:>12,} {x.sparsity:>8.2%}"
            )
        lines.append(
            f"{'total':<{width}}  {'':<20} {self.total_numel:>12,} {self.total_zeros:>12,} "
            f"{self.sparsity:>8.2%}"
        )
        return "\n".join(lines)


def _effective(module: nn.Module, attr: str) -> Tensor:
    if hasattr(module, attr + "_mask") and hasattr(module, attr + "_orig"):
        return getattr(module, attr + "_orig") * getattr(module, attr + "_mask")
    return getattr(module, attr)


@torch.no_grad()
def layer_zeros(model: nn.Module, params: Sequence[str] | str = ALL_PRUNABLE) -> dict[str, int]:
    """Zeros per selected parameter (cheap enough to call every training step).

    Args:
        model: The model.
        params: Patterns as in :func:`gmp.params.select_params`.

    Returns:
        ``{name: zeros}`` in model order.

    Example:
        >>> m = nn.Linear(2, 2)
        >>> _ = m.weight.data.zero_()
        >>> layer_zeros(m)
        {'weight': 4}
    """
    return {
        name: int((_effective(module, attr) == 0).sum())
        for name, module, attr in select_params(model, params)
    }


@torch.no_grad()
def sparsity_report(model: nn.Module, params: Sequence[str] | str = ALL_PRUNABLE) -> SparsityReport:
    """Per-layer and total sparsity of the selected parameters.

    Args:
        model: A finalized, actively pruned or SparseML-pruned model.
        params: Patterns as in :func:`gmp.params.select_params`; default ``__ALL_PRUNABLE__``.

    Returns:
        A :class:`SparsityReport`; ``print()`` it for a table, ``.to_frame()`` for pandas.

    Raises:
        ValueError: If a pattern matches nothing.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 4))
        >>> _ = m[0].weight.data[0].zero_()
        >>> sparsity_report(m).sparsity
        0.25
    """
    layers = []
    for name, module, attr in select_params(model, params):
        w = _effective(module, attr)
        zeros = int((w == 0).sum())
        layers.append(LayerSparsity(name, tuple(w.shape), w.numel(), zeros, zeros / w.numel()))
    return SparsityReport(tuple(layers))
