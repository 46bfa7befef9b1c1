"""torch.ao FX QAT on MobileViT-xs: its MobileViT blocks stay fp32, the rest is int8, zeros kept.

FX symbolic tracing cannot follow timm's ``MobileVitBlock.forward`` (it branches on the input's
height and width), so :func:`study.make.quantize.qat_torch` keeps those blocks as fp32 leaves. The
references: ONNX Runtime on each int8 layer of the exported file against the converted torch
module's layer, and NumPy counts of the pruned fp32 model's zeros.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from study.make.models import build_model
from study.make.quantize import (
    check_int8_zeros,
    export_int8_torch,
    fx_leaf_modules,
    is_quantized,
)
from study.variants import oneshot_prune
from tests.study._tiny_qat import tiny_qat

SIZE = 64  # MobileViT-xs's smallest input


@pytest.fixture(scope="module")
def pruned() -> torch.nn.Module:
    return oneshot_prune(build_model("mobilevit_xs", num_classes=10, seed=0), 0.5)


@pytest.fixture(scope="module")
def result(pruned):
    return tiny_qat(pruned, SIZE)


@pytest.fixture(scope="module")
def int8_file(result, tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "mobilevit-int8.onnx"
    return export_int8_torch(result.model, path, (1, 3, SIZE, SIZE), opset=14, dynamic_batch=True)


def test_mobilevit_blocks_are_the_fx_leaves(pruned):
    assert list(fx_leaf_modules(pruned)) == ["timm.models.mobilevit.MobileVitBlock"]


def test_file_is_int8_outside_the_blocks_and_keeps_every_zero(pruned, int8_file):
    assert is_quantized(int8_file)
    check = check_int8_zeros(pruned, int8_file)
    assert check.ok and not check.mismatches, check.mismatches
    blocks = {f"stages.{i}.1." for i in (2, 3, 4)}  # the three MobileViT blocks of mobilevit_xs
    inside = [n for n in check.torch_zeros if n[: len("stages.2.1.")] in blocks]
    # The blocks' weights stay fp32 initializers of their own, each with its zeros ...
    assert inside and sorted(check.fp32) == sorted(inside)
    assert len({check.matches[n] for n in inside}) == len(inside)  # no initializer counted twice
    # ... and every other prunable weight is an int8 weight holding the pruned zeros.
    outside = [n for n in check.torch_zeros if n not in inside]
    assert outside and all(n in check.matches and n not in check.fp32 for n in outside)
    assert all(check.onnx_zeros[n] >= check.torch_zeros[n] for n in check.torch_zeros)
    opsets = [o.version for o in onnx.load(str(int8_file)).opset_import if o.domain == ""]
    assert opsets == [14]


def _int8_layers(model: torch.fx.GraphModule, x: torch.Tensor):
    """``(name, input, output)`` of each quantized Conv2d/Linear of ``model`` on ``x``, in order."""
    from torch.fx.interpreter import Interpreter

    kinds = (torch.ao.nn.quantized.Conv2d, torch.ao.nn.quantized.Linear)
    layers = []

    class Record(Interpreter):
        def call_module(self, target, args, kwargs):
            out = super().call_module(target, args, kwargs)
            if isinstance(self.module.get_submodule(target), kinds):
                # clone: the activation after it may run in place
                layers.append((target, args[0].dequantize(), out.dequantize().clone()))
            return out

    with torch.no_grad():
        Record(model).run(x)
    return layers


def test_ort_runs_each_int8_layer_of_the_file_as_the_converted_module(result, int8_file, tmp_path):
    # Layer by layer, not end to end: this random-init net, one QAT step old, uses few int8 levels
    # and is chaotic in eval mode (moving 0.2% of the input pixels by one input step moves the
    # module's own logits by ~60%), so one-step rounding differences between FBGEMM and ONNX
    # Runtime do not stay small over 24 layers. Each int8 Conv/Gemm of the file (Q -> DQ -> op ->
    # Q -> DQ), run by ONNX Runtime on the module's own input to that layer, must give the
    # module's output to within one int8 step.
    import onnxruntime as ort
    from onnx.utils import extract_model

    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    layers = _int8_layers(result.model, x)
    shaped = tmp_path / "shaped.onnx"  # extract_model needs the shapes of inner tensors
    onnx.shape_inference.infer_shapes_path(str(int8_file), str(shaped))
    graph = onnx.load(str(shaped)).graph
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list] = {}
    for node in graph.node:
        for tensor in node.input:
            users.setdefault(tensor, []).append(node)
    int8_ops = [
        n
        for n in graph.node
        if n.op_type in ("Conv", "Gemm")
        and getattr(producer.get(n.input[1]), "op_type", None) == "DequantizeLinear"
    ]
    assert len(int8_ops) == len(layers) == 24  # outside the three fp32 MobileViT blocks
    for (name, inp, out), node in zip(layers, int8_ops):
        start = producer[producer[node.input[0]].input[0]]  # the activation's QuantizeLinear
        # the output's QuantizeLinear and one of its DequantizeLinear (a copy per user)
        (quant,) = [u for u in users[node.output[0]] if u.op_type == "QuantizeLinear"]
        dequant = next(u for u in users[quant.output[0]] if u.op_type == "DequantizeLinear")
        part = tmp_path / f"{node.name.strip('/').replace('/', '_')}.onnx"
        extract_model(str(shaped), str(part), [start.input[0]], [dequant.output[0]], False)
        session = ort.InferenceSession(str(part), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: inp.numpy()})[0]
        step = result.model.get_submodule(name).scale
        assert float(np.abs(got - out.numpy()).max()) <= 1.001 * step, name
    with torch.no_grad():
        expected = result.model(x).numpy()
    whole = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    got = whole.run(None, {"input": x.numpy()})[0]
    assert got.shape == expected.shape and np.isfinite(got).all()
