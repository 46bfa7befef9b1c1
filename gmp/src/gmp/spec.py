"""The normalised description of one pruning modifier, shared by the recipe reader and the pruner.

A recipe's ``GMPruningModifier`` with a per-layer ``final_sparsity: {0.9: [...], 0.8: [...]}`` is
expanded into one spec per target, so a spec always has a single float target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FROM_PARAM = "__FROM_PARAM__"


@dataclass(frozen=True)
class PruningModifierSpec:
    """One pruning modifier, as SparseML 1.8's ``GMPruningModifier`` understands it."""

    # "gmp": gradual magnitude pruning; "constant": hold the current zeros (ConstantPruningModifier).
    kind: Literal["gmp", "constant"]
    # Exact parameter names, "re:" patterns (re.match), "__ALL__" or "__ALL_PRUNABLE__".
    params: tuple[str, ...]
    # Sparsity at start_epoch, in [0, 1), or FROM_PARAM to start from each tensor's current sparsity.
    init_sparsity: float | str = 0.05
    # Sparsity reached at end_epoch, in [0, 1).
    final_sparsity: float = 0.9
    # First epoch of pruning (float; steps = epoch * steps_per_epoch).
    start_epoch: float = 0.0
    # Epoch at which final_sparsity is forced; -1 for constant modifiers means "until training ends".
    end_epoch: float = 10.0
    # Epochs between mask updates; -1 means every step.
    update_frequency: float = 1.0
    # Interpolation: "cubic" (default), "linear" or "inverse_cubic".
    inter_func: str = "cubic"
    # "unstructured", "block4", "N:M" (e.g. "2:4") or a block shape such as (1, 4).
    mask_type: str | tuple[int, int] = "unstructured"
    # True: one magnitude threshold across all selected tensors (GlobalMagnitudePruningModifier).
    global_sparsity: bool = False
    # Keep masks enforced after end_epoch (SparseML default True).
    leave_enabled: bool = True
