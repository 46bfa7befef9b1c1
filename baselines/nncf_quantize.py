"""Int8 by NNCF 3.4 itself (Intel's toolchain): post-training ``nncf.quantize`` and QAT on it.

Post-training (:func:`ptq`): ``nncf.quantize(model, nncf.Dataset(calibration_loader))`` with
NNCF's defaults for a CNN (preset ``PERFORMANCE``: symmetric int8 weights per output channel and
symmetric activations, ``target_device=ANY``, fast bias correction, overflow fix on the first
layer). The result is the model wrapped by NNCF, its quantizers (``SymmetricQuantizer``) inserted
as function hooks; it runs in torch and exports (``baselines.nncf_export``).

QAT (:func:`qat`): NNCF 3.4's documented torch QAT is "quantize, then train the returned model"
(``docs/usage/training_time_compression/quantization_aware_training/Usage.md``): :func:`ptq`,
then the shared loop :func:`study.make.train.train` with the same recipe as the torch and SparseML
int8 arms (:func:`study.make.quantize.hold_recipe`: constant learning rate, ``ConstantPruningModifier``
run by gmp, so pruned weights stay zero); NNCF's quantizer scales are trained with the weights.

BatchNorm: NNCF's torch backend quantizes each Conv weight as it is, with the BatchNorm after it.
OpenVINO folds such a BatchNorm into the quantized convolution when it compiles (its runtime
graph shows u8 convolutions), but in a standard QDQ file ONNX Runtime cannot (it keeps fp32
``Conv`` + ``BatchNormalization``; checked on ResNet-18), and NNCF's recommended OpenVINO flow
(``ov.convert_model`` then ``nncf.quantize``) quantizes weights with BatchNorm already folded.
So by default (``fold_bn=True``, recorded) :func:`fold_batchnorm` folds each eval-mode BatchNorm
into the Conv before it (``torch.nn.utils.fusion.fuse_conv_bn_eval``) before NNCF quantizes;
pruned weights stay zero (each output channel is scaled).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from baselines.nncf_common import import_nncf, nncf_step

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from study.make.quantize import QatConfig, QatResult

__all__ = ["NNCFQuantizeSettings", "fold_batchnorm", "ptq", "qat"]

# Relative tolerance of the fold check: eval outputs before and after folding (fp32 rounding).
_FOLD_RTOL = 1e-4


@dataclass(frozen=True)
class NNCFQuantizeSettings:
    """What NNCF was asked to do, for the manifest (``to_dict()``)."""

    # Installed NNCF version.
    nncf_version: str
    # "ptq" (nncf.quantize) or "qat" (nncf.quantize, then fine-tuning on the shared loop).
    method: str
    # nncf.quantize arguments: preset None is NNCF's default (PERFORMANCE for CNNs).
    preset: str | None
    target_device: str
    subset_size: int
    fast_bias_correction: bool
    # Batch size of the calibration loader (NNCF counts subset_size in batches).
    calibration_batch_size: int | None
    # Whether BatchNorms were folded into the Conv before them, and which.
    fold_bn: bool
    folded_bn: tuple[str, ...]
    # Quantizers NNCF inserted, by class name (e.g. {"SymmetricQuantizer": 24}).
    quantizers: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values."""
        return asdict(self)


def _bn_replacement(bn: nn.Module) -> nn.Module | None:
    """What a folded BatchNorm becomes: Identity, or its activation (timm's BatchNormAct2d)."""
    if type(bn) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return nn.Identity()
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    if isinstance(act, nn.Module) and isinstance(drop, nn.Module):
        return nn.Sequential(drop, act)
    return None


def _conv_bn_pairs(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv, batchnorm)`` module names where the BatchNorm's input is the Conv's output."""
    names = {module: name for name, module in model.named_modules()}
    outputs: dict[int, tuple[str, torch.Tensor]] = {}
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []

    def on_conv(module, args, out) -> None:
        calls[names[module]] = calls.get(names[module], 0) + 1
        outputs[id(out)] = (names[module], out)  # keep `out` alive so its id stays unique

    def on_bn(module, args) -> None:
        calls[names[module]] = calls.get(names[module], 0) + 1
        conv = outputs.get(id(args[0]))
        if conv is not None and conv[1] is args[0]:
            pairs.append((conv[0], names[module]))

    handles = []
    for module in names:
        if isinstance(module, nn.modules.conv._ConvNd) and not isinstance(
            module, nn.modules.conv._ConvTransposeNd
        ):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            handles.append(module.register_forward_pre_hook(on_bn))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1]


def fold_batchnorm(model: nn.Module, example_input: torch.Tensor) -> tuple[str, ...]:
    """Fold each BatchNorm that directly follows a Conv into that Conv (eval mode, in place).

    Pairs are found by running ``example_input`` (a BatchNorm whose input tensor is a Conv's
    output, each called once); the Conv gets ``fuse_conv_bn_eval``'s weights and bias, the
    BatchNorm becomes ``Identity`` (timm's ``BatchNormAct2d``: its ``drop`` and ``act``). Other
    BatchNorms stay. The eval outputs before and after must agree within a relative 1e-4.

    Args:
        model: The model, put in eval mode and modified in place.
        example_input: A sample batch.

    Returns:
        The names of the folded BatchNorm modules.

    Raises:
        RuntimeError: If folding changed the model's output (a Conv output had other users).

    Example:
        >>> fold_batchnorm(model.eval(), torch.zeros(1, 3, 32, 32))  # doctest: +SKIP
        ('bn1', 'layer1.0.bn1', ...)
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    with torch.no_grad():
        before = model(example_input)  # [batch, classes]
    folded = []
    for conv_name, bn_name in _conv_bn_pairs(model, example_input):
        bn = model.get_submodule(bn_name)
        replacement = _bn_replacement(bn)
        if replacement is None:
            continue
        fused = fuse_conv_bn_eval(model.get_submodule(conv_name), bn)
        for name, module in ((conv_name, fused), (bn_name, replacement)):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, module)
        folded.append(bn_name)
    with torch.no_grad():
        after = model(example_input)
    scale = float(before.abs().max()) or 1.0
    if float((after - before).abs().max()) > _FOLD_RTOL * scale:
        raise RuntimeError(
            f"folding BatchNorm into Conv changed the output by {float((after - before).abs().max()):.3g} "
            f"(max |output| {scale:.3g}): a Conv output feeding a folded BatchNorm has another user"
        )
    return tuple(folded)


def _images(batch: Any) -> torch.Tensor:
    """The model input of a ``(images, labels)`` batch (NNCF's ``transform_func``)."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _quantizers(qmodel: nn.Module) -> dict[str, int]:
    from nncf.torch.quantization.layers import BaseQuantizer

    counts: dict[str, int] = {}
    for module in qmodel.modules():
        if isinstance(module, BaseQuantizer):
            counts[type(module).__name__] = counts.get(type(module).__name__, 0) + 1
    return counts


def ptq(
    model: nn.Module,
    calibration_loader: DataLoader,
    *,
    subset_size: int = 300,
    fold_bn: bool = True,
    method: str = "ptq",
) -> tuple[nn.Module, NNCFQuantizeSettings]:
    """Post-training int8 by ``nncf.quantize`` with NNCF's defaults; ``model`` is not modified.

    Args:
        model: A pruned fp32 model with plain weights (no pruning state).
        calibration_loader: Yields ``(images, labels)`` (or images); NNCF reads ``subset_size``
            batches of it.
        subset_size: NNCF's ``subset_size`` (its default, 300).
        fold_bn: Fold BatchNorms into Convs first (:func:`fold_batchnorm`; see the module doc).
        method: Recorded in the settings (:func:`qat` passes "qat").

    Returns:
        ``(quantized model, settings)``: the NNCF-wrapped model with fake quantizers, in eval mode.

    Raises:
        ValueError: If ``subset_size`` is not a positive integer or pruning state is attached.
        NNCFError: If NNCF is missing or ``nncf.quantize`` fails.

    Example:
        >>> qmodel, settings = ptq(pruned, calibration_loader)  # doctest: +SKIP
    """
    from study.make.export import check_no_pruning_state

    if not isinstance(subset_size, int) or isinstance(subset_size, bool) or subset_size < 1:
        raise ValueError(f"`subset_size` must be a positive integer; got {subset_size!r}")
    check_no_pruning_state(model)
    nncf = import_nncf()
    fp32 = copy.deepcopy(model).cpu().eval()
    example = _images(next(iter(calibration_loader)))[:1]
    folded = fold_batchnorm(fp32, example) if fold_bn else ()
    with nncf_step("nncf.quantize"):
        qmodel = nncf.quantize(
            fp32, nncf.Dataset(calibration_loader, _images), subset_size=subset_size
        )
    settings = NNCFQuantizeSettings(
        nncf_version=str(nncf.__version__),
        method=method,
        preset=None,
        target_device="ANY",
        subset_size=subset_size,
        fast_bias_correction=True,
        calibration_batch_size=getattr(calibration_loader, "batch_size", None),
        fold_bn=fold_bn,
        folded_bn=folded,
        quantizers=_quantizers(qmodel),
    )
    return qmodel.eval(), settings


def qat(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: QatConfig,
    calibration_loader: DataLoader,
    *,
    subset_size: int = 300,
    fold_bn: bool = True,
    progress: bool = False,
) -> tuple[QatResult, NNCFQuantizeSettings]:
    """NNCF QAT: :func:`ptq`, then fine-tuning on the shared loop with pruned weights held at zero.

    Args:
        model: A trained, pruned fp32 model (plain weights holding zeros); it is not modified.
        train_loader: Training batches (the shared loop re-seeds its shuffle generator).
        val_loader: Validation batches at the training resolution.
        config: The same fine-tuning settings as the torch and SparseML int8 arms.
        calibration_loader: Batches NNCF initialises its quantizers from.
        subset_size: NNCF's ``subset_size``.
        fold_bn: Fold BatchNorms into Convs before quantizing.
        progress: Show the loop's progress bar.

    Returns:
        ``(QatResult, settings)``: the result's model is the fine-tuned NNCF fake-quant model
        (toolchain ``"nncf"``), which :mod:`baselines.nncf_export` writes.

    Raises:
        NNCFError: If NNCF is missing or fails.
        RuntimeError: If a pruned weight became non-zero.

    Example:
        >>> result, settings = qat(pruned, tl, vl, QatConfig(epochs=2), tl)  # doctest: +SKIP
    """
    from study.make.quantize import finetune_holding_zeros, prunable_zero_masks, qat_result

    start = time.perf_counter()
    masks = prunable_zero_masks(model)
    qmodel, settings = ptq(
        model, calibration_loader, subset_size=subset_size, fold_bn=fold_bn, method="qat"
    )
    result = finetune_holding_zeros(
        qmodel, masks, "nncf", train_loader, val_loader, config, progress=progress
    )
    qmodel.eval()
    return qat_result("nncf", qmodel, val_loader, result, masks, start, config), settings
