"""Files of an NNCF-quantized model: NNCF's own forms, and the closest standard form.

Which engine runs which file (NNCF 3.4, ONNX Runtime 1.26, OpenVINO 2026.4, DeepSparse 1.8;
checked on ResNet-18 and a small CNN, see ``docs/nncf.md``):

============================  ============  ========  ===========================
file                          ONNX Runtime  OpenVINO  DeepSparse
============================  ============  ========  ===========================
``fq``: FakeQuantize ONNX     no            yes (u8)  no
``ir``: OpenVINO IR           no            yes (u8)  no
``qdq``: standard QDQ ONNX    yes           yes (u8)  compiles, falls back (0.0)
============================  ============  ========  ===========================

- ``fq`` (:func:`export_fq_onnx`): ``torch.onnx.export`` of the NNCF-wrapped model, NNCF's own
  export path; its quantizers export as ``FakeQuantize`` of the ``org.openvinotoolkit`` domain,
  which only OpenVINO registers ("is not a registered function/op" elsewhere).
- ``ir`` (:func:`export_ir`): ``openvino.convert_model`` + ``openvino.save_model``, NNCF's
  documented deployment path; OpenVINO only.
- ``qdq`` (:func:`export_qdq_onnx`): NNCF's own ``nncf.strip(strip_format=NATIVE)`` turns its
  quantizers into torch ``FakeQuantize`` modules with NNCF's scales and zero points, which
  ``torch.onnx.export`` writes as ``QuantizeLinear -> DequantizeLinear``; then
  :func:`study.onnx.cleanup.clean_qdq` (exact rewrites) and :func:`fold_weight_quantize`, which
  stores each constant weight's ``QuantizeLinear`` output as an int8 initializer (computed by
  ``onnx.reference``, the ONNX spec's reference implementation), as in the torch.ao reference
  file. DeepSparse compiles it with ``fraction_of_supported_ops`` 0.0, as it does the torch.ao
  QDQ file. ONNX Runtime runs a Conv in int8 (``QLinearConv``) only when its input scale is
  per tensor: NNCF quantizes depthwise-conv inputs per channel, so those stay fp32 there.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from baselines.nncf_common import import_nncf, nncf_step
from study.make.export import sample_input, torch_onnx_export

__all__ = ["FORMATS", "export_fq_onnx", "export_ir", "export_qdq_onnx", "fold_weight_quantize"]

# File form -> engines that run it (see the module docstring).
FORMATS: dict[str, tuple[str, ...]] = {
    "fq": ("openvino",),
    "ir": ("openvino",),
    "qdq": ("onnxruntime", "openvino", "deepsparse"),
}


def _check_shape(input_shape: tuple[int, ...], opset: int) -> torch.Tensor:
    if not isinstance(opset, int) or opset < 13:
        raise ValueError(f"`opset` must be an integer >= 13; got {opset!r}")
    return sample_input(input_shape)


def _export(model: torch.nn.Module, sample: torch.Tensor, path: Path, opset: int) -> None:
    # a fixed batch (NNCF's FakeQuantize graph), tracer warnings from NNCF's hooks silenced
    torch_onnx_export(model, sample, path, opset, dynamic_batch=False, quiet=True)


def export_fq_onnx(
    qmodel: torch.nn.Module, path: str | Path, input_shape: tuple[int, ...], opset: int = 13
) -> Path:
    """NNCF's own ONNX: ``torch.onnx.export`` of the quantized model (OpenVINO ``FakeQuantize``).

    Args:
        qmodel: A model from :func:`baselines.nncf_quantize.ptq` or ``qat``.
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of the sample batch, e.g. ``(1, 3, 224, 224)`` (static).
        opset: ONNX opset (13 or later).

    Returns:
        The path written.

    Raises:
        ValueError: If ``input_shape`` or ``opset`` is invalid.
        NNCFError: If the export fails.
    """
    sample = _check_shape(input_shape, opset)
    path = Path(path)
    with nncf_step("torch.onnx.export of the NNCF-quantized model"):
        _export(qmodel, sample, path, opset)
    return path


def export_ir(qmodel: torch.nn.Module, path: str | Path, input_shape: tuple[int, ...]) -> Path:
    """NNCF's documented deployment: ``openvino.convert_model`` + ``openvino.save_model`` (IR).

    Args:
        qmodel: A model from :func:`baselines.nncf_quantize.ptq` or ``qat``.
        path: Destination ``.xml`` file (the ``.bin`` is written beside it).
        input_shape: Shape of the sample batch (static).

    Returns:
        The ``.xml`` path written.

    Raises:
        ValueError: If ``input_shape`` is invalid or ``path`` does not end in ``.xml``.
        NNCFError: If the conversion fails.
    """
    import openvino as ov

    sample = _check_shape(input_shape, 13)
    path = Path(path)
    if path.suffix != ".xml":
        raise ValueError(f"`path` must end in '.xml' (an OpenVINO IR); got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    qmodel.eval()
    with (
        nncf_step("openvino.convert_model of the NNCF-quantized model"),
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # torch.jit.trace deprecation and tracer warnings
        ov_model = ov.convert_model(qmodel, example_input=sample, input=tuple(sample.shape))
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return path


def fold_weight_quantize(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Store each ``QuantizeLinear`` of a constant as its int8/uint8 result (a copy; exact).

    The values come from ``onnx.reference.ReferenceEvaluator`` running the node (the ONNX
    spec: ``saturate(round_half_to_even(x / scale) + zero_point)``); the node's consumers read
    the new initializer instead. Unused fp32 weights are removed by a later ``clean_qdq``.

    Args:
        model: An ONNX model whose constants are initializers (after ``clean_qdq``).

    Returns:
        ``(folded copy, number of nodes folded)``.
    """
    from onnx.reference import ReferenceEvaluator

    folded = copy.deepcopy(model)
    graph = folded.graph
    inits = {init.name: init for init in graph.initializer}
    keep, count = [], 0
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or not all(i in inits for i in node.input if i):
            keep.append(node)
            continue
        single = helper.make_model(
            helper.make_graph(
                [copy.deepcopy(node)],
                "fold",
                [],
                [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)],
                initializer=[inits[i] for i in node.input if i],
            ),
            opset_imports=list(folded.opset_import),
        )
        (value,) = ReferenceEvaluator(single).run(None, {})
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), node.output[0]))
        count += 1
    del graph.node[:]
    graph.node.extend(keep)
    return folded, count


def export_qdq_onnx(
    qmodel: torch.nn.Module, path: str | Path, input_shape: tuple[int, ...], opset: int = 13
) -> Path:
    """The closest standard form: NNCF's quantizers as ``QuantizeLinear``/``DequantizeLinear``.

    ``nncf.strip(qmodel, strip_format=NATIVE)`` (a copy; NNCF's scales and zero points in torch
    ``FakeQuantize`` modules), ``torch.onnx.export``, ``clean_qdq``, :func:`fold_weight_quantize`,
    ``clean_qdq`` again (drops the fp32 weights), ``onnx.checker``.

    Args:
        qmodel: A model from :func:`baselines.nncf_quantize.ptq` or ``qat``.
        path: Destination ``.onnx`` file; parent folders are created.
        input_shape: Shape of the sample batch (static).
        opset: ONNX opset (13 or later).

    Returns:
        The path written.

    Raises:
        ValueError: If ``input_shape`` or ``opset`` is invalid.
        NNCFError: If NNCF fails to strip or the export fails.
    """
    from study.onnx.cleanup import clean_qdq

    nncf = import_nncf()
    sample = _check_shape(input_shape, opset)
    path = Path(path)
    raw = path.with_name(path.stem + ".raw.onnx")
    try:
        with nncf_step("nncf.strip(strip_format=NATIVE) and torch.onnx.export"):
            native = nncf.strip(
                qmodel, do_copy=True, strip_format=nncf.StripFormat.NATIVE, example_input=sample
            )
            _export(native, sample, raw, opset)
        cleaned = clean_qdq(onnx.load(str(raw))).model
    finally:
        raw.unlink(missing_ok=True)
    folded, _ = fold_weight_quantize(cleaned)
    final = clean_qdq(folded).model
    onnx.save(final, str(path))
    return path
