"""Export with SparseML's ``ModuleExporter``: the exporter SparseZoo's models were made with.

What it does to the graph (read from ``sparseml/pytorch/utils/exporter.py``, SparseML 1.8): the
model is deep-copied to the CPU in eval mode; every BatchNorm is wrapped so that constant folding
cannot fold it, and the wrapper's trivial ``Add`` nodes are deleted afterwards, so BatchNorm stays a
separate ``BatchNormalization`` node and conv weights keep their torch names (``layer.weight``);
the batch dimension of every input and output is dynamic; the default opset is 14;
``keep_initializers_as_inputs=False`` (so torch stores weights of equal value once, which
:func:`study.onnx.weights.unshare_weights` undoes after export). On torch >= 2.9 ``dynamo=False`` must be passed through
its ``export_kwargs`` (the new exporter needs onnxscript), which this function does.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from study.make.export import check_no_pruning_state, sample_input
from study.onnx.weights import unshare_weights_file

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__ = ["export_sparseml"]


def export_sparseml(
    model: torch.nn.Module, path: str | Path, input_shape: tuple[int, ...], opset: int = 14
) -> Path:
    """Export ``model`` to ONNX with SparseML's ``ModuleExporter`` (BatchNorm kept, dynamic batch).

    Args:
        model: A finalized model (no ``weight_orig``/``weight_mask``); it is not modified.
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of the sample batch, e.g. ``(1, 3, 224, 224)``.
        opset: ONNX opset version (SparseML's default is 14).

    Returns:
        The path written.

    Raises:
        ValueError: If pruning is still attached or ``input_shape`` has a non-positive entry.

    Example:
        >>> export_sparseml(model, "runs/model-sparseml.onnx", (1, 3, 224, 224))  # doctest: +SKIP
    """
    sample_input(input_shape)  # refuses a bad shape before SparseML is imported
    check_no_pruning_state(model)
    from sparseml.pytorch.utils import ModuleExporter

    from baselines.sparseml import quiet_sparseml_logs

    quiet_sparseml_logs()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros(tuple(int(d) for d in input_shape))
    exporter = ModuleExporter(model, str(path.parent))
    exporter.export_onnx(sample, name=path.name, opset=opset, dynamo=False)
    unshare_weights_file(path)  # each weight its own initializer (undo torch's deduplication)
    return path
