"""Structure of the zeros a pruned model holds: how its masks are laid out, not only how many.

Two models at the same sparsity can run at different speeds on a sparse engine depending on where
the zeros are: spread evenly over output channels, concentrated in some filters, or in whole 1x4
blocks. :func:`mask_diagnostics` measures that per prunable weight (the ``.weight`` of every
Conv and Linear layer) and as numel-weighted means over the model, as JSON-ready numbers.

Per layer, for a weight ``W`` of shape ``[out, in, *kernel]`` (``in`` per group for grouped
convolutions; depthwise convolutions have ``in == 1``):
    * ``sparsity``: fraction of zero entries.
    * ``cv_nonzeros_per_out_channel``: coefficient of variation (population std / mean) of the
      number of non-zeros in each output channel ``W[o]``; None (NaN) when every channel is
      empty. 0 when every channel keeps as many weights, as uniform random pruning nearly does.
    * ``zero_filters``: fraction of output channels whose weights are all zero.
    * ``zero_input_channels``: fraction of input-channel indices ``j`` with ``W[:, j]`` all zero.
    * ``zero_blocks_1x4``: fraction of 1x4 blocks along the input channel that are all zero,
      grouped exactly as SparseML's ``block4`` masks group them (:func:`gmp.masks.group_scores`:
      the input channel moved last, for each output channel and kernel position). When ``in``
      is not a multiple of 4, the remaining ``in % 4`` channels form one shorter block (SparseML
      pads it with its own mean), counted as one block, zero when its entries are.

Example:
    >>> from torch import nn
    >>> d = mask_diagnostics(nn.Sequential(nn.Linear(8, 4)))
    >>> d["model"]["layers"], d["layers"][0]["zero_filters"]
    (1, 0.0)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["layer_diagnostics", "mask_diagnostics"]

# The per-layer quantities averaged over the model (numel-weighted).
_QUANTITIES = (
    "sparsity",
    "cv_nonzeros_per_out_channel",
    "zero_filters",
    "zero_input_channels",
    "zero_blocks_1x4",
)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@torch.no_grad()
def layer_diagnostics(weight: Tensor) -> dict[str, float]:
    """The mask-structure quantities of one weight (see the module docstring).

    Args:
        weight: A weight ``[out, in, *kernel]`` (2-D for Linear, 3-D to 5-D for convolutions).

    Returns:
        ``{"sparsity", "cv_nonzeros_per_out_channel", "zero_filters", "zero_input_channels",
        "zero_blocks_1x4"}`` as floats (the CV may be NaN).

    Raises:
        ValueError: If ``weight`` has fewer than 2 dimensions or no entries.

    Example:
        >>> layer_diagnostics(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))["zero_filters"]
        0.5
    """
    from gmp.masks import group_scores

    if weight.dim() < 2 or weight.numel() == 0:
        raise ValueError(
            f"`weight` must have >= 2 dims and entries; got shape {tuple(weight.shape)}"
        )
    nonzero = weight.detach() != 0  # [out, in, *kernel] bool
    per_out = nonzero.flatten(1).sum(1).double()  # [out]
    mean = per_out.mean()
    cv = float(per_out.std(unbiased=False) / mean) if mean > 0 else math.nan
    per_in = nonzero.transpose(0, 1).flatten(1).any(1)  # [in]
    blocks = group_scores(nonzero.float(), ("block4",))  # [blocks, 1], mean of each block
    return {
        "sparsity": 1.0 - float(nonzero.sum()) / nonzero.numel(),
        "cv_nonzeros_per_out_channel": cv,
        "zero_filters": float((per_out == 0).double().mean()),
        "zero_input_channels": float((~per_in).double().mean()),
        "zero_blocks_1x4": float((blocks == 0).double().mean()),
    }


def mask_diagnostics(model: nn.Module) -> dict[str, Any]:
    """Mask-structure diagnostics of every Conv/Linear weight of a model, and their means.

    Args:
        model: The model (pruning hooks may be attached: the effective ``weight`` is read).

    Returns:
        ``{"layers": [...], "model": {...}}``. Each layer: ``name``, ``shape``, ``numel`` and the
        quantities of :func:`layer_diagnostics`. ``model``: ``layers`` (their count), ``numel``,
        and the numel-weighted mean of each quantity over the layers (the CV over the layers
        where it is defined, i.e. that keep some weight). NaN is written as None, so the dict is
        JSON-serialisable as is.

    Raises:
        ValueError: If the model has no Conv or Linear layer.

    Example:
        >>> mask_diagnostics(model)["model"]["cv_nonzeros_per_out_channel"]  # doctest: +SKIP
        0.41
    """
    layers = []
    for module_name, module in model.named_modules():
        if not isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
            continue
        name = f"{module_name}.weight" if module_name else "weight"
        weight = module.weight  # the effective weight, also under torch.nn.utils.prune
        layers.append(
            {
                "name": name,
                "shape": list(weight.shape),
                "numel": weight.numel(),
                **layer_diagnostics(weight),
            }
        )
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv or Linear layer to diagnose")
    summary: dict[str, Any] = {
        "layers": len(layers),
        "numel": sum(layer["numel"] for layer in layers),
    }
    for key in _QUANTITIES:
        defined = [layer for layer in layers if not math.isnan(layer[key])]
        weights = sum(layer["numel"] for layer in defined)
        mean = (
            sum(layer[key] * layer["numel"] for layer in defined) / weights if defined else math.nan
        )
        summary[key] = _json_float(mean)
    for layer in layers:
        for key in _QUANTITIES:
            layer[key] = _json_float(layer[key])
    return {"layers": layers, "model": summary}
