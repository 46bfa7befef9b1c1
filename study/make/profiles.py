"""The sparsity-profile and mask-type factors of the study, as rewrites of one SparseML GMP recipe.

Every pruned variant of an architecture is trained with the preset's recipe (one
``!GMPruningModifier`` over ``__ALL_PRUNABLE__``); :func:`profile_recipe` rewrites that text for a
profile and a mask type, and both toolchains (``gmp.GMP.from_recipe`` and
``baselines.sparseml.attach``) read the rewritten text, so the factor is applied by the recipe and
nothing else differs.

Profiles (:data:`PROFILES`):
    * ``uniform``: every prunable weight at the target sparsity (the reference variant).
    * ``vendor``: what SparseZoo's recipes do. The stem, the depthwise convolutions and the
      classifier stay dense (:func:`vendor_dense_layers`); the other layers are ramped in three
      groups so that the sparsity over *all* prunable weights still matches the target
      (:func:`layer_targets`). Written in SparseML's per-layer form
      ``final_sparsity: {0.85: [names], 0.9: [names], ...}`` with ``params: []``.
    * ``global``: one magnitude threshold over all selected weights
      (``!GlobalMagnitudePruningModifier``, same params and final sparsity).

Mask types (:data:`MASK_TYPES`): ``unstructured``, or ``block4`` (SparseML's 1x4 blocks along the
input channel, ``mask_type: block4``).

Equal sparsity under ``global`` + ``block4``: one threshold over *blocks* prunes a share of blocks,
not of weights, and a layer whose input channel is 1 (a depthwise convolution) has blocks of one
weight (SparseML pads them), so the share of weights pruned overshoots the target when the small
blocks survive (MobileNetV1 at 80%: 82.9% of its weights). A B compares files of equal sparsity,
so :func:`profile_recipe` sets that variant's final sparsity to the block target that prunes the
recipe's share of *weights* on the model it is given (:func:`global_block_target`, by bisection
on the trained dense weights); the recipe written to ``recipes/`` holds the value both toolchains
read.

Example:
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 64, 1),
    ...                   nn.Flatten(), nn.Linear(64, 10))
    >>> vendor_dense_layers(m)
    ['0.weight', '1.weight', '4.weight']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from torch import nn

__all__ = [
    "MASK_TYPES",
    "PROFILES",
    "global_block_target",
    "layer_targets",
    "profile_recipe",
    "vendor_dense_layers",
    "with_target",
]

PROFILES = ("uniform", "vendor", "global")
MASK_TYPES = ("unstructured", "block4")

# Per-group offsets from the solved centre sparsity c: earlier layers less sparse, later more.
_RAMP = (-0.05, 0.0, 0.05)
_MAX_LAYER_SPARSITY = 0.99
# The overall sparsity of the vendor profile must match the target within this (0.2 pp).
_TOLERANCE = 0.002
# Per-layer targets are multiples of 1 / _GRID (exact 4-decimal values in the YAML text).
_GRID = 10_000
_PRUNING_TAGS = ("GMPruningModifier", "MagnitudePruningModifier", "GlobalMagnitudePruningModifier")
# Arguments GMPruningModifier takes but GlobalMagnitudePruningModifier does not (SparseML 1.8).
_GMP_ONLY_ARGS = ("global_sparsity", "phased", "score_type")


# ---------------------------------------------------------------------------- layers


def _prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(weight name, module)`` of what ``__ALL_PRUNABLE__`` selects, in SparseML's order."""
    from gmp.params import ALL_PRUNABLE, select_params

    return [(name, module) for name, module, _ in select_params(model, ALL_PRUNABLE)]


def _is_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and module.in_channels > 1
        and module.groups == module.in_channels
    )


def vendor_dense_layers(model: nn.Module) -> list[str]:
    """The prunable weights that SparseZoo-style vendor recipes leave dense.

    Rule: the stem (the first convolution in module order), every depthwise convolution
    (``groups == in_channels > 1``) and the classifier (the last ``Linear`` in module order).
    Source: SparseZoo's MobileNetV1 ImageNet ``pruned-moderate`` recipe prunes only the pointwise
    convolutions of sections 1-4 (stem, depthwise convolutions and classifier dense), and its
    ResNet-50 ``pruned`` recipe prunes the bottleneck and downsample convolutions (stem and FC
    dense); see /work/shared/ENVIRONMENT.md, "Quantization facts". Names are those
    ``__ALL_PRUNABLE__`` selects (the ``.weight`` of Conv/Linear/Embedding, ``gmp.params``).

    Args:
        model: The model.

    Returns:
        The weight names, in ``named_parameters()`` order.

    Example:
        >>> from torch import nn
        >>> vendor_dense_layers(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 1),
        ...                                   nn.Flatten(), nn.Linear(4, 2)))
        ['0.weight', '3.weight']
    """
    layers = _prunable(model)
    convs = [name for name, m in layers if isinstance(m, nn.modules.conv._ConvNd)]
    linears = [name for name, m in layers if isinstance(m, nn.Linear)]
    dense = {name for name, m in layers if _is_depthwise(m)}
    dense |= set(convs[:1]) | set(linears[-1:])
    return [name for name, _ in layers if name in dense]


def _n_zeros(sparsity: float, numel: int) -> int:
    from gmp.masks import n_zeros_for  # round(sparsity * numel), SparseML's count

    return n_zeros_for(sparsity, numel)


def _ramp_groups(numels: list[int]) -> list[int]:
    """Group 0, 1 or 2 of each layer: three consecutive runs of roughly equal parameter count.

    A layer belongs to the third of the cumulative count its midpoint falls in.
    """
    total, before, groups = sum(numels), 0, []
    for numel in numels:
        groups.append(min(2, int(3 * (before + numel / 2) / total)))
        before += numel
    return groups


def _check_sparsity(sparsity: Any) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"`sparsity` must be a number in (0, 1); got {sparsity!r}")
    if not 0.0 < sparsity < 1.0:
        raise ValueError(f"`sparsity` must be in (0, 1); got {sparsity!r}")
    return float(sparsity)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}; got {value!r}")


def layer_targets(model: nn.Module, profile: str, sparsity: float) -> dict[str, float] | None:
    """Per-layer final sparsities of a profile, for every weight ``__ALL_PRUNABLE__`` selects.

    * ``uniform``: every weight at ``sparsity``.
    * ``vendor``: the weights of :func:`vendor_dense_layers` at 0.0; the others, in order, split
      into three consecutive groups of roughly equal parameter count, at ``c - 0.05``, ``c`` and
      ``c + 0.05`` (each clipped to [0, 0.99]). ``c``, a multiple of 1e-4, is found by bisection
      so that the zeros over *all* prunable weights, counted as SparseML counts them
      (``k = round(s * numel)`` per layer), come closest to ``round(sparsity * total)``.
    * ``global``: None (one threshold over all weights; no per-layer targets).

    Args:
        model: The model.
        profile: One of :data:`PROFILES`.
        sparsity: Target overall sparsity, in (0, 1).

    Returns:
        ``{weight name: final sparsity}`` in ``named_parameters()`` order, or None for global.

    Raises:
        ValueError: For an unknown profile, a sparsity outside (0, 1), a model with no prunable
            weight; for vendor, if the dense layers hold more than ``1 - sparsity`` of the
            weights, or the 0.99 cap keeps the overall sparsity more than 0.2 pp off target.

    Example:
        >>> from torch import nn
        >>> layer_targets(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), "uniform", 0.5)
        {'0.weight': 0.5, '1.weight': 0.5}
    """
    _check_choice("profile", profile, PROFILES)
    sparsity = _check_sparsity(sparsity)
    layers = _prunable(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no prunable weight (Conv/Linear/Embedding)")
    if profile == "global":
        return None
    if profile == "uniform":
        return {name: sparsity for name, _ in layers}
    return _vendor_targets(model, layers, sparsity)


def _vendor_targets(
    model: nn.Module, layers: list[tuple[str, nn.Module]], sparsity: float
) -> dict[str, float]:
    numel = {name: m.weight.numel() for name, m in layers}
    total = sum(numel.values())
    dense = set(vendor_dense_layers(model))
    dense_share = sum(numel[n] for n in dense) / total
    if dense_share > 1.0 - sparsity:
        raise ValueError(
            f"vendor profile of {type(model).__name__}: its dense layers (stem, depthwise convs, "
            f"classifier) hold {dense_share:.1%} of the prunable weights, more than "
            f"1 - target = {1 - sparsity:.1%}; target sparsity {sparsity} cannot be reached"
        )
    pruned = [n for n, _ in layers if n not in dense]
    groups = dict(zip(pruned, _ramp_groups([numel[n] for n in pruned])))
    offsets = [round(o * _GRID) for o in _RAMP]

    def targets(i: int) -> dict[str, float]:  # centre c = i / _GRID
        out = {}
        for name, _ in layers:
            if name in dense:
                out[name] = 0.0
            else:
                step = min(max(i + offsets[groups[name]], 0), round(_MAX_LAYER_SPARSITY * _GRID))
                out[name] = step / _GRID
        return out

    def zeros(i: int) -> int:  # non-decreasing in i
        return sum(_n_zeros(s, numel[n]) for n, s in targets(i).items())

    goal = _n_zeros(sparsity, total)
    lo, hi = 0, _GRID - offsets[0]  # at hi every layer is at the cap: the most zeros possible
    while lo < hi:  # smallest i with zeros(i) >= goal (or hi)
        mid = (lo + hi) // 2
        if zeros(mid) >= goal:
            hi = mid
        else:
            lo = mid + 1
    best = min((lo, max(lo - 1, 0)), key=lambda i: (abs(zeros(i) - goal), i))
    reached = zeros(best) / total
    if abs(reached - sparsity) > _TOLERANCE:
        raise ValueError(
            f"vendor profile of {type(model).__name__}: with per-layer sparsity capped at "
            f"{_MAX_LAYER_SPARSITY}, the overall sparsity reaches {reached:.4f}, more than "
            f"{_TOLERANCE * 100:.1f} pp from the target {sparsity} (dense share {dense_share:.1%})"
        )
    return targets(best)


# ---------------------------------------------------------------------------- recipe text


@dataclass
class _Tagged:
    """A ``!Name`` mapping of a recipe (a modifier), kept as read."""

    tag: str  # e.g. "GMPruningModifier"
    args: dict[str, Any]  # its arguments, raw (eval(...) strings stay strings)


class _Loader(yaml.SafeLoader):
    """SafeLoader keeping SparseML's ``!Name`` tags as :class:`_Tagged`."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper writing :class:`_Tagged` back as ``!Name`` mappings, without aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _construct_tagged(loader: _Loader, suffix: str, node: yaml.Node) -> _Tagged:
    if isinstance(node, yaml.MappingNode):
        return _Tagged(suffix, dict(loader.construct_mapping(node, deep=True)))
    if isinstance(node, yaml.ScalarNode) and node.value == "":
        return _Tagged(suffix, {})
    raise ValueError(
        f"line {node.start_mark.line + 1}: !{suffix} must be a mapping of arguments; got {node.id}"
    )


_Loader.add_multi_constructor("!", _construct_tagged)
_Dumper.add_representer(
    _Tagged, lambda dumper, t: dumper.represent_mapping("!" + t.tag, t.args.items())
)


def _pruning_modifier(container: Any) -> _Tagged:
    """The recipe's one GMP-family modifier (the object inside ``container``, to edit)."""
    if not isinstance(container, dict):
        raise ValueError(
            f"`recipe` must be a YAML mapping with a '...modifiers' list; got {type(container).__name__}"
        )
    found = [
        item
        for key, value in container.items()
        if isinstance(key, str) and "modifiers" in key and isinstance(value, list)
        for item in value
        if isinstance(item, _Tagged) and item.tag in _PRUNING_TAGS
    ]
    if len(found) != 1:
        raise ValueError(
            f"`recipe` must hold exactly one pruning modifier ({', '.join(_PRUNING_TAGS)}) under a "
            f"'...modifiers' key; found {len(found)}"
        )
    return found[0]


def _evaluated_target(recipe: str) -> float:
    """The pruning modifier's final sparsity after evaluating the recipe's expressions."""
    from gmp.recipe import load_recipe

    targets = {spec.final_sparsity for spec in load_recipe(recipe).pruning if spec.kind == "gmp"}
    if len(targets) != 1:
        raise ValueError(
            f"the vendor profile needs the recipe's pruning modifier to have one final_sparsity; "
            f"got per-layer targets {sorted(targets)}"
        )
    return targets.pop()


def _to_vendor(modifier: _Tagged, model: nn.Module, target: float) -> None:
    params = modifier.args.get("params")
    if params not in ("__ALL_PRUNABLE__", [], ["__ALL_PRUNABLE__"], None):
        raise ValueError(
            f"the vendor profile needs the pruning modifier's `params` to be __ALL_PRUNABLE__ "
            f"(it chooses the layers itself); got {params!r}"
        )
    if modifier.tag == "GlobalMagnitudePruningModifier" or modifier.args.get("global_sparsity"):
        raise ValueError(
            "the vendor profile needs a layerwise pruning modifier (per-layer targets); got a "
            "global one"
        )
    by_target: dict[float, list[str]] = {}
    for name, sparsity in layer_targets(model, "vendor", target).items():
        if sparsity > 0:  # dense layers are left out of the recipe
            by_target.setdefault(sparsity, []).append(name)
    modifier.args["params"] = []
    modifier.args["final_sparsity"] = {s: by_target[s] for s in sorted(by_target)}


def global_block_target(model: nn.Module, sparsity: float, mask: str = "block4") -> float:
    """The global ``mask`` target that prunes ``sparsity`` of the prunable *weights* of ``model``.

    One global threshold over ``|w|`` grouped into blocks (:func:`gmp.masks.compute_masks`, as
    both toolchains prune) prunes a share of blocks; this bisects the block target (to 1e-4)
    until the weights pruned match ``sparsity`` as closely as the blocks allow.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 64, 1))
        >>> 0.0 < global_block_target(m, 0.8) <= 0.8
        True
    """
    import torch

    from gmp.masks import compute_masks, parse_mask_type

    sparsity = _check_sparsity(sparsity)
    kind = parse_mask_type(mask)
    scores = [module.weight.detach().abs() for _, module in _prunable(model)]
    total = sum(s.numel() for s in scores)

    def pruned(target: float) -> float:
        with torch.no_grad():
            masks = compute_masks(scores, [target] * len(scores), kind, global_sparsity=True)
        return sum(int((~m).sum()) for m in masks) / total

    if abs(pruned(sparsity) - sparsity) <= 4.0 / total:  # within one block: nothing to correct
        return sparsity
    lo, hi = 0.0, 1.0 - 1.0 / _GRID
    while hi - lo > 1.0 / _GRID:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pruned(mid) < sparsity else (lo, mid)
    best = min((lo, hi), key=lambda t: abs(pruned(t) - sparsity))
    return round(best, 4)


def _to_global(modifier: _Tagged) -> None:
    if modifier.args.get("global_sparsity") is True or modifier.tag == _PRUNING_TAGS[2]:
        return
    if isinstance(modifier.args.get("final_sparsity"), dict):
        raise ValueError(
            "the global profile needs one final_sparsity; the recipe's pruning modifier has a "
            "per-layer dict"
        )
    for name in _GMP_ONLY_ARGS:
        modifier.args.pop(name, None)
    modifier.tag = "GlobalMagnitudePruningModifier"


def with_target(recipe: str, sparsity: float) -> str:
    """The recipe with its pruning modifier's ``final_sparsity`` set to ``sparsity``.

    Every other modifier and variable is kept as written (the text is re-written by PyYAML, as
    :func:`profile_recipe` does).

    Raises:
        ValueError: ``sparsity`` outside (0, 1), a recipe without exactly one pruning modifier, or
            one whose modifier has per-layer targets (a dict).
    """
    sparsity = _check_sparsity(sparsity)
    container = yaml.load(recipe, Loader=_Loader)  # a SafeLoader subclass
    modifier = _pruning_modifier(container)
    if isinstance(modifier.args.get("final_sparsity"), dict):
        raise ValueError(
            "a per-architecture target needs the recipe's pruning modifier to have one "
            "final_sparsity; it has a per-layer dict"
        )
    modifier.args["final_sparsity"] = sparsity
    return yaml.dump(
        container, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )


def profile_recipe(recipe: str, model: nn.Module, profile: str, mask: str) -> str:
    """Rewrite a SparseML GMP recipe for a sparsity profile and a mask type.

    The recipe must hold one pruning modifier (``!GMPruningModifier``,
    ``!MagnitudePruningModifier`` or ``!GlobalMagnitudePruningModifier``); every other modifier
    and every top-level variable is kept as written (``eval(...)`` strings stay strings).

    * ``uniform``: the pruning modifier as it is.
    * ``vendor``: ``params: []`` and ``final_sparsity: {target: [names], ...}`` from
      :func:`layer_targets` (targets ascending, names in ``named_parameters()`` order; the dense
      layers are left out). The recipe's target is its final sparsity, expressions evaluated.
    * ``global``: the modifier becomes ``!GlobalMagnitudePruningModifier`` with the same params
      and final sparsity (GMPruningModifier's deprecated ``global_sparsity``, ``phased`` and
      ``score_type`` arguments dropped).
    * mask ``block4`` sets ``mask_type: block4``; ``unstructured`` sets ``mask_type:
      unstructured`` only where the recipe named another type. With ``global`` it also sets the
      final sparsity to :func:`global_block_target` on ``model`` (equal weight sparsity).

    The text is re-written by PyYAML in a canonical layout (comments are not kept): the same
    input gives the same text.

    Args:
        recipe: The recipe's YAML text.
        model: The model the recipe will prune (vendor targets depend on its layers).
        profile: One of :data:`PROFILES`.
        mask: One of :data:`MASK_TYPES`.

    Returns:
        The rewritten recipe text, readable by ``gmp.load_recipe`` and SparseML's manager.

    Raises:
        ValueError: For an unknown profile or mask (naming the allowed values), a recipe without
            exactly one pruning modifier, or a profile the recipe or model cannot take (see
            :func:`layer_targets`).

    Example:
        >>> text = profile_recipe(recipe, model, "vendor", "block4")  # doctest: +SKIP
        >>> gmp.GMP.from_recipe(text, model, optimizer, steps_per_epoch=len(loader))  # doctest: +SKIP
    """
    _check_choice("profile", profile, PROFILES)
    _check_choice("mask", mask, MASK_TYPES)
    if not isinstance(recipe, str):
        raise ValueError(f"`recipe` must be YAML text; got {type(recipe).__name__}")
    container = yaml.load(recipe, Loader=_Loader)  # a SafeLoader subclass
    modifier = _pruning_modifier(container)
    if profile == "vendor":
        _to_vendor(modifier, model, _evaluated_target(recipe))
    elif profile == "global":
        _to_global(modifier)
    if mask == "block4" or modifier.args.get("mask_type", "unstructured") != "unstructured":
        modifier.args["mask_type"] = mask
    if profile == "global" and mask != "unstructured":  # equal weight sparsity (module doc)
        target = global_block_target(model, _evaluated_target(recipe), mask)
        modifier.args["final_sparsity"] = target
    return yaml.dump(
        container, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )
