"""Int8 models from a pruned fp32 model by pure PyTorch (``torch.ao`` FX QAT), and int8 ONNX facts.

The torch path: ``prepare_qat_fx`` with ``get_default_qat_qconfig_mapping(config.backend)``
("x86": per-channel symmetric int8 weights, so a zero weight is int8 0; uint8 activations with
``reduce_range``), fine-tuned on the shared loop :func:`study.make.train.train` with the recipe of
:func:`hold_recipe` (``ConstantPruningModifier`` over ``__ALL_PRUNABLE__`` run by ``gmp``: the
pruned weights stay zero after every optimizer step), then ``convert_fx``. The SparseML path
(``baselines.quantize.qat_sparseml``) runs the same recipe under SparseML with its
``QuantizationModifier``, so both see the same data in the same order with the same optimizer
and learning rate. Neither freezes observers or batch-norm statistics (SparseML's defaults).

:func:`export_int8_torch` writes the torch int8 model with ``torch.onnx.export`` and applies
:func:`study.onnx.cleanup.clean_qdq`, so the file is the standard QDQ pattern.

ONNX facts about any int8 file: :func:`is_quantized`, :func:`op_counts`,
:func:`int8_weight_zeros` (zeros of int8 weights: values equal to the tensor's zero point) and
:func:`check_int8_zeros` (every zero of the fp32 model is a zero of an int8 weight).
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from study.onnx.int8 import (
    _centered_int8_weights,
    _load,
    int8_weight_zeros,
    is_quantized,
    op_counts,
)

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from study.make.export import ZeroCheck
    from study.make.train import TrainResult

__all__ = [
    "FX_LEAF_MODULES",
    "QatConfig",
    "QatResult",
    "check_int8_zeros",
    "check_masks_held",
    "export_int8_torch",
    "finetune_holding_zeros",
    "fx_leaf_modules",
    "hold_recipe",
    "int8_onnx_accuracy",
    "int8_weight_zeros",
    "is_quantized",
    "op_counts",
    "plain_batchnorm",
    "prunable_zero_masks",
    "qat_result",
    "qat_torch",
]

# Module classes (``module.qualname``) whose forward FX symbolic tracing cannot follow, or must
# not (it would freeze what the forward reads at call time) -> why. ``qat_torch`` keeps them as
# leaves of the FX graph (``non_traceable_module_classes``): they are not quantized and run in fp32
# inside the int8 model (their weights, if any, stay fp32 in the file), and their forward runs
# at every call, so it sees the module's current ``training`` flag.
FX_LEAF_MODULES: dict[str, str] = {
    "timm.models.mobilevit.MobileVitBlock": (
        "timm's MobileViT block branches on its input's height and width (padding to whole "
        "patches), which FX symbolic tracing cannot follow: its convolutions and transformer "
        "stay fp32"
    ),
    "torchvision.ops.stochastic_depth.StochasticDepth": (
        "torchvision's stochastic depth (EfficientNet) passes self.training to a function FX "
        "records as a call: traced in train mode, the int8 model would drop residual branches "
        "at random for ever (RandomUniformLike in the ONNX file); as a leaf it drops them while "
        "fine-tuning and is the identity in eval (no weights, nothing left fp32)"
    ),
}


def fx_leaf_modules(model: torch.nn.Module) -> dict[str, str]:
    """The :data:`FX_LEAF_MODULES` classes present in ``model``: qualified name -> why.

    Example:
        >>> fx_leaf_modules(build_model("mobilevit_xs"))  # doctest: +SKIP
        {'timm.models.mobilevit.MobileVitBlock': "timm's MobileViT block branches ..."}
    """
    names = {f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()}
    return {name: why for name, why in FX_LEAF_MODULES.items() if name in names}


def plain_batchnorm(model: torch.nn.Module) -> list[str]:
    """Replace every timm ``BatchNormAct2d`` of ``model`` by standard modules, in place.

    timm's ``BatchNormAct2d`` (``timm.layers.norm_act``: MobileNetV1, MobileViT) subclasses
    ``nn.BatchNorm2d`` with its own forward, so FX symbolic tracing follows it instead of keeping
    it as a leaf, and the ``self.training`` it reads is frozen at trace time: a model traced in
    train mode (``prepare_qat_fx``) calls ``F.batch_norm(..., training=True)`` for ever, also
    after ``convert_fx`` (each image normalised by its batch's statistics; one 1x1 image fails),
    and Conv + BatchNorm + activation are not fused. Each one becomes
    ``nn.Sequential(nn.BatchNorm2d, drop, act)`` with the same parameters and running
    statistics, leaving out ``drop`` and ``act`` when they are ``nn.Identity``; it computes the
    same values. FX then sees ``Conv2d -> BatchNorm2d -> act`` and fuses what torch.ao can: the
    BatchNorm into its Conv (``ConvBn2d``, ``ConvBnReLU2d`` with ReLU; ReLU6 and SiLU stay
    separate quantized ops). Used by :func:`qat_torch` only (SparseML and NNCF run the model eagerly, where
    ``self.training`` is read at every call).

    Args:
        model: The model to change (in place).

    Returns:
        The qualified names of the replaced modules, in module order.

    Example:
        >>> plain_batchnorm(build_model("mobilenetv1"))[:2]  # doctest: +SKIP
        ['bn1', 'blocks.0.0.bn1']
    """
    from timm.layers.norm_act import BatchNormAct2d
    from torch import nn

    names = [name for name, m in model.named_modules() if isinstance(m, BatchNormAct2d)]
    for name in names:
        old = model.get_submodule(name)
        own = {k: v for k, v in old.state_dict().items() if "." not in k}  # not act's or drop's
        bn = nn.BatchNorm2d(
            old.num_features,
            eps=old.eps,
            momentum=old.momentum,
            affine=old.affine,
            track_running_stats=old.track_running_stats,
        )
        if own:  # weight, bias, running_mean, running_var, num_batches_tracked (those present)
            bn.to(next(iter(own.values())).device)
            bn.load_state_dict(own)
        bn.train(old.training)
        parts = [m for m in (old.drop, old.act) if not isinstance(m, nn.Identity)]
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, nn.Sequential(bn, *parts) if parts else bn)
    return names


def _stable_conv_bn(prepared: torch.nn.Module) -> list[str]:
    """Switch fused QAT Conv+BatchNorm modules with a zero BatchNorm weight to torch's stable path.

    In place; returns the names of the modules switched.

    ``torch.ao``'s fused ``ConvBn*`` QAT modules divide the convolution's output by
    ``bn.weight / running_std`` (``_forward_approximate``): a BatchNorm weight of exactly 0 (timm
    zero-initialises the last BatchNorm of MobileViT's bottlenecks) gives 0/0 = NaN, and one step
    makes every weight NaN. Their ``_forward_slow`` (pytorch/pytorch#85744, after Krishnamoorthi
    2018, arXiv 1806.08342) handles it, at the cost of a second convolution while training; it is
    used only where a zero weight is present, so other models train as before.
    """
    from torch.ao.nn.intrinsic.qat.modules.conv_fused import _ConvBnNd

    names = [
        name
        for name, m in prepared.named_modules()
        if isinstance(m, _ConvBnNd) and m.bn.weight is not None and bool((m.bn.weight == 0).any())
    ]
    for name in names:
        prepared.get_submodule(name)._enable_slow_path_for_better_numerical_stability = True
    return names


@dataclass(frozen=True)
class QatConfig:
    """Quantization-aware fine-tuning of a pruned fp32 model (both toolchains read the same one)."""

    # Fine-tuning length in epochs (whole passes over the training loader).
    epochs: int = 1
    # Learning rate, constant over the run (the recipe's SetLearningRateModifier sets it at 0).
    lr: float = 0.01
    # SGD momentum.
    momentum: float = 0.9
    # L2 weight decay.
    weight_decay: float = 0.0
    # Seed of torch's RNG and of the training loader's shuffle generator (study.make.train.train).
    seed: int = 0
    # Batch size the caller's loaders were built with (recorded only).
    batch_size: int = 64
    # torch.ao backend of the torch path's qconfig mapping ("x86", "fbgemm" or "qnnpack").
    backend: str = "x86"
    # Log per-layer zero counts every this many steps (1: every step, the masks are checked).
    log_zeros_every: int = 1
    # Random translation of training images by up to this many pixels (study.make.train; 0: none).
    augment_shift: int = 0

    def __post_init__(self) -> None:
        _check_qat_config(self)

    def train_config(self):  # -> study.make.train.TrainConfig
        """The shared loop's config for this fine-tuning (SGD, constant ``lr``)."""
        from study.make.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            seed=self.seed,
            optimizer="sgd",
            log_zeros_every=self.log_zeros_every,
            augment_shift=self.augment_shift,
        )


@dataclass(frozen=True)
class QatResult:
    """The outcome of one quantization-aware fine-tuning (torch or SparseML)."""

    # "torch" or "sparseml".
    toolchain: str
    # torch: the converted int8 module (convert_fx). sparseml: the QAT (fake-quant) module,
    # which SparseML's exporter turns into the int8 graph.
    model: Any
    # Top-1 validation accuracy of ``model`` (study.make.train.evaluate, training resolution).
    val_accuracy: float
    # Top-1 validation accuracy of the fake-quant model at the end of the last epoch.
    qat_accuracy: float
    # Wall-clock seconds: preparation, fine-tuning, conversion and the final evaluation.
    seconds: float
    # Zeros per prunable weight of the fp32 model, held through every step.
    zeros: dict[str, int]
    # The shared loop's record (per-step loss, lr and zeros; per-epoch accuracy).
    train: TrainResult
    # The configuration used.
    config: QatConfig


def _check_qat_config(config: QatConfig) -> None:
    if not isinstance(config.epochs, int) or isinstance(config.epochs, bool) or config.epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer; got {config.epochs!r}")
    if not (isinstance(config.lr, (int, float)) and config.lr > 0):
        raise ValueError(f"`lr` must be a positive number; got {config.lr!r}")
    if config.backend not in ("x86", "fbgemm", "qnnpack"):
        raise ValueError(f"`backend` must be 'x86', 'fbgemm' or 'qnnpack'; got {config.backend!r}")
    if not isinstance(config.log_zeros_every, int) or config.log_zeros_every < 0:
        raise ValueError(
            f"`log_zeros_every` must be an integer >= 0; got {config.log_zeros_every!r}"
        )


def hold_recipe(config: QatConfig) -> str:
    """The recipe both paths fine-tune with: hold the masks, constant learning rate.

    ``EpochRangeModifier`` (0 to ``config.epochs``), ``ConstantPruningModifier`` over
    ``__ALL_PRUNABLE__`` (the zeros of every Conv/Linear weight stay zero after every step),
    ``SetLearningRateModifier`` at epoch 0 to ``config.lr``. Block style, which both SparseML's
    and gmp's recipe readers accept.

    Args:
        config: The fine-tuning configuration.

    Returns:
        The recipe YAML text.

    Example:
        >>> "ConstantPruningModifier" in hold_recipe(QatConfig(epochs=2))
        True
    """
    return (
        "modifiers:\n"
        "  - !EpochRangeModifier\n"
        "    start_epoch: 0.0\n"
        f"    end_epoch: {float(config.epochs)}\n"
        "  - !ConstantPruningModifier\n"
        "    start_epoch: 0.0\n"
        "    params: __ALL_PRUNABLE__\n"
        "  - !SetLearningRateModifier\n"
        "    start_epoch: 0.0\n"
        f"    learning_rate: {float(config.lr)!r}\n"
    )


def prunable_zero_masks(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(name, weight == 0)`` of every prunable weight (``__ALL_PRUNABLE__``), in module order.

    QAT renames layers (SparseML wraps them: ``0.weight`` becomes ``0.module.weight``) but keeps
    their order and shapes, so masks are compared by position.

    Example:
        >>> prunable_zero_masks(torch.nn.Linear(2, 2))[0][0]
        'weight'
    """
    from gmp.params import select_params

    return [
        (name, (getattr(module, attr) == 0).detach().clone())
        for name, module, attr in select_params(model, "__ALL_PRUNABLE__")
    ]


def check_masks_held(
    before: list[tuple[str, torch.Tensor]], model: torch.nn.Module, where: str
) -> None:
    """Raise unless every zero of ``before`` (in module order) is a zero of ``model``'s weights.

    Args:
        before: ``(name, zero mask)`` of the fp32 model's prunable weights, in module order.
        model: The fine-tuned model (its prunable weights in the same order and shapes).
        where: The toolchain, for the message.

    Raises:
        RuntimeError: If the prunable weights differ in number or shape, or a zero was lost.
    """
    after = prunable_zero_masks(model)
    if [m.shape for _, m in before] != [m.shape for _, m in after]:
        raise RuntimeError(
            f"{where}: the fine-tuned model's prunable weights {[n for n, _ in after]} do not "
            f"match the fp32 model's {[n for n, _ in before]}"
        )
    lost = {
        name: int((zero & ~now).sum())
        for (name, zero), (_, now) in zip(before, after)
        if bool((zero & ~now).any())
    }
    if lost:
        raise RuntimeError(f"{where}: pruned weights became non-zero during QAT: {lost}")


def finetune_holding_zeros(
    qmodel: torch.nn.Module,
    masks: list[tuple[str, torch.Tensor]],
    where: str,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: QatConfig,
    *,
    toolchain: str = "gmp",
    progress: bool = False,
) -> TrainResult:
    """The QAT fine-tuning every quantizer shares: the shared loop under :func:`hold_recipe` (the
    fp32 zeros held by a constant-sparsity modifier), then :func:`check_masks_held` against
    ``masks`` (taken before quantization). ``toolchain`` is the loop's (``"sparseml"`` when
    SparseML's QuantizationModifier is attached, else ``"gmp"``); ``where`` names the quantizer in
    errors."""
    from study.make.train import train

    result = train(
        qmodel,
        hold_recipe(config),
        train_loader,
        val_loader,
        toolchain=toolchain,
        config=config.train_config(),
        progress=progress,
    )
    check_masks_held(masks, qmodel, where)
    return result


def qat_torch(
    model: torch.nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: QatConfig,
    *,
    example_input: torch.Tensor,
    progress: bool = False,
) -> QatResult:
    """Quantization-aware fine-tuning with ``torch.ao`` FX, pruned weights held at zero; int8 out.

    Args:
        model: A trained, pruned fp32 model (plain weights holding zeros); it is not modified.
        train_loader: Training batches (the shared loop re-seeds its shuffle generator).
        val_loader: Validation batches at the training resolution.
        config: Fine-tuning settings.
        example_input: A sample batch for FX tracing, e.g. ``torch.zeros(1, 3, 16, 16)``.
        progress: Show the loop's progress bar.

    timm's ``BatchNormAct2d`` modules are first replaced by standard ones (:func:`plain_batchnorm`),
    so FX folds them into their convolutions instead of freezing them in training mode. Modules of
    the :data:`FX_LEAF_MODULES` classes (MobileViT's blocks, EfficientNet's stochastic depth) are
    kept as FX leaves: not quantized, fp32 in the int8 model.

    Returns:
        A :class:`QatResult` whose model is the converted int8 module.

    Raises:
        ValueError: If pruning state (``weight_orig``/``weight_mask``) is still attached.
        RuntimeError: If a pruned weight became non-zero.

    Example:
        >>> result = qat_torch(pruned, tl, vl, QatConfig(), example_input=torch.zeros(1, 3, 16, 16))  # doctest: +SKIP
        >>> result.val_accuracy  # doctest: +SKIP
        0.93
    """
    import torch
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    from study.make.export import check_no_pruning_state

    check_no_pruning_state(model)
    start = time.perf_counter()
    fp32 = copy.deepcopy(model).cpu().train()
    masks = prunable_zero_masks(fp32)
    plain_batchnorm(fp32)  # FX would freeze timm's BatchNormAct2d in training mode
    with warnings.catch_warnings():
        # torch 2.15 warns that FX quantization is deprecated in favour of torchao (not installed).
        warnings.filterwarnings("ignore", message=r"(?s).*torchao", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*torchao", category=UserWarning)
        mapping = get_default_qat_qconfig_mapping(config.backend)
        leaves = {
            name: type(m)
            for name, m in fp32.named_modules()
            if f"{type(m).__module__}.{type(m).__qualname__}" in fx_leaf_modules(fp32)
        }
        for name in leaves:  # no qconfig: its layers are not swapped for QAT ones either
            mapping.set_module_name(name, None)
        classes = list(dict.fromkeys(leaves.values()))
        custom = PrepareCustomConfig().set_non_traceable_module_classes(classes)
        prepared = prepare_qat_fx(
            fp32, mapping, (example_input.cpu(),), prepare_custom_config=custom
        )
        _stable_conv_bn(prepared)  # BatchNorm weights at 0 would make the fused modules NaN
        result = finetune_holding_zeros(
            prepared, masks, "torch", train_loader, val_loader, config, progress=progress
        )
        prepared.eval()
        with torch.no_grad():
            qmodel = convert_fx(prepared)
    return qat_result("torch", qmodel, val_loader, result, masks, start, config)


def qat_result(toolchain, model, val_loader, result, masks, start: float, config) -> QatResult:
    """The :class:`QatResult` of a fine-tuning that began at ``start`` (``time.perf_counter()``).

    ``model`` is evaluated on ``val_loader`` (``val_accuracy``); ``result`` is the loop's
    TrainResult (its last epoch gives ``qat_accuracy``); ``masks`` the held zero masks.
    """
    from study.make.train import evaluate

    return QatResult(
        toolchain=toolchain,
        model=model,
        val_accuracy=evaluate(model, val_loader),
        qat_accuracy=result.epochs[-1].val_accuracy,
        seconds=time.perf_counter() - start,
        zeros={name: int(m.sum()) for name, m in masks},
        train=result,
        config=config,
    )


def export_int8_torch(
    qmodel: torch.nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...],
    opset: int = 13,
    *,
    dynamic_batch: bool = False,
) -> Path:
    """Export a ``convert_fx`` int8 module to ONNX and clean it into the standard QDQ form.

    ``torch.onnx.export(..., dynamo=False)`` (the prepared fake-quant model does not export;
    the converted one does), then :func:`study.onnx.cleanup.clean_qdq` (exact rewrites only),
    then ``onnx.checker``. Input ``"input"``, output ``"output"``.

    Args:
        qmodel: The int8 module of :func:`qat_torch`.
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of the sample batch, e.g. ``(1, 3, 224, 224)``.
        opset: ONNX opset (13 or later).
        dynamic_batch: Make the batch dimension dynamic (as SparseML's exporter does).

    Returns:
        The path written.

    Raises:
        ValueError: If ``input_shape`` has a non-positive entry or ``opset`` is below 13.

    Example:
        >>> export_int8_torch(result.model, "runs/m-int8.onnx", (1, 3, 16, 16))  # doctest: +SKIP
    """
    import onnx
    import torch

    from study.onnx.cleanup import clean_qdq
    from study.onnx.weights import unshare_weights_file

    if not input_shape or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"`input_shape` must be a tuple of positive integers; got {input_shape!r}")
    if not isinstance(opset, int) or opset < 13:
        raise ValueError(f"`opset` must be an integer >= 13; got {opset!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros(tuple(int(d) for d in input_shape))
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    raw = path.with_name(path.stem + ".raw.onnx")
    qmodel.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # per-op "quantized op" export notes
            torch.onnx.export(
                qmodel,
                (sample,),
                str(raw),
                opset_version=opset,
                do_constant_folding=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=axes,
                dynamo=False,
            )
        cleaned = clean_qdq(onnx.load(str(raw))).model
    finally:
        raw.unlink(missing_ok=True)
    onnx.save(cleaned, str(path))
    unshare_weights_file(path)  # layers left fp32 (FX_LEAF_MODULES) can be deduplicated too
    return path


def check_int8_zeros(model: torch.nn.Module, onnx_path: str | Path) -> ZeroCheck:
    """Check that every zero of each prunable fp32 weight is a zero of a weight of the int8 file.

    Each prunable weight of ``model`` (Conv, Linear, Embedding; module order) is matched to an
    unused int8 weight initializer of the same shape, or transposed for 2-D weights (a Linear
    exported as ``MatMulInteger`` is stored ``[in, out]``), whose zeros include all the fp32
    zeros (:func:`study.make.export.zero_holder`, the matcher of fp32 files). Rounding can add zeros (a small weight quantized to the zero point), never remove
    one from a faithful quantization. A weight the quantizer left in fp32 (a module it does not
    quantize, e.g. MobileViT's blocks under torch.ao, :data:`FX_LEAF_MODULES`) is matched the same
    way to an unused fp32 initializer: its zeros are kept, and it is listed in ``fp32``.

    Args:
        model: The pruned fp32 model the int8 file was made from.
        onnx_path: The int8 ONNX file.

    Returns:
        A :class:`study.make.export.ZeroCheck`: ``torch_zeros`` from the fp32 model, ``onnx_zeros``
        of the matched weights, ``fp32`` the weights matched in fp32, ``ok`` False with a line per
        weight that no initializer holds with its zeros.

    Example:
        >>> check_int8_zeros(pruned, "model-int8.onnx").ok  # doctest: +SKIP
        True
    """
    from onnx import numpy_helper

    from study.make.export import ZeroCheck, zero_holder

    weights = _centered_int8_weights(onnx_path)
    floats = {
        init.name: w
        for init in _load(onnx_path).graph.initializer
        if np.issubdtype((w := numpy_helper.to_array(init)).dtype, np.floating) and w.ndim >= 2
    }
    torch_zeros: dict[str, int] = {}
    onnx_zeros: dict[str, int] = {}
    matches: dict[str, str] = {}
    mismatches: list[str] = []
    fp32: list[str] = []
    for name, zero in prunable_zero_masks(model):
        mask = zero.cpu().numpy()
        torch_zeros[name] = int(mask.sum())
        used = set(matches.values())
        found = zero_holder(mask, weights, used)
        if found is None and (found := zero_holder(mask, floats, used)) is not None:
            fp32.append(name)
        if found is None:
            mismatches.append(
                f"{name}: no int8 or fp32 weight of shape {tuple(mask.shape)} keeps its "
                f"{int(mask.sum())} zeros"
            )
            continue
        matches[name] = found
        held = weights.get(found, floats.get(found))
        onnx_zeros[name] = int(np.count_nonzero(held == 0))
    return ZeroCheck(
        not mismatches, torch_zeros, onnx_zeros, matches, tuple(mismatches), tuple(fp32)
    )


def int8_onnx_accuracy(onnx_path: str | Path, loader: DataLoader) -> float:
    """Top-1 accuracy of an ONNX file under ONNX Runtime (CPU) on ``loader``, one item per call.

    One item per call, so the file's batch dimension may be static (batch 1) or dynamic.

    Args:
        onnx_path: The (int8 or fp32) classifier, one image input, logits output.
        loader: Yields ``(images, labels)``.

    Returns:
        The fraction of correctly classified samples, in [0, 1].

    Example:
        >>> int8_onnx_accuracy("model-int8.onnx", val_loader)  # doctest: +SKIP
        0.92
    """
    from study.engines.onnxruntime import ort_session

    session = ort_session(str(onnx_path), 1)
    name = session.get_inputs()[0].name
    correct = total = 0
    for images, labels in loader:
        for image, label in zip(images.numpy(), labels.numpy()):
            (logits,) = session.run(None, {name: image[None].astype(np.float32)})
            correct += int(np.argmax(logits[0]) == label)
            total += 1
    return correct / total if total else float("nan")
