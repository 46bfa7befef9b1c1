"""Tests of study.make.export and baselines.export: both exporters keep every zero of a pruned CNN."""

from __future__ import annotations

import zlib

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn.utils import prune

from baselines.export import export_sparseml
from study.make.export import check_zeros, export_torch, gzip_size, initializer_zeros, zero_holder

SHAPE = (1, 3, 8, 8)


def _pruned_cnn() -> nn.Module:
    """Conv+BN twice and a linear head, 70% magnitude-pruned, BN statistics non-trivial."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )
    for index in (0, 3, 7):
        prune.l1_unstructured(model[index], "weight", amount=0.7)
        prune.remove(model[index], "weight")
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *SHAPE[1:]))  # move BN running stats away from 0/1
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return _pruned_cnn()


@pytest.fixture(scope="module")
def torch_onnx(model, tmp_path_factory):
    return export_torch(model, tmp_path_factory.mktemp("t") / "m.onnx", SHAPE)


@pytest.fixture(scope="module")
def sparseml_onnx(model, tmp_path_factory):
    return export_sparseml(model, tmp_path_factory.mktemp("s") / "m.onnx", SHAPE)


def _ops(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_torch_exporter_folds_batchnorm_and_keeps_zeros(model, torch_onnx):
    assert "BatchNormalization" not in _ops(torch_onnx)
    check = check_zeros(model, torch_onnx)
    # torch.nn.utils.prune zeroes round(0.7 * n): 0.7*216 -> 151, 0.7*576 -> 403, 0.7*5120 -> 3584.
    assert check.torch_zeros == {"0.weight": 151, "3.weight": 403, "7.weight": 3584}
    assert check.ok and check.mismatches == ()
    assert check.onnx_zeros == check.torch_zeros
    # Folded conv weights get generated names; the linear layer keeps its own.
    assert check.matches["7.weight"] == "7.weight" and check.matches["0.weight"] != "0.weight"


def test_sparseml_exporter_keeps_batchnorm_names_and_zeros(model, sparseml_onnx):
    assert _ops(sparseml_onnx).count("BatchNormalization") == 2
    check = check_zeros(model, sparseml_onnx)
    assert check.ok and check.onnx_zeros == check.torch_zeros
    assert check.matches == {"0.weight": "0.weight", "3.weight": "3.weight", "7.weight": "7.weight"}


def test_batch_dimension_static_for_torch_dynamic_for_sparseml(torch_onnx, sparseml_onnx):
    def batch_dim(path):
        return onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]

    assert batch_dim(torch_onnx).dim_value == 1
    assert batch_dim(sparseml_onnx).dim_param == "batch"
    opsets = {
        str(p): onnx.load(str(p)).opset_import[0].version for p in (torch_onnx, sparseml_onnx)
    }
    assert list(opsets.values()) == [13, 14]


def test_exports_compute_the_same_function(model, torch_onnx, sparseml_onnx):
    import onnxruntime as ort

    x = torch.randn(*SHAPE)
    with torch.no_grad():
        expected = model(x).numpy()
    for path in (torch_onnx, sparseml_onnx):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_initializer_zeros_counts_each_initializer(sparseml_onnx):
    counts = initializer_zeros(sparseml_onnx)
    assert counts["7.weight"] == (5120, 3584)
    assert counts["1.running_var"] == (8, 0)


def test_check_zeros_reports_lost_zeros(model, sparseml_onnx, tmp_path):
    proto = onnx.load(str(sparseml_onnx))
    for init in proto.graph.initializer:
        if init.name == "3.weight":
            dense = numpy_helper.to_array(init).copy()
            dense[dense == 0] = 0.5
            init.CopyFrom(numpy_helper.from_array(dense, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    check = check_zeros(model, broken)
    assert not check.ok
    assert check.mismatches == ("3.weight: 403 of its 403 zeros are non-zero in ONNX",)


def test_export_refuses_active_pruning(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    with pytest.raises(ValueError, match="finalize the pruner"):
        export_torch(model, tmp_path / "m.onnx", (1, 4))
    with pytest.raises(ValueError, match="finalize the pruner"):
        export_sparseml(model, tmp_path / "m.onnx", (1, 4))


def test_export_rejects_bad_input_shape(model, tmp_path):
    with pytest.raises(ValueError, match="`input_shape` must be a tuple of positive integers"):
        export_torch(model, tmp_path / "m.onnx", (0, 3, 8, 8))


def test_gzip_size_is_deflate_level_9_plus_gzip_framing(torch_onnx):
    # RFC 1952: a gzip member is a 10-byte header, the raw deflate stream and an 8-byte trailer.
    raw = torch_onnx.read_bytes()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(raw) + compressor.flush()
    assert gzip_size(torch_onnx) == len(deflated) + 18
    assert gzip_size(torch_onnx) < len(raw)


class _SquareAttentionProj(torch.nn.Module):
    """x @ W.T as a MatMul with a square, transposed initializer (as timm's attention proj exports)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(16, 16, bias=False)

    def forward(self, x):
        return torch.matmul(x, self.proj.weight.t())


def test_check_zeros_matches_square_weights_stored_transposed(tmp_path):
    torch.manual_seed(0)
    model = _SquareAttentionProj().eval()
    with torch.no_grad():
        w = model.proj.weight
        w[w.abs() < w.abs().median()] = 0.0  # an asymmetric zero pattern: W.T differs from W
    path = export_torch(model, tmp_path / "square.onnx", (1, 4, 16))
    inits = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    (stored,) = [a for a in inits if a.shape == (16, 16)]
    assert not np.array_equal(
        stored == 0, model.proj.weight.detach().numpy() == 0
    )  # really transposed
    check = check_zeros(model, path)
    assert check.ok, check.mismatches
    assert check.onnx_zeros["proj.weight"] == int((model.proj.weight == 0).sum())


def test_zero_holder_prefers_the_exact_zero_count_and_skips_used_initializers():
    """The matcher of both zero checks (fp32 files, and int8 files' weights by zero pattern)."""
    zero = np.zeros((3, 4), dtype=bool)
    zero[0, :2] = True  # two zeros, asymmetric: only the transposed view of a (4, 3) can hold them
    exact = np.ones((4, 3))
    exact[:2, 0] = 0.0  # W.T stored: exactly these two zeros
    more = exact.copy()
    more[3, 2] = 0.0  # holds the zeros and one more (rounding can add a zero)
    wrong = np.ones((3, 4))
    wrong[1, 1] = 0.0  # right shape, zeros elsewhere
    inits = {"a_more": more, "b_exact": exact, "c_wrong": wrong}
    assert zero_holder(zero, inits, used=set()) == "b_exact"  # not the first by name
    assert zero_holder(zero, inits, used={"b_exact"}) == "a_more"
    assert zero_holder(zero, inits, used={"a_more", "b_exact"}) is None
    assert zero_holder(zero, {"flat": np.zeros(12)}, used=set()) is None  # same size, other shape
