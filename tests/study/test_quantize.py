"""Tests of study.make.quantize and study.onnx.cleanup: the pure-PyTorch int8 path on real digits.

A small CNN is trained briefly on scikit-learn's digits at 16 px, half of each prunable weight is
pruned by magnitude, and ``qat_torch`` fine-tunes it for one epoch. The references are outside
the code under test: ONNX Runtime (for the exported file), NumPy counts (for zeros) and the
fp32 model's own zero masks.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.utils.data import DataLoader

from gmp.report import layer_zeros
from study.make.data import digits, loaders
from study.make.export import export_torch
from study.make.models import build_model
from study.make.quantize import (
    QatConfig,
    check_int8_zeros,
    export_int8_torch,
    int8_onnx_accuracy,
    int8_weight_zeros,
    is_quantized,
    op_counts,
    qat_torch,
)
from study.make.train import TrainConfig, train
from study.onnx.cleanup import clean_qdq

SIZE = 16  # training resolution of the digits
SPARSITY = 0.5  # fraction of each prunable weight pruned before QAT


@functools.lru_cache(maxsize=1)
def pruned_digits_cnn() -> tuple[tuple[DataLoader, DataLoader], torch.nn.Module]:
    """Digits loaders (16 px, batch 64) and small_cnn trained 4 epochs on them (val accuracy 0.92
    here), then half of every Conv/Linear weight zeroed by magnitude (0.82).

    Cached, so tests/baselines/test_quantize.py starts from the same model in the same session;
    the QAT functions copy it and the tests only read it.
    """
    train_ds, val_ds = digits(image_size=SIZE, channels=3)
    train_loader, val_loader = loaders(train_ds, val_ds, batch_size=64, seed=0)
    model = build_model("small_cnn", num_classes=10, seed=0)
    config = TrainConfig(epochs=4, lr=0.05, momentum=0.9, log_zeros_every=0)
    train(model, None, train_loader, val_loader, toolchain="dense", config=config, progress=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                w = module.weight
                k = int(SPARSITY * w.numel())
                w[w.abs() <= w.abs().flatten().kthvalue(k).values] = 0.0
    return (train_loader, val_loader), model.eval()


def val_batch(val_loader, n: int = 64) -> torch.Tensor:
    return torch.stack([val_loader.dataset[i][0] for i in range(n)])  # [n, 3, 16, 16]


def ort_logits(path, images: torch.Tensor) -> np.ndarray:
    """ONNX Runtime's logits, one image per call (the file's batch may be static)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[None].numpy()})[0] for x in images])


@pytest.fixture(scope="module")
def data():
    return pruned_digits_cnn()[0]


@pytest.fixture(scope="module")
def pruned():
    return pruned_digits_cnn()[1]


@pytest.fixture(scope="module")
def qat(pruned, data):
    return qat_torch(
        pruned, *data, QatConfig(epochs=1), example_input=torch.zeros(1, 3, SIZE, SIZE)
    )


@pytest.fixture(scope="module")
def int8_file(qat, tmp_path_factory):
    return export_int8_torch(
        qat.model, tmp_path_factory.mktemp("q") / "torch-int8.onnx", (1, 3, SIZE, SIZE)
    )


def test_qat_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"`epochs` must be a positive integer; got 0"):
        QatConfig(epochs=0)
    with pytest.raises(ValueError, match=r"`backend` must be 'x86', 'fbgemm' or 'qnnpack'"):
        QatConfig(backend="tensorrt")


def test_qat_torch_holds_every_zero_after_every_step(qat, pruned):
    expected = layer_zeros(pruned)
    assert qat.zeros == expected and sum(expected.values()) > 0
    assert len(qat.train.steps) == 23  # ceil(1437 / 64) steps of one epoch
    assert all(step.zeros == expected for step in qat.train.steps)
    assert all(step.lr == pytest.approx(0.01) for step in qat.train.steps)
    assert layer_zeros(pruned) == expected  # the input model was not modified


def test_qat_torch_int8_model_is_accurate(qat, data):
    # One epoch of QAT on the half-pruned small_cnn (0.82 before): 0.96 here (chance is 0.10).
    assert qat.toolchain == "torch" and qat.val_accuracy > 0.85
    assert abs(qat.val_accuracy - qat.qat_accuracy) < 0.03
    assert any(isinstance(m, torch.ao.nn.quantized.Conv2d) for m in qat.model.modules())


def test_torch_int8_file_is_standard_qdq(int8_file):
    onnx.checker.check_model(onnx.load(str(int8_file)))
    counts = op_counts(int8_file)
    # small_cnn: 3 Conv(+ReLU) and 1 Gemm, each fed by DequantizeLinear of its activation
    # (after QuantizeLinear), of its int8 weight and of its int32 bias.
    assert counts == {
        "DequantizeLinear": 15,
        "QuantizeLinear": 7,
        "Conv": 3,
        "Relu": 3,
        "GlobalAveragePool": 1,
        "Flatten": 1,
        "Gemm": 1,
    }
    graph = onnx.load(str(int8_file)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            act, weight = producer[node.input[0]], producer[node.input[1]]
            assert act.op_type == "DequantizeLinear"
            assert producer[act.input[0]].op_type == "QuantizeLinear"
            assert weight.op_type == "DequantizeLinear" and inits[weight.input[0]].dtype == np.int8


def test_torch_int8_zeros_are_the_pruned_zeros(pruned, int8_file):
    check = check_int8_zeros(pruned, int8_file)
    assert check.ok, check.mismatches
    # Symmetric per-channel int8: a zero weight is int8 0; with half pruned by magnitude no
    # surviving weight is small enough to round to 0, so the counts are exact.
    assert check.onnx_zeros == check.torch_zeros == layer_zeros(pruned)
    zeros = int8_weight_zeros(int8_file)
    assert sorted(z for _, z in zeros.values()) == sorted(layer_zeros(pruned).values())


def test_ort_agrees_with_torch_int8_model(qat, data, int8_file):
    images = val_batch(data[1])
    with torch.no_grad():
        torch_top1 = qat.model(images).argmax(1).numpy()
    agree = float(np.mean(ort_logits(int8_file, images).argmax(1) == torch_top1))
    assert agree >= 0.95
    assert int8_onnx_accuracy(int8_file, data[1]) == pytest.approx(qat.val_accuracy, abs=0.03)


def test_dynamic_batch_export_runs_a_batch(qat, data, tmp_path):
    import onnxruntime as ort

    path = export_int8_torch(
        qat.model, tmp_path / "dyn.onnx", (1, 3, SIZE, SIZE), dynamic_batch=True
    )
    images = val_batch(data[1], 8)
    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": images.numpy()}
    )
    np.testing.assert_allclose(logits, ort_logits(path, images), atol=1e-5)


def test_cleanup_removes_export_debris_and_keeps_outputs(qat, tmp_path):
    import onnxruntime as ort

    raw = tmp_path / "raw.onnx"
    with torch.no_grad():
        torch.onnx.export(
            qat.model, (torch.zeros(1, 3, SIZE, SIZE),), str(raw), opset_version=13, dynamo=False
        )
    before = onnx.load(str(raw))
    result = clean_qdq(before)
    counts_before, counts_after = op_counts(before), op_counts(result.model)
    # What torch 2.15 writes: Q -> Cast(uint8) -> DQ, and biases' zero points as
    # Cast(ConstantOfShape(...)); none of it is left.
    assert counts_before["Cast"] == 11 and counts_before["ConstantOfShape"] == 4
    for op in ("Cast", "ConstantOfShape", "Constant", "Identity"):
        assert op not in counts_after
    assert result.changes["nop_casts"] == 7 and result.changes["constant_of_shape"] == 4
    # Every int8 weight is copied bit for bit.
    raw_weights = sorted(w.tobytes() for w in _int8_constants(before))
    clean_weights = sorted(
        numpy_helper.to_array(i).tobytes()
        for i in result.model.graph.initializer
        if i.data_type == TensorProto.INT8 and len(i.dims) > 1
    )
    assert raw_weights == clean_weights
    onnx.save(result.model, str(tmp_path / "clean.onnx"))
    a = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(tmp_path / "clean.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = {a.get_inputs()[0].name: rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)}
        np.testing.assert_array_equal(a.run(None, x)[0], b.run(None, x)[0])


def _int8_constants(model: onnx.ModelProto) -> list[np.ndarray]:
    arrays = [
        numpy_helper.to_array(a.t)
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    ]
    return [a for a in arrays if a.dtype == np.int8 and a.ndim > 1]


def _qdq_graph(cast_to: int) -> onnx.ModelProto:
    """x -> QuantizeLinear(uint8) -> Cast(cast_to) -> DequantizeLinear -> y."""
    zp = np.array(128, np.uint8) if cast_to == TensorProto.UINT8 else np.array(0, np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zq"], ["q"]),
        helper.make_node("Cast", ["q"], ["c"], to=cast_to),
        helper.make_node("DequantizeLinear", ["c", "s", "zd"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "zq"),
        numpy_helper.from_array(zp, "zd"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    return model


def test_cleanup_removes_only_casts_that_change_nothing():
    assert "Cast" not in op_counts(clean_qdq(_qdq_graph(TensorProto.UINT8)).model)
    # uint8 -> int8 changes values above 127: kept.
    assert op_counts(clean_qdq(_qdq_graph(TensorProto.INT8)).model)["Cast"] == 1


def test_is_quantized(pruned, int8_file, tmp_path):
    fp32 = export_torch(pruned, tmp_path / "fp32.onnx", (1, 3, SIZE, SIZE))
    assert is_quantized(int8_file) and not is_quantized(fp32)
    assert int8_weight_zeros(fp32) == {}


def test_int8_weight_zeros_counts_values_at_the_zero_point():
    # A uint8 weight with per-row zero points (axis 0), as a DequantizeLinear input; and an
    # int8 weight of ConvInteger without a zero point (0). Reference: NumPy counts.
    w_u8 = np.array([[128, 128, 7], [3, 3, 200]], np.uint8)
    zp_u8 = np.array([128, 3], np.uint8)
    w_i8 = np.zeros((2, 1, 1, 1), np.int8)
    w_i8[0] = 5
    nodes = [
        helper.make_node("DequantizeLinear", ["W", "s", "zp"], ["Wd"], axis=0),
        helper.make_node("MatMul", ["x", "Wd"], ["m"]),
        helper.make_node("ConvInteger", ["xi", "V"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(w_u8, "W"),
        numpy_helper.from_array(np.array([0.1, 0.2], np.float32), "s"),
        numpy_helper.from_array(zp_u8, "zp"),
        numpy_helper.from_array(w_i8, "V"),
    ]
    graph = helper.make_graph(nodes, "g", [], [], inits)
    zeros = int8_weight_zeros(helper.make_model(graph))
    assert zeros == {"W": (6, 4), "V": (2, 1)}
