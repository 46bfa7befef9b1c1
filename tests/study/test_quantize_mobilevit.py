"""torch.ao FX QAT on MobileViT-xs: its MobileViT blocks stay fp32, the rest is int8, zeros kept.

FX symbolic tracing cannot follow timm's ``MobileVitBlock.forward`` (it branches on the input's
height and width), so :func:`study.make.quantize.qat_torch` keeps those blocks as fp32 leaves. The
references: ONNX Runtime on the exported file against the converted torch module, and NumPy
counts of the pruned fp32 model's zeros.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch.utils.data import Subset

from study.make.data import digits, loaders
from study.make.models import build_model
from study.make.quantize import (
    QatConfig,
    check_int8_zeros,
    export_int8_torch,
    fx_leaf_modules,
    is_quantized,
    qat_torch,
)
from study.variants import oneshot_prune

SIZE = 64  # MobileViT-xs's smallest input


@pytest.fixture(scope="module")
def pruned() -> torch.nn.Module:
    return oneshot_prune(build_model("mobilevit_xs", num_classes=10, seed=0), 0.5)


@pytest.fixture(scope="module")
def result(pruned):
    train, val = digits(image_size=SIZE, channels=3, seed=0)
    tl, vl = loaders(Subset(train, range(16)), Subset(val, range(16)), batch_size=16, seed=0)
    config = QatConfig(epochs=1, batch_size=16)
    return qat_torch(pruned, tl, vl, config, example_input=torch.zeros(1, 3, SIZE, SIZE))


@pytest.fixture(scope="module")
def int8_file(result, tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "mobilevit-int8.onnx"
    return export_int8_torch(result.model, path, (1, 3, SIZE, SIZE), opset=14, dynamic_batch=True)


def test_mobilevit_blocks_are_the_fx_leaves(pruned):
    assert list(fx_leaf_modules(pruned)) == ["timm.models.mobilevit.MobileVitBlock"]


def test_file_is_int8_outside_the_blocks_and_keeps_every_zero(pruned, int8_file):
    assert is_quantized(int8_file)
    check = check_int8_zeros(pruned, int8_file)
    blocks = {f"stages.{i}.1." for i in (2, 3, 4)}  # the three MobileViT blocks of mobilevit_xs
    left_fp32 = [m.split(":")[0] for m in check.mismatches]
    assert left_fp32 and all(name[: len("stages.2.1.")] in blocks for name in left_fp32)
    assert all("not quantized: fp32 initializer" in m for m in check.mismatches)
    # Every other prunable weight is an int8 weight holding the pruned zeros.
    outside = [n for n in check.torch_zeros if n[: len("stages.2.1.")] not in blocks]
    assert outside and all(n in check.matches for n in outside)
    assert all(check.onnx_zeros[n] >= check.torch_zeros[n] for n in outside)
    opsets = [o.version for o in onnx.load(str(int8_file)).opset_import if o.domain == ""]
    assert opsets == [14]


def test_ort_runs_the_file_as_the_converted_module(result, int8_file):
    import onnxruntime as ort

    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = result.model(x).numpy()
    session = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    scale = float(np.abs(expected).max())
    assert float(np.abs(got - expected).max()) <= 0.1 * scale  # int8 rounding (worker's INT8_RTOL)
