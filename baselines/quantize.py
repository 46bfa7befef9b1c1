"""Int8 models through SparseML 1.8: ``QuantizationModifier`` QAT and SparseML's own int8 export.

The same fine-tuning as the torch path (``study.make.quantize.qat_torch``), through SparseML's
machinery: SparseML's ``QuantizationModifier`` (``start_epoch: 0.0``, SparseML's defaults
otherwise: its default scheme, per-tensor symmetric int8 weights and asymmetric int8
activations, Conv-BN-ReLU fusion, no observer or batch-norm freeze) prepares the model, then the
shared loop :func:`study.make.train.train` runs :func:`study.make.quantize.hold_recipe` under SparseML
(``toolchain="sparseml"``: SparseML's ``ConstantPruningModifier`` holds the masks, its
``SetLearningRateModifier`` sets the rate), with the data order, optimizer and learning rate of
the torch path.

Why the quantization modifier is applied before the loop, by a manager of its own
(``ScheduledModifierManager.apply_structure(model, epoch=0.0)``, SparseML's API for modifiers
that change the module structure): with ``start_epoch: 0.0`` SparseML applies it when the
manager is initialized, i.e. before the first step, which is what ``apply_structure`` does too;
but inside the loop's recipe its observer hooks (forward hooks on the new ``QuantWrapper``
modules) would be taken by the loop's finalize check for leftover pruning hooks. The schedule is
the same: QAT from step 0, masks held from step 0, nothing else scheduled by the modifier.

Before the modifier, :func:`keep_unfused_if_reused` moves each ReLU module that the forward
calls more than once (torchvision's ResNet blocks) out of reach of SparseML's fusion rule, which
would otherwise drop ResNet-18's residual ReLUs and break ResNet-50's backward pass; and timm's
``BatchNormAct2d`` becomes ``BatchNorm2d`` followed by its activation
(:func:`study.make.quantize.plain_batchnorm`, the same values): SparseML's Conv-BN fusion takes
it for a BatchNorm2d and replaces it, activation included, with Identity, which left
MobileNetV1's int8 model with none of its 27 ReLU6.

Export (:func:`export_int8_sparseml`): ``ModuleExporter.export_onnx(..., convert_qat=True)``,
as SparseML's image-classification export does: its ONNX-to-DeepSparse transforms turn the QDQ
graph into ``ConvInteger``/``MatMulInteger`` + ``Add``/``Cast``/``Mul`` with uint8 weights
(zero point 128) and int32 biases.
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter
from pathlib import Path

import torch

from study.make.quantize import (
    QatConfig,
    QatResult,
    finetune_holding_zeros,
    plain_batchnorm,
    prunable_zero_masks,
    qat_result,
)

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__ = [
    "QUANTIZATION_RECIPE",
    "export_int8_sparseml",
    "keep_unfused_if_reused",
    "patch_sparseml_qconfig",
    "qat_sparseml",
]

# SparseML's QuantizationModifier from epoch 0 with its defaults (scheme, fusion, no freezing).
QUANTIZATION_RECIPE = """modifiers:
  - !QuantizationModifier
    start_epoch: 0.0
"""


class _QConfig(torch.ao.quantization.QConfig):
    """torch's ``QConfig`` namedtuple with an instance ``__dict__``, so SparseML can tag it."""


def patch_sparseml_qconfig() -> None:
    """Make SparseML 1.8's ``QuantizationModifier`` work on torch >= 2.x's slotted ``QConfig``.

    SparseML 1.8 predates torch's ``QConfig`` with ``__slots__ = ()``: its
    ``QuantizationScheme.get_qconfig`` sets ``qconfig.quantization_scheme = self`` on the
    namedtuple returned by ``quantization_scheme._get_qconfig``, which raises ``AttributeError:
    'QConfig' object has no attribute 'quantization_scheme'``. This wraps ``_get_qconfig`` so it
    returns the same fields in :class:`_QConfig`, a trivial subclass that has a ``__dict__``;
    torch treats it as a ``QConfig`` (``isinstance`` and field access unchanged). Idempotent.

    Example:
        >>> patch_sparseml_qconfig()  # doctest: +SKIP
    """
    from sparseml.pytorch.sparsification.quantization import quantization_scheme

    original = quantization_scheme._get_qconfig
    if getattr(original, "_study_patched", False):
        return

    def _get_qconfig(activation_args, weight_args):
        return _QConfig(*original(activation_args, weight_args))

    _get_qconfig._study_patched = True  # type: ignore[attr-defined]
    quantization_scheme._get_qconfig = _get_qconfig


class _Unfused(torch.nn.Module):
    """Holds an activation module one level down, where SparseML's fusion rule does not look."""

    def __init__(self, act: torch.nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


def keep_unfused_if_reused(model: torch.nn.Module, sample: torch.Tensor) -> list[str]:
    """Keep SparseML from fusing a ReLU module that the forward calls more than once; in place.

    SparseML's default fusion (``fuse_module_conv_bn_relus``) fuses a Conv2d, BatchNorm2d and
    ReLU that follow each other in ``named_modules()`` order, and the fused ReLU becomes an
    ``Identity``. torchvision's ResNet blocks register one ``relu`` and call it at several
    places: a ``BasicBlock`` (ResNet-18) lists ``conv1, bn1, relu``, so the fusion also removes
    the ReLU after the residual add; a ``Bottleneck`` (ResNet-50) lists ``conv3, bn3, relu``,
    so a ReLU lands before the add (in the wrong place) and the in-place add then breaks the
    backward pass ("modified by an inplace operation"). SparseML's own ResNets have one module
    per activation. Here each ReLU module that one forward pass of ``sample`` calls more than
    once is moved one level down (``relu`` -> ``relu.act``, no parameters, so the state dict
    does not change), outside the submodule SparseML fuses within: its Conv2d and BatchNorm2d
    are still fused, and the ReLU runs wherever the model calls it.

    Args:
        model: The fp32 model about to be prepared for QAT.
        sample: One input batch (run once in eval mode, without gradients).

    Returns:
        The names of the ReLU modules moved (empty for models that call each one once).

    Example:
        >>> keep_unfused_if_reused(torchvision.models.resnet18(), torch.zeros(1, 3, 32, 32))  # doctest: +SKIP
        ['layer1.0.relu', 'layer1.1.relu', ...]
    """
    calls: Counter = Counter()
    hooks = [
        module.register_forward_hook(lambda *_, name=name: calls.update([name]))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ReLU)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    reused = [name for name, count in calls.items() if count > 1]
    for name in reused:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _Unfused(getattr(parent, attr)))
    return reused


def qat_sparseml(
    model: torch.nn.Module,
    train_loader,
    val_loader,
    config: QatConfig,
    *,
    progress: bool = False,
) -> QatResult:
    """Quantization-aware fine-tuning with SparseML's modifiers on the shared loop.

    Args:
        model: A trained, pruned fp32 model (plain weights holding zeros); it is not modified.
        train_loader: Training batches (the shared loop re-seeds its shuffle generator).
        val_loader: Validation batches at the training resolution.
        config: Fine-tuning settings (``backend`` is the torch path's and is not used here).
        progress: Show the loop's progress bar.

    Returns:
        A :class:`study.make.quantize.QatResult` whose model is the QAT (fake-quant) module, ready
        for :func:`export_int8_sparseml`; ``val_accuracy`` is that module's accuracy.

    Raises:
        ValueError: If pruning state (``weight_orig``/``weight_mask``) is still attached.
        RuntimeError: If a pruned weight became non-zero.

    Example:
        >>> result = qat_sparseml(pruned, tl, vl, QatConfig())  # doctest: +SKIP
        >>> export_int8_sparseml(result.model, "m-int8-sparseml.onnx", (1, 3, 16, 16))  # doctest: +SKIP
    """
    from sparseml.pytorch.optim import ScheduledModifierManager

    from baselines.sparseml import python_loggers
    from study.make.export import check_no_pruning_state

    check_no_pruning_state(model)
    patch_sparseml_qconfig()
    start = time.perf_counter()
    qat = copy.deepcopy(model).cpu().train()
    masks = prunable_zero_masks(qat)
    plain_batchnorm(qat)  # SparseML's fusion would drop BatchNormAct2d's activation (module doc)
    keep_unfused_if_reused(qat, next(iter(val_loader))[0][:1])
    loggers = python_loggers()  # not SparseML's default sparse_logs/ folder
    manager = ScheduledModifierManager.from_yaml(QUANTIZATION_RECIPE)
    manager.apply_structure(qat, epoch=0.0, loggers=loggers)
    result = finetune_holding_zeros(
        qat, masks, "sparseml", train_loader, val_loader, config, toolchain="sparseml",
        progress=progress,
    )  # fmt: skip
    return qat_result("sparseml", qat, val_loader, result, masks, start, config)


def export_int8_sparseml(
    model: torch.nn.Module, path: str | Path, input_shape: tuple[int, ...], opset: int = 13
) -> Path:
    """Export a SparseML QAT model to a fully quantized ONNX graph (``convert_qat=True``).

    ``ModuleExporter(model, folder).export_onnx(sample, name=..., opset=..., convert_qat=True,
    dynamo=False)``: SparseML's exporter (batch dimension dynamic) followed by its
    ONNX-to-DeepSparse conversion (``ConvInteger``/``MatMulInteger`` with uint8 weights).

    Args:
        model: The QAT module of :func:`qat_sparseml`; it is not modified.
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of the sample batch, e.g. ``(1, 3, 224, 224)``.
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        ValueError: If ``input_shape`` has a non-positive entry.

    Example:
        >>> export_int8_sparseml(result.model, "runs/m-int8-sparseml.onnx", (1, 3, 16, 16))  # doctest: +SKIP
    """
    if not input_shape or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"`input_shape` must be a tuple of positive integers; got {input_shape!r}")
    from sparseml.pytorch.utils import ModuleExporter

    from baselines.sparseml import quiet_sparseml_logs
    from study.onnx.weights import unshare_weights_file

    quiet_sparseml_logs()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros(tuple(int(d) for d in input_shape))
    exporter = ModuleExporter(model, str(path.parent))
    exporter.export_onnx(sample, name=path.name, opset=opset, convert_qat=True, dynamo=False)
    unshare_weights_file(path)  # each weight its own initializer (undo torch's deduplication)
    return path
