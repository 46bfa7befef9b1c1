"""Which parameters a modifier prunes: SparseML's name/pattern rules, with stricter checks.

Patterns (SparseML 1.8, ``sparseml/pytorch/utils/helpers.py``):
    * an exact parameter name such as ``"features.0.weight"``;
    * ``"re:<regex>"``, matched with ``re.match`` (anchored at the start only);
    * ``"__ALL__"``: every parameter (``re:.*``);
    * ``"__ALL_PRUNABLE__"``: the ``weight`` of every ``Linear``, ``Embedding`` and ``_ConvNd``
      module. Embedding is included, as in SparseML, so that a recipe selects the same tensors
      under both toolchains.

What is allowed: every pattern must match at least one parameter. A parameter named *exactly*
must be prunable, i.e. have at least 2 dimensions (a weight matrix or kernel); naming a bias or a
normalisation weight (1-D) raises, since magnitude pruning them is almost always a mistake.
``re:`` patterns and ``__ALL__`` keep SparseML's meaning (whatever they match, 1-D included), so a
recipe selects the same tensors under both toolchains.

On a model whose pruning reparametrisation is active (``torch.nn.utils.prune``), ``weight_orig``
is reported under its public name ``weight``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

__all__ = ["ALL", "ALL_PRUNABLE", "is_prunable_module", "named_params", "select_params"]

ALL = "__ALL__"
ALL_PRUNABLE = "__ALL_PRUNABLE__"


def is_prunable_module(module: nn.Module) -> bool:
    """True for the layer types whose ``weight`` ``__ALL_PRUNABLE__`` selects (as SparseML).

    Args:
        module: Any module.

    Returns:
        Whether it is a ``Linear``, ``Embedding`` or ``_ConvNd``.
    """
    return isinstance(module, nn.Linear | nn.Embedding | nn.modules.conv._ConvNd)


def named_params(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """Every parameter as ``(full name, owning module, attribute)``, in ``named_parameters()`` order.

    A pruned ``weight_orig`` (with its ``weight_mask`` buffer) is listed as ``weight``.

    Args:
        model: The model.

    Returns:
        The list of triples.
    """
    owners: dict[int, tuple[str, nn.Module, str]] = {}
    for mod_name, module in model.named_modules():
        for attr, param in module.named_parameters(recurse=False):
            if attr.endswith("_orig") and hasattr(module, attr[: -len("_orig")] + "_mask"):
                attr = attr[: -len("_orig")]
            full = f"{mod_name}.{attr}" if mod_name else attr
            owners.setdefault(id(param), (full, module, attr))
    order = [owners[id(p)] for p in model.parameters() if id(p) in owners]
    return order


def select_params(
    model: nn.Module, patterns: Sequence[str] | str
) -> list[tuple[str, nn.Module, str]]:
    """Resolve SparseML-style parameter patterns to ``(name, module, attribute)`` triples.

    Args:
        model: The model to search.
        patterns: One pattern or a sequence of them (see the module docstring); an empty
            sequence means ``__ALL_PRUNABLE__``, as in SparseML.

    Returns:
        The selected parameters in ``model.named_parameters()`` order, each once.

    Raises:
        ValueError: If a pattern matches nothing, a ``re:`` pattern is invalid, or an exactly
            named parameter is not prunable (fewer than 2 dimensions).

    Example:
        >>> m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
        >>> [name for name, _, _ in select_params(m, "__ALL_PRUNABLE__")]
        ['0.weight', '3.weight']
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns) or [ALL_PRUNABLE]
    everything = named_params(model)
    chosen: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"`params` entries must be strings; got {pattern!r}")
        hits = _match(pattern, everything)
        if not hits:
            raise ValueError(
                f"`params` pattern {pattern!r} matches no parameter; allowed: exact names, "
                f"'re:' patterns, {ALL!r} or {ALL_PRUNABLE!r} (e.g. {everything[0][0]!r})"
                if everything
                else f"`params` pattern {pattern!r} matches no parameter (the model has none)"
            )
        chosen.update(hits)
    return [triple for triple in everything if triple[0] in chosen]


def _match(pattern: str, everything: list[tuple[str, nn.Module, str]]) -> list[str]:
    if pattern == ALL:
        return [name for name, _, _ in everything]
    if pattern == ALL_PRUNABLE:
        return [
            name for name, mod, attr in everything if attr == "weight" and is_prunable_module(mod)
        ]
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:])
        except re.error as err:
            raise ValueError(f"`params` pattern {pattern!r} is not a valid regex: {err}") from err
        return [name for name, _, _ in everything if regex.match(name)]
    for name, mod, attr in everything:
        if name == pattern:
            if getattr(mod, attr).dim() < 2:
                raise ValueError(
                    f"`params` entry {pattern!r} is not prunable (shape "
                    f"{tuple(getattr(mod, attr).shape)}); allowed: parameters with >= 2 dims "
                    "(weights of Linear/Conv/Embedding and similar), not biases or norm weights"
                )
            return [name]
    return []
