"""The locked stack works: every engine imports and runs a tiny ONNX model built here.

The reference output is computed with NumPy from the same weights, so each engine is checked
against an outside reference, not against another engine.
"""

from __future__ import annotations

import importlib
import os
import platform

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import baselines
import gmp
import paper
import study

_LINUX_X86 = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[str, np.ndarray, np.ndarray]:
    """y = relu(x @ W + b) with x: (2, 8) float32 -> y: (2, 4); returns (path, input, expected)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every engine in the stack
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, str(path))
    return str(path), x, np.maximum(x @ w + b, 0.0)


@pytest.mark.parametrize("package", [gmp, study, baselines, paper])
def test_each_package_states_its_responsibility(package):
    assert package.__doc__ and "Responsibility" in package.__doc__


def test_analytics_are_disabled_before_deepsparse_is_imported():
    # Importing `study` or `baselines` sets it; the deepsparse import below relies on that.
    assert os.environ.get("NM_DISABLE_ANALYTICS") == "1"


def test_torchvision_runs_with_the_registry_torch():
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 1000)


def test_sparseml_pytorch_imports():
    module = importlib.import_module("sparseml.pytorch.optim")
    assert hasattr(module, "ScheduledModifierManager")


def test_onnxruntime_runs_the_tiny_model(tiny_model):
    import onnxruntime as ort

    path, x, expected = tiny_model
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_openvino_runs_the_tiny_model_in_f32(tiny_model):
    import openvino as ov

    path, x, expected = tiny_model
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    y = compiled(x)[0]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not _LINUX_X86, reason="DeepSparse ships Linux x86-64 wheels only")
def test_deepsparse_runs_the_tiny_model(tiny_model):
    import deepsparse

    path, x, expected = tiny_model
    engine = deepsparse.compile_model(path, batch_size=2, num_cores=1)
    (y,) = engine([x])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
