"""One-shot pruning sensitivity: how a metric degrades when a single layer is pruned.

Each selected layer is pruned alone (all others dense) to each level, ``metric_fn(model)`` is
evaluated, and the layer's weights are restored bit for bit. The original study pruned at random;
``method="magnitude"`` (smallest ``|w|`` first, SparseML's tie rules) is the default here.

Needs pandas and tqdm, gmp's ``sensitivity`` extra (``pip install 'torch-gmp[sensitivity]'``); they
are imported when :func:`sensitivity` is called, so ``import gmp`` works without them.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gmp._optional import require
from gmp.masks import magnitude_mask, n_zeros_for
from gmp.params import select_params

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_LEVELS", "METHODS", "sensitivity"]

DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
METHODS = ("magnitude", "random")


def sensitivity(
    model: nn.Module,
    metric_fn: Callable[[nn.Module], float],
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    method: str = "magnitude",
    params: Sequence[str] | str = "__ALL_PRUNABLE__",
    top_n: int | None = 10,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Prunes each layer alone at each level and records ``metric_fn(model)``.

    Args:
        model: The model; put it in the mode the metric needs (usually ``eval()``) first.
        metric_fn: Called with the model, returns a number (e.g. accuracy on a held-out set). It
            must not change the model's parameters.
        levels: Sparsities to try, each in [0, 1); the count pruned is ``round(level * numel)``.
        method: "magnitude" (prune the smallest ``|w|``) or "random" (a seeded random subset).
        params: Which parameters to consider: names, "re:" patterns, "__ALL__" or
            "__ALL_PRUNABLE__" (see :func:`gmp.params.select_params`).
        top_n: Keep only the ``top_n`` largest selected parameters by element count (ties: model
            order); None keeps all.
        seed: Seed of the random scores (method "random").
        progress: Show a tqdm progress bar.

    Returns:
        A DataFrame with columns ``layer`` (parameter name), ``numel``, ``level``, ``method`` and
        ``metric``: one row per layer and level, plus a ``level`` 0.0 row per layer holding the
        unpruned baseline (evaluated once). Layers appear in model order.

    Raises:
        ImportError: If pandas or tqdm is missing (the message names the extra that brings them).
        ValueError: On invalid ``levels``, ``method``, ``top_n``, ``seed``, a ``params`` pattern
            matching nothing, or a metric that is not a number.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
        >>> x = torch.randn(16, 4)
        >>> df = sensitivity(model, lambda m: m(x).abs().mean().item(), levels=(0.5,),
        ...                  progress=False)
        >>> df[["layer", "numel", "level"]].values.tolist()
        [['0.weight', 32, 0.0], ['0.weight', 32, 0.5], ['2.weight', 16, 0.0], ['2.weight', 16, 0.5]]
    """
    pandas = require("pandas", "gmp.sensitivity")
    require("tqdm", "gmp.sensitivity")
    from tqdm.auto import tqdm

    levels = _validate_sensitivity_args(model, metric_fn, levels, method, top_n, seed)
    selected = select_params(model, params)
    if top_n is not None and top_n < len(selected):
        by_size = sorted(range(len(selected)), key=lambda i: -_tensor(selected[i]).numel())
        keep = set(by_size[:top_n])
        selected = [triple for i, triple in enumerate(selected) if i in keep]
    generator = torch.Generator().manual_seed(seed)
    baseline = _metric(metric_fn, model)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(selected) * len(levels), disable=not progress, desc="sensitivity")
    try:
        for name, module, attr in selected:
            tensor = _tensor((name, module, attr))
            rows.append(_row(name, tensor.numel(), 0.0, method, baseline))
            for level in levels:
                if method == "magnitude":
                    scores = tensor.detach().abs()
                else:
                    scores = torch.rand(tensor.shape, generator=generator).to(tensor.device)
                keep = magnitude_mask(scores, n_zeros_for(level, tensor.numel()))
                rows.append(
                    _row(
                        name,
                        tensor.numel(),
                        level,
                        method,
                        _pruned_metric(model, metric_fn, tensor, keep),
                    )
                )
                bar.update(1)
    finally:
        bar.close()
    return pandas.DataFrame(rows, columns=["layer", "numel", "level", "method", "metric"])


def _validate_sensitivity_args(
    model: Any, metric_fn: Any, levels: Any, method: Any, top_n: Any, seed: Any
) -> tuple[float, ...]:
    """Checks sensitivity()'s arguments; returns the levels as floats."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(metric_fn):
        raise ValueError(f"`metric_fn` must be callable; got {metric_fn!r}")
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise ValueError(
            f"`levels` must be a non-empty sequence of numbers in [0, 1); got {levels!r}"
        )
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level < 1:
            raise ValueError(f"`levels` entries must be numbers in [0, 1); got {level!r}")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise ValueError(f"`top_n` must be None or an int >= 1; got {top_n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int; got {seed!r}")
    return tuple(float(level) for level in levels)


def _tensor(triple: tuple[str, nn.Module, str]) -> torch.Tensor:
    """The stored tensor behind a parameter (``<attr>_orig`` under torch.nn.utils.prune)."""
    _, module, attr = triple
    orig = getattr(module, f"{attr}_orig", None)
    return orig if isinstance(orig, torch.Tensor) else getattr(module, attr)


def _pruned_metric(
    model: nn.Module,
    metric_fn: Callable[[nn.Module], float],
    tensor: torch.Tensor,
    keep: torch.Tensor,
) -> float:
    """Zeroes ``~keep`` in ``tensor``, evaluates the metric, and restores the exact values."""
    original = tensor.detach().clone()
    try:
        with torch.no_grad():
            tensor.masked_fill_(~keep, 0.0)
        return _metric(metric_fn, model)
    finally:
        with torch.no_grad():
            tensor.copy_(original)


def _metric(metric_fn: Callable[[nn.Module], float], model: nn.Module) -> float:
    value = metric_fn(model)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`metric_fn` must return a number; got {value!r}")
    return float(value)


def _row(layer: str, numel: int, level: float, method: str, metric: float) -> dict[str, Any]:
    return {"layer": layer, "numel": numel, "level": level, "method": method, "metric": metric}
