"""A neutral cleanup of torch's int8 ONNX export into the standard QDQ form, one small pass each.

``torch.onnx.export`` (TorchScript exporter, opset 13) of a ``torch.ao`` FX-converted int8 model
writes a correct graph with export debris around the quantized ops: weights, scales and zero
points as ``Constant`` nodes, ``Identity`` nodes on shared scales, a no-op ``Cast`` (uint8 to
uint8) between every ``QuantizeLinear`` and its ``DequantizeLinear``, and each int32 bias zero
point rebuilt at run time as ``Cast(ConstantOfShape(shape))``. :func:`clean_qdq` removes exactly
that debris, so the graph is the standard QDQ pattern (``QuantizeLinear -> DequantizeLinear``
around each quantized op; weights as int8 initializers feeding ``DequantizeLinear``) that any user
would get from a graph optimizer. Every pass is an exact rewrite: no value of any tensor changes,
int8 weights (and so their zeros) are copied bit for bit, and nothing is quantized, dequantized
or fused. A ``Cast`` that changes the element type is kept.

Why not a library: ``onnxoptimizer`` 0.4.2 installs beside onnx 1.14 and removes the
``Constant``, ``Identity`` and no-op ``Cast`` nodes (after shape inference) but leaves the
``ConstantOfShape`` chains; ``onnxsim`` 0.8.1 needs onnx >= 1.16 (``onnx.inliner``); ``onnxsim``
0.4.36 works and gives the same op counts as this module, but it is not a dependency of the project.

Example:
    >>> import onnx  # doctest: +SKIP
    >>> result = clean_qdq(onnx.load("model-int8.onnx"))  # doctest: +SKIP
    >>> result.changes  # doctest: +SKIP
    {'constants_to_initializers': 36, 'identities': 4, 'constant_of_shape': 4, ...}
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["CleanupResult", "clean_qdq", "clean_qdq_file"]


@dataclass(frozen=True)
class CleanupResult:
    """The cleaned model and what each pass changed."""

    # The cleaned model (a copy; the input model is not modified).
    model: onnx.ModelProto
    # Pass name -> number of nodes (or initializers, for "unused_initializers") it removed.
    changes: dict[str, int]


def _initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in graph.initializer}


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _output_names(graph: onnx.GraphProto) -> set[str]:
    return {o.name for o in graph.output}


def _replace_nodes(graph: onnx.GraphProto, keep: list[onnx.NodeProto]) -> None:
    del graph.node[:]
    graph.node.extend(keep)


def _constants_to_initializers(model: onnx.ModelProto) -> int:
    """``Constant`` nodes holding a tensor (``value``) become initializers of the same name."""
    graph, keep, n = model.graph, [], 0
    for node in graph.node:
        value = [a for a in node.attribute if a.name == "value"]
        if node.op_type == "Constant" and value and node.output[0] not in _output_names(graph):
            tensor = copy.deepcopy(value[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            n += 1
        else:
            keep.append(node)
    _replace_nodes(graph, keep)
    return n


def _fold_identities(model: onnx.ModelProto) -> int:
    """``Identity`` of an initializer: its consumers read the initializer itself."""
    graph, keep, n = model.graph, [], 0
    inits, outputs = _initializers(graph), _output_names(graph)
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            _rename_uses(graph, node.output[0], node.input[0])
            n += 1
        else:
            keep.append(node)
    _replace_nodes(graph, keep)
    return n


def _fold_constant_of_shape(model: onnx.ModelProto) -> int:
    """``ConstantOfShape`` of an initializer shape becomes the filled initializer (default 0.0)."""
    graph, keep, n = model.graph, [], 0
    inits, outputs = _initializers(graph), _output_names(graph)
    for node in graph.node:
        if (
            node.op_type == "ConstantOfShape"
            and node.input[0] in inits
            and node.output[0] not in outputs
        ):
            shape = numpy_helper.to_array(inits[node.input[0]]).astype(np.int64)
            value = [a for a in node.attribute if a.name == "value"]
            fill = numpy_helper.to_array(value[0].t) if value else np.zeros(1, np.float32)
            filled = np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0], dtype=fill.dtype)
            graph.initializer.append(numpy_helper.from_array(filled, node.output[0]))
            n += 1
        else:
            keep.append(node)
    _replace_nodes(graph, keep)
    return n


def _fold_initializer_casts(model: onnx.ModelProto) -> int:
    """``Cast`` of an initializer becomes the cast initializer, when the cast is exact.

    Exact means converting back gives the original values (integer widening, or a value that
    fits); other casts (rounding, overflow) are left to the engine.
    """
    graph, keep, n = model.graph, [], 0
    inits, outputs = _initializers(graph), _output_names(graph)
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in inits and node.output[0] not in outputs:
            to = helper.get_attribute_value(next(a for a in node.attribute if a.name == "to"))
            source = numpy_helper.to_array(inits[node.input[0]])
            target = source.astype(helper.tensor_dtype_to_np_dtype(to))
            if np.array_equal(target.astype(source.dtype), source):
                graph.initializer.append(numpy_helper.from_array(target, node.output[0]))
                n += 1
                continue
        keep.append(node)
    _replace_nodes(graph, keep)
    return n


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor whose type ONNX shape inference can tell."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in (*inferred.value_info, *inferred.input, *inferred.output)
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
    }
    types.update({init.name: init.data_type for init in inferred.initializer})
    return types


def _remove_nop_casts(model: onnx.ModelProto) -> int:
    """``Cast`` to the type its input already has (torch's ``QuantizeLinear -> Cast(uint8)``)."""
    graph, keep, n = model.graph, [], 0
    types, outputs = _elem_types(model), _output_names(graph)
    for node in graph.node:
        if node.op_type == "Cast" and node.output[0] not in outputs:
            to = helper.get_attribute_value(next(a for a in node.attribute if a.name == "to"))
            if types.get(node.input[0]) == to:
                _rename_uses(graph, node.output[0], node.input[0])
                n += 1
                continue
        keep.append(node)
    _replace_nodes(graph, keep)
    return n


def _remove_dead_nodes(model: onnx.ModelProto) -> int:
    """Nodes none of whose outputs is used by another node or is a graph output."""
    graph, n = model.graph, 0
    while True:
        used = {name for node in graph.node for name in node.input} | _output_names(graph)
        keep = [node for node in graph.node if any(o in used for o in node.output)]
        if len(keep) == len(graph.node):
            return n
        n += len(graph.node) - len(keep)
        _replace_nodes(graph, keep)


def _remove_unused_initializers(model: onnx.ModelProto) -> int:
    """Initializers no node reads (the passes above leave the replaced ones behind)."""
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | _output_names(graph)
    removed = {init.name for init in graph.initializer if init.name not in used}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    # An initializer listed as a graph input (keep_initializers_as_inputs) goes with it.
    inputs = [i for i in graph.input if i.name not in removed]
    del graph.input[:]
    graph.input.extend(inputs)
    return len(removed)


# Pass name -> pass (in the order they run; each returns how many nodes it removed).
_PASSES: dict[str, Callable[[onnx.ModelProto], int]] = {
    "constants_to_initializers": _constants_to_initializers,
    "identities": _fold_identities,
    "constant_of_shape": _fold_constant_of_shape,
    "initializer_casts": _fold_initializer_casts,
    "nop_casts": _remove_nop_casts,
    "dead_nodes": _remove_dead_nodes,
    "unused_initializers": _remove_unused_initializers,
}


def clean_qdq(model: onnx.ModelProto) -> CleanupResult:
    """Remove torch's export debris around the quantized ops; every tensor keeps its value.

    The passes, in order: ``Constant`` nodes to initializers; ``Identity`` of an initializer
    folded; ``ConstantOfShape`` of a constant shape folded; exact ``Cast`` of an initializer
    folded; ``Cast`` to the type its input already has removed (the ``QuantizeLinear -> Cast ->
    DequantizeLinear`` pattern); dead nodes and unused initializers removed. Stale
    ``value_info`` entries are dropped (ONNX Runtime and the engines re-infer them).

    Args:
        model: An ONNX model; it is not modified.

    Returns:
        A :class:`CleanupResult` with the cleaned copy and the count of changes per pass.

    Raises:
        onnx.checker.ValidationError: If the cleaned model is not a valid ONNX model.

    Example:
        >>> result = clean_qdq(onnx.load("model-int8.onnx"))  # doctest: +SKIP
        >>> result.changes["nop_casts"]  # doctest: +SKIP
        7
    """
    cleaned = copy.deepcopy(model)
    changes = {name: run(cleaned) for name, run in _PASSES.items()}
    del cleaned.graph.value_info[:]
    onnx.checker.check_model(cleaned)
    return CleanupResult(cleaned, changes)


def clean_qdq_file(src: str | Path, dst: str | Path | None = None) -> CleanupResult:
    """:func:`clean_qdq` on a file, written to ``dst`` (default: over ``src``).

    Args:
        src: The ONNX file to clean.
        dst: Where to write the cleaned model; None overwrites ``src``.

    Returns:
        The :class:`CleanupResult` (its model is the one written).

    Example:
        >>> clean_qdq_file("model-int8.onnx").changes  # doctest: +SKIP
    """
    result = clean_qdq(onnx.load(str(src)))
    onnx.save(result.model, str(dst if dst is not None else src))
    return result
