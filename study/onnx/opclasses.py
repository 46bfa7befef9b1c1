"""Which ONNX nodes a sparse kernel can speed up: each node of a graph in one operator class.

Question 3 of the original study (why did EfficientNet and MobileViT gain no speed from pruning?)
is answered by where an engine spends its time (:mod:`study.bench.opprofile`). This module says,
for every node of the ONNX file, which :data:`CLASSES` it belongs to:

* ``sparse``: a Conv that is not depthwise, a MatMul or a Gemm whose weight is an initializer
  with at least ``min_sparsity`` zeros: the only ops an unstructured-sparse kernel can use;
* ``dense_weights``: the same ops with a weight below ``min_sparsity`` (what pruning has not
  touched; a dense file's prunable time is here);
* ``depthwise``: grouped Convs with one input channel per group;
* ``squeeze_excite``: the nodes of a squeeze-excite gate, from the global pool to the Mul that
  scales the feature map by the Sigmoid (its 1x1 convs run on 1x1 maps);
* ``attention``: Softmax and MatMuls of two activations (no weight initializer);
* ``activation``, ``normalization``, ``pooling``, ``memory`` (Add, Concat, Reshape, Transpose and
  the other element-wise or data-movement ops) and ``other``.

Each node also gets its multiply-accumulates (``macs``, Conv/MatMul/Gemm only, from ONNX shape
inference), which :mod:`study.bench.opprofile` uses to split a fused layer's time.

Example:
    >>> graph = classify_graph("model.onnx")  # doctest: +SKIP
    >>> graph.nodes["/features/0/0/Conv"].klass  # doctest: +SKIP
    'dense_weights'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["CLASSES", "SPARSE_CLASSES", "GraphClasses", "NodeClass", "classify_graph"]

# The operator classes, in the order the figure stacks them (sparse-usable first).
CLASSES: tuple[str, ...] = (
    "sparse",
    "dense_weights",
    "depthwise",
    "squeeze_excite",
    "attention",
    "activation",
    "normalization",
    "pooling",
    "memory",
    "other",
)
# Classes whose time a sparse kernel can shorten.
SPARSE_CLASSES: tuple[str, ...] = ("sparse",)

# A weight with fewer zeros than this counts as dense (the default of ``min_sparsity``; the same
# fraction as OpenVINO's sparse-weights rate used by study.engines.openvino).
MIN_SPARSITY = 0.5

_WEIGHTED = {"Conv", "MatMul", "Gemm", "ConvTranspose"}
_ACTIVATIONS = {
    "Relu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Clip",
    "Gelu",
    "Erf",
    "Tanh",
    "Softplus",
    "LeakyRelu",
    "Elu",
    "PRelu",
    "Mish",
}
_NORMS = {
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
}
_POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}
_MEMORY = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Concat",
    "Reshape",
    "Transpose",
    "Flatten",
    "Slice",
    "Split",
    "Gather",
    "Squeeze",
    "Unsqueeze",
    "Pad",
    "Identity",
    "Cast",
    "Resize",
    "Expand",
    "Shape",
    "Pow",
    "Sqrt",
    "Constant",
}
_SE_START = {"GlobalAveragePool", "ReduceMean"}
_SE_GATE = {"Sigmoid", "HardSigmoid"}


@dataclass(frozen=True)
class NodeClass:
    """One ONNX node: its op type, class, multiply-accumulates and weight sparsity."""

    name: str
    op_type: str
    klass: str  # one of CLASSES
    macs: int  # multiply-accumulates (Conv/MatMul/Gemm; 0 for the others)
    weight_sparsity: float | None  # zero fraction of its weight initializer (None: no weight)
    prunable: bool  # a weighted op a sparse kernel could use once pruned (sparse or dense_weights)


@dataclass(frozen=True)
class GraphClasses:
    """The classified nodes of one ONNX file, by node name, and who produces each tensor."""

    nodes: dict[str, NodeClass]
    producer: dict[str, str]  # tensor name -> name of the node that outputs it
    inputs: dict[str, tuple[str, ...]]  # node name -> its input tensor names
    op_types: dict[str, str]  # node name -> op type
    # a bias Add (one input a weight, the other a MatMul/Gemm output) -> that MatMul/Gemm: an
    # engine that names a Linear layer by its output tensor names the Add
    bias_of: dict[str, str]


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape at batch 1 (the profiles' batch), where ONNX's inference finds one.

    The inputs' symbolic dimensions are set to 1 and inference propagates constant shape
    computations (``data_prop``): without both, the Reshape of a dynamic-batch export
    (MobileViT's attention, unfolded by Shape -> Gather -> Concat -> Reshape) has no inferred
    shape, nor has any MatMul after it. A tensor still without a shape is left out.
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for info in fixed.graph.input:
        for d in info.type.tensor_type.shape.dim:
            if d.dim_value <= 0:
                d.dim_value = 1
    graph = onnx.shape_inference.infer_shapes(fixed, data_prop=True).graph
    out = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        if not info.type.tensor_type.HasField("shape"):
            continue
        dims = info.type.tensor_type.shape.dim
        out[info.name] = tuple(d.dim_value if d.dim_value > 0 else 1 for d in dims)
    return out


def _macs(node, shapes, weights) -> int:
    out_shape = shapes.get(node.output[0])
    if out_shape is None:
        return 0
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in shapes | weights:
        w = weights.get(node.input[1])
        wshape = w.shape if w is not None else shapes[node.input[1]]
        return int(np.prod(out_shape) * np.prod(wshape[1:]))  # each output: Cin/groups * kh * kw
    if node.op_type in ("MatMul", "Gemm"):
        a = shapes.get(node.input[0])
        if not a:  # no inferred shape (or a scalar): no multiply-accumulates to split by
            return 0
        k = a[-1] if not (node.op_type == "Gemm" and _attr(node, "transA", 0)) else a[0]
        return int(np.prod(out_shape) * k)
    return 0


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _spatial(shape: tuple[int, ...] | None) -> int | None:
    return None if shape is None or len(shape) < 3 else int(np.prod(shape[2:]))


def _squeeze_excite(
    graph: onnx.GraphProto, producer: dict[str, onnx.NodeProto], shapes: dict[str, tuple[int, ...]]
) -> set[str]:
    """Names of the nodes inside squeeze-excite gates: a global pool, ops on its 1x1 map, a
    Sigmoid, and the Mul that scales the feature map by it (a SiLU's Sigmoid, on a full map, is not
    one)."""
    found: set[str] = set()
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    for node in graph.node:
        if node.op_type not in _SE_GATE or _spatial(shapes.get(node.output[0])) != 1:
            continue
        path, current = [node.name], node
        for _ in range(8):  # pool -> conv -> act -> conv -> sigmoid, with room for reshapes
            up = producer.get(current.input[0]) if current.input else None
            if up is None:
                break
            path.append(up.name)
            if up.op_type in _SE_START:
                found.update(path)
                found.update(
                    c.name for c in consumers.get(node.output[0], []) if c.op_type == "Mul"
                )
                break
            if _spatial(shapes.get(up.output[0])) != 1:
                break  # left the gate's 1x1 map without meeting its pool
            current = up
    return found


def _layer_norms(graph: onnx.GraphProto, weights: dict) -> set[str]:
    """Names of the nodes of decomposed LayerNorms: ReduceMean over the last axis, Sub, Pow,
    ReduceMean, Add, Sqrt, Div, then the Mul and Add by the affine weights."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)

    def after(nodes, op_type):
        return [c for n in nodes for c in consumers.get(n.output[0], []) if c.op_type == op_type]

    found: set[str] = set()
    for mean in graph.node:
        if mean.op_type != "ReduceMean" or list(_attr(mean, "axes", [])) != [-1]:
            continue
        subs = after([mean], "Sub")
        pows = after(subs, "Pow")
        var = after(pows, "ReduceMean")
        eps = after(var, "Add")
        sqrt = after(eps, "Sqrt")
        divs = after(subs, "Div")
        if not (subs and sqrt and divs):
            continue
        scale = [n for n in after(divs, "Mul") if any(t in weights for t in n.input)]
        shift = [n for n in after(scale, "Add") if any(t in weights for t in n.input)]
        found.update(n.name for n in [mean, *subs, *pows, *var, *eps, *sqrt, *divs, *scale, *shift])
    return found


def classify_graph(path: str | Path, *, min_sparsity: float = MIN_SPARSITY) -> GraphClasses:
    """Classify every node of the ONNX file at ``path`` (see the module docstring).

    Args:
        path: an ONNX file.
        min_sparsity: a weight with at least this zero fraction is pruned (class ``sparse``).

    Returns:
        The nodes by name (unnamed nodes are named ``<op_type>_<index>``), with tensor producers.

    Raises:
        ValueError: ``min_sparsity`` outside (0, 1].
    """
    if not 0.0 < min_sparsity <= 1.0:
        raise ValueError(f"`min_sparsity` must be in (0, 1]; got {min_sparsity!r}")
    model = onnx.load(str(path))
    graph = model.graph
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = _shapes(model)
    producer = {t: node for node in graph.node for t in node.output}
    se = _squeeze_excite(graph, producer, shapes)
    norms = _layer_norms(graph, weights)
    nodes = {}
    for node in graph.node:
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Gemm" and weight is None and node.input[0] in weights:
            weight = weights[node.input[0]]
        sparsity = None if weight is None else float((weight == 0).mean())
        depthwise = (
            node.op_type == "Conv"
            and weight is not None
            and _attr(node, "group", 1) > 1
            and weight.shape[1] == 1
        )
        prunable = node.op_type in _WEIGHTED and weight is not None and not depthwise
        if node.name in se:
            klass = "squeeze_excite"
        elif node.name in norms:
            klass = "normalization"
        elif depthwise:
            klass = "depthwise"
        elif prunable:
            klass = "sparse" if sparsity >= min_sparsity else "dense_weights"
        elif node.op_type == "Mul" and any(
            producer[t].op_type in _SE_GATE for t in node.input if t in producer
        ):
            klass = "activation"  # SiLU / Swish: x * sigmoid(x)
        elif node.op_type in ("MatMul", "Softmax"):
            klass = "attention"
        elif node.op_type in _ACTIVATIONS:
            klass = "activation"
        elif node.op_type in _NORMS:
            klass = "normalization"
        elif node.op_type in _POOLS:
            klass = "pooling"
        elif node.op_type in _MEMORY:
            klass = "memory"
        else:
            klass = "other"
        nodes[node.name] = NodeClass(
            node.name,
            node.op_type,
            klass,
            _macs(node, shapes, weights),
            sparsity,
            prunable and node.name not in se,
        )
    return GraphClasses(
        nodes=nodes,
        producer={t: n.name for t, n in producer.items()},
        inputs={n.name: tuple(n.input) for n in graph.node},
        op_types={n.name: n.op_type for n in graph.node},
        bias_of={
            n.name: producer[t].name
            for n in graph.node
            if n.op_type == "Add" and any(t in weights for t in n.input)
            for t in n.input
            if t in producer and producer[t].op_type in ("MatMul", "Gemm")
        },
    )
