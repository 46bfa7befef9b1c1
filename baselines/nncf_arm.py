"""The study's Intel arm: NNCF pruning and int8 on the study's models, and NNCF's int8 files.

Glue between :mod:`study.variants` and ``baselines.nncf_*`` (which hold everything NNCF does):

- :func:`nncf_ready` / :func:`restore`: NNCF 3.4 cannot wrap a top-level ``nn.Sequential``
  (``nncf.prune`` and ``nncf.quantize`` add a hook-storage child, which ``Sequential.forward``
  would call). The registry's ``small_cnn`` is one, so for the NNCF calls its class becomes
  :class:`NNCFSequential`, whose forward skips NNCF's child; parameter names do not change, so
  checkpoints, layer names and diagnostics stay those of the other arms.
- :func:`quantize`: NNCF QAT (:func:`baselines.nncf_quantize.qat`) with the study's QAT settings,
  or NNCF's post-training ``nncf.quantize`` alone (:func:`baselines.nncf_quantize.ptq`), both
  calibrated on the training loader.
- :func:`export_int8`: NNCF's own ONNX (OpenVINO ``FakeQuantize``) and the QDQ file the other
  engines measure; returns which engine measures which file.

Any NNCF failure (or NNCF missing) raises :class:`baselines.nncf_common.NNCFError` with NNCF's own
message; the pipeline records the Intel variant as failed and goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["NNCFSequential", "QDQ_ENGINES", "export_int8", "nncf_ready", "quantize", "restore"]

# Engines that cannot run NNCF's FakeQuantize ONNX and measure its QDQ file instead.
QDQ_ENGINES = ("onnxruntime", "deepsparse", "deepsparse-cli")
_NNCF_CHILD = "__nncf"  # NNCF's hook storage attribute starts with this


class NNCFSequential(nn.Sequential):
    """An ``nn.Sequential`` whose forward skips the child modules NNCF adds (its hook storage)."""

    def forward(self, x):  # noqa: D102 (Sequential's)
        for name, module in self._modules.items():
            if not name.startswith(_NNCF_CHILD):
                x = module(x)
        return x


def nncf_ready(model: nn.Module) -> nn.Module:
    """``model``, with a plain ``nn.Sequential`` made an :class:`NNCFSequential` (in place)."""
    if type(model) is nn.Sequential:
        model.__class__ = NNCFSequential
    return model


def restore(model: nn.Module) -> nn.Module:
    """Undo :func:`nncf_ready` (in place): an :class:`NNCFSequential` is a plain Sequential again."""
    if type(model) is NNCFSequential:
        model.__class__ = nn.Sequential
    return model


def quantize(
    fp32: nn.Module, train_loader, val_loader, qat, *, method: str = "qat", progress: bool = False
):
    """NNCF int8 of a pruned fp32 model (not modified): ``(fake-quant model, accuracy, settings)``.

    Args:
        fp32: The pruned model (plain weights holding zeros).
        train_loader, val_loader: The shared loop's loaders (NNCF calibrates on the training one).
        qat: :class:`study.make.quantize.QatConfig`, the same as the other int8 arms'.
        method: ``"qat"`` (``nncf.quantize``, then fine-tuning: :func:`baselines.nncf_quantize.qat`)
            or ``"ptq"`` (``nncf.quantize`` alone, NNCF's default flow:
            :func:`baselines.nncf_quantize.ptq`; ``qat`` is not used).
        progress: Show the loop's progress bar.

    Raises:
        ValueError: An unknown ``method``.
        NNCFError: NNCF is missing or failed.
    """
    import copy

    from baselines.nncf_quantize import ptq as nncf_ptq
    from baselines.nncf_quantize import qat as nncf_qat

    if method not in ("qat", "ptq"):
        raise ValueError(f"`method` must be 'qat' or 'ptq'; got {method!r}")
    model = nncf_ready(copy.deepcopy(fp32))
    if method == "ptq":
        from study.make.train import evaluate

        qmodel, settings = nncf_ptq(model, train_loader)
        return qmodel, evaluate(qmodel, val_loader), settings.to_dict()
    result, settings = nncf_qat(
        model, train_loader, val_loader, qat, train_loader, progress=progress
    )
    return result.model, result.val_accuracy, settings.to_dict()


def export_int8(qmodel: nn.Module, path: Path, shape, opset: int) -> dict[str, Any]:
    """Write NNCF's FakeQuantize ONNX at ``path`` and its QDQ file beside it (``.qdq.onnx``).

    Returns:
        ``{"qdq_path": Path, "forms": {engine: "fq" | "qdq"}}``: OpenVINO measures NNCF's own
        file, the engines of :data:`QDQ_ENGINES` the QDQ file (they cannot run ``FakeQuantize``).

    Raises:
        NNCFError: NNCF is missing or an export failed.
    """
    from baselines.nncf_export import export_fq_onnx, export_qdq_onnx

    export_fq_onnx(qmodel, path, shape, opset=opset)
    qdq = path.with_name(path.name.removesuffix(".onnx") + ".qdq.onnx")
    export_qdq_onnx(qmodel, qdq, shape, opset=opset)
    forms = {"openvino": "fq", **{e: "qdq" for e in QDQ_ENGINES}}
    return {"qdq_path": qdq, "forms": forms}
