"""A globally pruned MobileViT-xs through both exporters: every pruned weight's zeros in the file.

One global magnitude threshold at 80% (gmp's ``compute_masks``, SparseML's global rule) zeroes
MobileViT-xs's transformer weights entirely: timm initializes them with std 0.02, far below the
convolutions. Torch's exporter stores weights of equal value once, so the raw files keep one
initializer for several of those layers (the "lost zeros" of issue 22). The study's exporters
undo that (``study.onnx.weights``); these tests hold each torch weight against its own ONNX
initializer, zero for zero, and the file's outputs against the torch model under ONNX Runtime.
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from baselines.export import export_sparseml
from gmp.masks import compute_masks, parse_mask_type
from gmp.params import select_params
from study.make.export import check_zeros, export_torch
from study.make.models import build_model
from study.onnx.weights import shared_weights, unshare_weights

SHAPE = (1, 3, 64, 64)  # MobileViT-xs's smallest input (study.make.models: min_train_size 64)


@pytest.fixture(scope="module")
def mobilevit() -> torch.nn.Module:
    """MobileViT-xs, random weights, BN/LN statistics moved off their init, 80% global magnitude.

    The classifier is left dense so the outputs depend on the input; every other prunable weight
    shares one threshold.
    """
    model = build_model("mobilevit_xs", num_classes=10, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():  # non-zero BN scales, as a trained model has
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
        selected = [s for s in select_params(model, "__ALL_PRUNABLE__") if s[0] != "head.fc.weight"]
        weights = [getattr(module, attr) for _, module, attr in selected]
        masks = compute_masks(
            [w.abs() for w in weights],
            [0.8] * len(weights),
            parse_mask_type("unstructured"),
            global_sparsity=True,
        )
        for weight, keep in zip(weights, masks):
            weight.mul_(keep.to(weight.dtype))
    return model.eval()


@pytest.fixture(scope="module")
def files(mobilevit, tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("mobilevit")
    return {
        "torch": export_torch(
            mobilevit, folder / "torch.onnx", SHAPE, opset=14, dynamic_batch=True
        ),
        "sparseml": export_sparseml(mobilevit, folder / "sparseml.onnx", SHAPE, opset=14),
    }


def _torch_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {
        f"{name}.weight": module.weight.detach().numpy()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
    }


def test_global_threshold_zeroes_whole_transformer_layers(mobilevit):
    # The precondition of the bug: several layers of equal shape are entirely zero.
    weights = _torch_weights(mobilevit)
    empty = [n for n, w in weights.items() if not w.any()]
    qkv = [f"stages.3.1.transformer.{i}.attn.qkv.weight" for i in range(4)]
    assert set(qkv) <= set(empty)
    assert {weights[n].shape for n in qkv} == {(360, 120)}


@pytest.mark.parametrize("exporter", ["torch", "sparseml"])
def test_every_pruned_weight_has_its_zeros_in_its_own_initializer(mobilevit, files, exporter):
    path = files[exporter]
    check = check_zeros(mobilevit, path)
    assert check.ok, check.mismatches
    weights = _torch_weights(mobilevit)
    assert set(check.matches) == set(weights)
    assert len(set(check.matches.values())) == len(weights)  # one initializer per layer
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    for name, weight in weights.items():
        stored = inits[check.matches[name]]
        if stored.shape != weight.shape:  # a Linear read by MatMul is stored [in, out]
            stored = stored.T
        # Zero for zero, position for position (BN folding scales by non-zero factors).
        np.testing.assert_array_equal(stored == 0, weight == 0, err_msg=name)
        assert check.onnx_zeros[name] == int((weight == 0).sum()), name
    assert shared_weights(onnx.load(str(path))) == {}


@pytest.mark.parametrize("exporter", ["torch", "sparseml"])
def test_transformer_weights_are_transposed_matmul_initializers(mobilevit, files, exporter):
    graph = onnx.load(str(files[exporter])).graph
    check = check_zeros(mobilevit, files[exporter])
    readers = {i: n.op_type for n in graph.node for i in n.input}
    for i in range(4):
        init = check.matches[f"stages.3.1.transformer.{i}.attn.qkv.weight"]
        assert readers[init] == "MatMul"
        shape = next(tuple(t.dims) for t in graph.initializer if t.name == init)
        assert shape == (120, 360)


def test_raw_torch_export_shares_the_empty_layers(mobilevit, tmp_path):
    # What the exporter does on its own: one initializer for equal all-zero weights.
    raw = tmp_path / "raw.onnx"
    with torch.no_grad():
        torch.onnx.export(
            mobilevit, (torch.zeros(SHAPE),), str(raw), opset_version=14, dynamo=False
        )
    assert shared_weights(onnx.load(str(raw)))
    check = check_zeros(mobilevit, raw)
    assert not check.ok
    assert any("the file stores one tensor for both" in m for m in check.mismatches)


@pytest.mark.parametrize("exporter", ["torch", "sparseml"])
def test_exported_file_computes_the_torch_model(mobilevit, files, exporter):
    import onnxruntime as ort

    x = torch.randn(2, *SHAPE[1:], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = mobilevit(x).numpy()
    session = ort.InferenceSession(str(files[exporter]), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def _shared_graph() -> onnx.ModelProto:
    """Three MatMuls reading one initializer: directly, directly, and through an Identity."""
    w = numpy_helper.from_array(np.zeros((2, 2), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("MatMul", ["a", "w"], ["b"]),
        helper.make_node("Identity", ["w"], ["w_id"]),
        helper.make_node("MatMul", ["b", "w_id"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def test_unshare_gives_each_reader_a_copy_and_drops_the_identity():
    model = _shared_graph()
    assert shared_weights(model) == {"w": 3}
    out, copies = unshare_weights(model)
    onnx.checker.check_model(out)
    assert copies == 2
    assert [n.op_type for n in out.graph.node] == ["MatMul"] * 3
    assert [n.input[1] for n in out.graph.node] == ["w", "w.1", "w.2"]
    assert shared_weights(out) == {}
    assert shared_weights(model) == {"w": 3}  # the input model is not modified
