"""Tests of baselines.quantize: SparseML's QAT and int8 export, on the same pruned model and data
as the torch path (tests/study/test_quantize.py).

References outside the code under test: ONNX Runtime on the exported file, NumPy counts of the
uint8 weights against their zero point, the fp32 model's zero masks, and torch's own QConfig.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from baselines.quantize import export_int8_sparseml, patch_sparseml_qconfig, qat_sparseml
from gmp.report import layer_zeros
from study.engines import ENGINES, EngineConfig
from study.engines.base import make_inputs
from study.engines.onnxruntime import ort_session
from study.engines.worker import compare_outputs, output_tolerance
from study.make.quantize import (
    QatConfig,
    check_int8_zeros,
    int8_onnx_accuracy,
    int8_weight_zeros,
    is_quantized,
    op_counts,
)
from tests.study.test_quantize import SIZE, pruned_digits_cnn, val_batch


@pytest.fixture(scope="module")
def data():
    return pruned_digits_cnn()[0]


@pytest.fixture(scope="module")
def pruned():
    return pruned_digits_cnn()[1]


@pytest.fixture(scope="module")
def qat(pruned, data, tmp_path_factory):
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))  # catches a sparse_logs/ folder written here
    try:
        result = qat_sparseml(pruned, *data, QatConfig(epochs=1))
        assert os.listdir(".") == []
    finally:
        os.chdir(cwd)
    return result


@pytest.fixture(scope="module")
def int8_file(qat, tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "sparseml-int8.onnx"
    return export_int8_sparseml(qat.model, path, (1, 3, SIZE, SIZE))


def test_qconfig_patch_is_idempotent_and_makes_qconfigs_taggable():
    from sparseml.pytorch.sparsification.quantization import quantization_scheme as qs

    patch_sparseml_qconfig()
    patched = qs._get_qconfig
    patch_sparseml_qconfig()
    assert qs._get_qconfig is patched
    qconfig = qs.QuantizationScheme().get_qconfig()  # raises AttributeError without the patch
    assert isinstance(qconfig, torch.ao.quantization.QConfig)
    assert isinstance(qconfig.quantization_scheme, qs.QuantizationScheme)


def test_qat_sparseml_holds_every_zero_after_every_step(qat, pruned):
    expected = layer_zeros(pruned)
    assert qat.zeros == expected
    # SparseML wraps each layer (0.weight -> 0.module.weight); order and counts are kept.
    assert len(qat.train.steps) == 23
    assert all(list(step.zeros.values()) == list(expected.values()) for step in qat.train.steps)
    assert all(step.lr == pytest.approx(0.01) for step in qat.train.steps)
    assert layer_zeros(pruned) == expected  # the input model was not modified


def test_qat_sparseml_model_is_accurate(qat):
    # One epoch of QAT on the half-pruned small_cnn (0.82 before): 0.96 here (chance is 0.10).
    assert qat.toolchain == "sparseml" and qat.val_accuracy > 0.85


def test_sparseml_int8_file_is_fully_quantized(int8_file):
    onnx.checker.check_model(onnx.load(str(int8_file)))
    assert is_quantized(int8_file)
    # convert_qat=True: SparseML's ONNX-to-DeepSparse transforms turn small_cnn's 3 Conv and its
    # Gemm into ConvInteger/MatMulInteger with int32 bias Add, Cast to float and a scale Mul.
    assert op_counts(int8_file) == {
        "QuantizeLinear": 5,
        "Add": 4,
        "Cast": 4,
        "Mul": 4,
        "ConvInteger": 3,
        "DequantizeLinear": 1,
        "GlobalAveragePool": 1,
        "Flatten": 1,
        "MatMulInteger": 1,
    }


def test_sparseml_int8_zeros_are_the_pruned_zeros(pruned, int8_file):
    check = check_int8_zeros(pruned, int8_file)
    assert check.ok, check.mismatches
    assert check.onnx_zeros == check.torch_zeros == layer_zeros(pruned)
    # SparseML stores weights as uint8 with zero point 128: zeros are 128s (NumPy count).
    graph = onnx.load(str(int8_file)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    zeros = int8_weight_zeros(int8_file)
    for name, (numel, n_zeros) in zeros.items():
        assert inits[name].dtype == np.uint8 and numel == inits[name].size
        assert n_zeros == int(np.count_nonzero(inits[name] == 128))


def test_ort_agrees_with_sparseml_qat_model(qat, data, int8_file):
    images = val_batch(data[1])
    with torch.no_grad():
        qat_top1 = qat.model.eval()(images).argmax(1).numpy()
    (logits,) = ort_session(str(int8_file), 1).run(None, {"input": images.numpy()})
    assert float(np.mean(logits.argmax(1) == qat_top1)) >= 0.95
    assert int8_onnx_accuracy(int8_file, data[1]) == pytest.approx(qat.val_accuracy, abs=0.03)


def test_engines_run_the_sparseml_int8_file(int8_file):
    rtol, _ = output_tolerance("f32", True, 1e-3)
    settings = {}
    for engine in ("openvino", "deepsparse"):
        adapter = ENGINES[engine](EngineConfig(str(int8_file), 1, 1, input_shape=(3, SIZE, SIZE)))
        adapter.load()
        try:
            x = make_inputs(adapter.specs, 0)
            assert compare_outputs(
                adapter.infer(x), ort_session(str(int8_file), 1).run(None, x), rtol
            ).ok
            settings[engine] = adapter.settings()
        finally:
            adapter.close()
    # DeepSparse compiles SparseML's ConvInteger graph itself (1.0 here); recorded, range checked.
    assert 0.0 <= settings["deepsparse"]["fraction_of_supported_ops"] <= 1.0
    assert isinstance(settings["deepsparse"]["cpu_vnni"], bool)
    # OpenVINO reads the graph; what its convolutions ran in is recorded (f32 here: it does not
    # fuse ConvInteger + Cast + Mul back into an int8 convolution).
    assert sum(settings["openvino"]["runtime_precisions"]["Convolution"].values()) == 3
