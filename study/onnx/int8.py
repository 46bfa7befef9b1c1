"""Facts about an ONNX graph's int8 content, read from the file alone (no engine, no torch).

:func:`is_quantized` (does the graph hold quantization ops), :func:`op_counts` and the int8 weight
initializers with their zero points (:func:`int8_weight_zeros`). The engine workers use them to
pick the output tolerance; :mod:`study.make.quantize` uses them to check that int8 export kept zeros.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = ["int8_weight_zeros", "is_quantized", "op_counts"]

# Op types that only a quantized graph holds.
_QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})

# Op type -> (index of its weight input, index of that weight's zero point) for the integer ops
# whose weight is an int8/uint8 tensor (``DequantizeLinear``: the quantized tensor itself).
_WEIGHT_INPUTS = {
    "DequantizeLinear": (0, 2),
    "QLinearConv": (3, 5),
    "ConvInteger": (1, 3),
    "MatMulInteger": (1, 3),
    "QLinearMatMul": (3, 5),
}


def _load(onnx_path: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    if isinstance(onnx_path, onnx.ModelProto):
        return onnx_path
    return onnx.load(str(onnx_path), load_external_data=False)


def op_counts(onnx_path: str | Path | onnx.ModelProto) -> dict[str, int]:
    """Nodes per op type of an ONNX graph, most frequent first.

    Example:
        >>> op_counts("model-int8.onnx")  # doctest: +SKIP
        {'DequantizeLinear': 15, 'QuantizeLinear': 7, 'Conv': 3, ...}
    """
    return dict(Counter(node.op_type for node in _load(onnx_path).graph.node).most_common())


def is_quantized(onnx_path: str | Path | onnx.ModelProto) -> bool:
    """Whether the graph holds a quantization op (Q/DQ, ``QLinear*`` or ``*Integer``).

    Example:
        >>> is_quantized("model-int8.onnx"), is_quantized("model.onnx")  # doctest: +SKIP
        (True, False)
    """
    return any(
        op in _QUANT_OPS or op.startswith("QLinear") or op.endswith("Integer")
        for op in (node.op_type for node in _load(onnx_path).graph.node)
    )


def _centered_int8_weights(onnx_path: str | Path | onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every int8/uint8 weight initializer minus its zero point (int32): zeros are 0 here.

    A weight is the quantized input of ``DequantizeLinear`` or the weight input of
    ``QLinearConv``/``ConvInteger``/``MatMulInteger``/``QLinearMatMul``, when it is an
    initializer. Per-axis zero points are broadcast along their axis (``DequantizeLinear``'s
    ``axis`` attribute, default 1; output channels, axis 0, for convolution weights; columns,
    the last axis, for the matmul weights); a missing zero point is 0.
    """
    from onnx import helper, numpy_helper

    graph = _load(onnx_path).graph
    inits = {init.name: init for init in graph.initializer}
    out: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type not in _WEIGHT_INPUTS:
            continue
        w_i, zp_i = _WEIGHT_INPUTS[node.op_type]
        if len(node.input) <= w_i or node.input[w_i] not in inits or node.input[w_i] in out:
            continue
        weight = numpy_helper.to_array(inits[node.input[w_i]])
        if weight.dtype not in (np.int8, np.uint8):
            continue
        zp_name = node.input[zp_i] if len(node.input) > zp_i else ""
        zp = numpy_helper.to_array(inits[zp_name]) if zp_name in inits else np.zeros((), np.int32)
        zp = zp.astype(np.int32)
        if zp.size > 1:
            if node.op_type == "DequantizeLinear":
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                axis = attrs.get("axis", 1) % weight.ndim
            else:
                axis = 0 if node.op_type in ("QLinearConv", "ConvInteger") else weight.ndim - 1
            shape = [1] * weight.ndim
            shape[axis] = zp.size
            zp = zp.reshape(shape)
        out[node.input[w_i]] = weight.astype(np.int32) - zp
    return out


def int8_weight_zeros(onnx_path: str | Path | onnx.ModelProto) -> dict[str, tuple[int, int]]:
    """``(numel, zeros)`` of every int8/uint8 weight initializer; a zero is a value equal to
    that tensor's zero point (0 for symmetric int8, 128 for SparseML's uint8 weights).

    Weights are the initializers quantized by ``DequantizeLinear`` or read as weights by
    ``QLinearConv``, ``ConvInteger``, ``MatMulInteger`` and ``QLinearMatMul``.

    Args:
        onnx_path: An ONNX file (or a loaded model).

    Returns:
        Initializer name -> ``(numel, zeros)``; empty for an fp32 graph.

    Example:
        >>> int8_weight_zeros("model-int8.onnx")  # doctest: +SKIP
        {'/0/Constant_output_0': (432, 216), ...}
    """
    return {
        name: (int(w.size), int(np.count_nonzero(w == 0)))
        for name, w in _centered_int8_weights(onnx_path).items()
    }
