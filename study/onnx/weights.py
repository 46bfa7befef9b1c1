"""Give every weight of an exported ONNX graph an initializer of its own (undo deduplication).

Why: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, which SparseML's
``ModuleExporter`` calls too) runs ``_jit_pass_onnx_deduplicate_initializers`` whenever
``keep_initializers_as_inputs`` is not True: parameters holding *equal values* of the same shape
and dtype are stored once. A pruned model hits this when magnitude pruning zeroes whole layers.
MobileViT-xs under one global threshold is the case in point: its transformer weights (timm
initializes them with std 0.02, far below the convolutions') are pruned entirely, so e.g. the
``attn.qkv.weight`` (288, 96) of ``transformer.0`` and ``transformer.1`` are both all zero, and
the file keeps one ``(96, 288)`` ``MatMul`` initializer for both. The torch exporter routes the
second use through an ``Identity`` node; SparseML's exporter then folds such ``Identity`` nodes
(``_fold_identity_initializers``), so several ``MatMul`` nodes read one initializer directly.
A convolution folded with a BatchNorm whose scale is zero (timm's ``zero_init_last``) becomes an
all-zero weight and is shared the same way.

The graph still computes the same thing, but the file no longer stores each pruned weight: the
zeros counted in its initializers, its size and its gzip size describe a smaller model than the
one that was pruned, and engines see weights shared between layers that the model does not share.
Keeping the weights as initializers of their own at export (``keep_initializers_as_inputs=True``
skips the pass) would make every weight a graph input, which ONNX Runtime then refuses to
constant-fold; hence this rewrite after export instead.

:func:`unshare_weights` is an exact rewrite: every weight input (see :data:`WEIGHT_INPUTS`) that
reads an initializer also read elsewhere, directly or through ``Identity`` nodes, gets a
bit-for-bit copy of its own; ``Identity`` nodes left without consumers are removed. No value
changes, no other node changes.

Example:
    >>> import onnx  # doctest: +SKIP
    >>> model, copies = unshare_weights(onnx.load("mobilevit.onnx"))  # doctest: +SKIP
    >>> copies  # doctest: +SKIP
    21
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from pathlib import Path

import onnx

__all__ = ["WEIGHT_INPUTS", "shared_weights", "unshare_weights", "unshare_weights_file"]

log = logging.getLogger(__name__)

# Op type -> the input positions that hold a layer's weight when it is an initializer (fp32 ops,
# and the int8 ones: the quantized tensor of DequantizeLinear, the weights of the integer ops).
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1,),
    "ConvTranspose": (1,),
    "Gemm": (0, 1),
    "MatMul": (0, 1),
    "DequantizeLinear": (0,),
    "ConvInteger": (1,),
    "MatMulInteger": (0, 1),
    "QLinearConv": (3,),
    "QLinearMatMul": (0, 3),
}


def _identity_sources(graph: onnx.GraphProto, inits: set[str]) -> dict[str, str]:
    """Output of each ``Identity`` (chain) that copies an initializer -> that initializer."""
    sources: dict[str, str] = {}
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Identity" and len(node.input) == 1 and len(node.output) == 1:
            src = sources.get(node.input[0], node.input[0])
            if src in inits:
                sources[node.output[0]] = src
    return sources


def _weight_uses(graph: onnx.GraphProto, inits: set[str], sources: dict[str, str]):
    """``(node, input position, initializer)`` of every weight input that reads an initializer."""
    for node in graph.node:
        for pos in WEIGHT_INPUTS.get(node.op_type, ()):
            if pos < len(node.input):
                src = sources.get(node.input[pos], node.input[pos])
                if src in inits:
                    yield node, pos, src


def _reads(graph: onnx.GraphProto, inits: set[str], sources: dict[str, str]) -> Counter:
    """How many node inputs (and graph outputs) read each initializer, through Identity or not."""
    reads: Counter = Counter()
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] in sources:
            continue  # counted where its output is read
        for name in node.input:
            if sources.get(name, name) in inits:
                reads[sources.get(name, name)] += 1
    for out in graph.output:
        if sources.get(out.name, out.name) in inits:
            reads[sources.get(out.name, out.name)] += 1
    return reads


def shared_weights(model: onnx.ModelProto) -> dict[str, int]:
    """Initializers that some weight input shares with another reader: name -> number of readers.

    Args:
        model: An ONNX model.

    Returns:
        Initializer name -> how many node inputs (and graph outputs) read it, directly or through
        ``Identity`` nodes, for every initializer read by a weight input and by something else.

    Example:
        >>> shared_weights(onnx.load("mobilevit.onnx"))  # doctest: +SKIP
        {'onnx::MatMul_1553': 2, ...}
    """
    graph = model.graph
    inits = {init.name for init in graph.initializer}
    sources = _identity_sources(graph, inits)
    reads = _reads(graph, inits, sources)
    return {src: reads[src] for _, _, src in _weight_uses(graph, inits, sources) if reads[src] > 1}


def _fresh_name(base: str, taken: set[str]) -> str:
    k = 1
    while f"{base}.{k}" in taken:
        k += 1
    taken.add(f"{base}.{k}")
    return f"{base}.{k}"


def unshare_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Give every weight input an initializer that nothing else reads (an exact rewrite).

    The first weight input reading a shared initializer directly keeps it, unless a node other
    than a weight input reads it too; every other weight input reading it (directly or through ``Identity`` nodes) is pointed at a copy named
    ``<initializer>.<k>``. ``Identity`` nodes whose output nobody reads any more are removed.

    Args:
        model: An ONNX model; it is not modified.

    Returns:
        ``(rewritten copy, number of copies made)``; the copy equals ``model`` when nothing is shared.

    Example:
        >>> model, copies = unshare_weights(onnx.load("mobilevit.onnx"))  # doctest: +SKIP
    """
    model = copy.deepcopy(model)
    graph = model.graph
    by_name = {init.name: init for init in graph.initializer}
    inits = set(by_name)
    sources = _identity_sources(graph, inits)
    reads = _reads(graph, inits, sources)
    taken = inits | {o for node in graph.node for o in node.output} | {i.name for i in graph.input}
    kept: set[str] = set()
    copies = 0
    uses = list(_weight_uses(graph, inits, sources))
    weight_reads = Counter(src for _, _, src in uses)
    # Direct readers claim first, so a weight keeps its exporter-given name where it can.
    uses.sort(key=lambda use: use[0].input[use[1]] != use[2])
    for node, pos, src in uses:
        if reads[src] == 1:
            continue
        only_weights = weight_reads[src] == reads[src]  # else a non-weight reader keeps it
        if only_weights and node.input[pos] == src and src not in kept:
            kept.add(src)
            continue
        name = _fresh_name(src, taken)
        clone = graph.initializer.add()
        clone.CopyFrom(by_name[src])
        clone.name = name
        node.input[pos] = name
        copies += 1
    _drop_unread_identities(graph, sources)
    return model, copies


def _drop_unread_identities(graph: onnx.GraphProto, sources: dict[str, str]) -> None:
    while True:
        read = {name for node in graph.node for name in node.input}
        read |= {out.name for out in graph.output}
        dead = [
            node
            for node in graph.node
            if node.op_type == "Identity"
            and node.output[0] in sources
            and node.output[0] not in read
        ]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def unshare_weights_file(path: str | Path) -> int:
    """Apply :func:`unshare_weights` to an ONNX file in place; rewrite it only if something changed.

    Args:
        path: The ONNX file.

    Returns:
        The number of initializer copies made (0: the file is untouched).

    Example:
        >>> unshare_weights_file("runs/mobilevit_xs.onnx")  # doctest: +SKIP
        21
    """
    path = Path(path)
    model, copies = unshare_weights(onnx.load(str(path)))
    if copies:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        log.info("%s: %d shared weight initializer(s) given copies of their own", path, copies)
    return copies
