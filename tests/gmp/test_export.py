"""A model pruned by gmp and finalized exports to ONNX with every zero (needs onnx: root suite)."""

from __future__ import annotations

import torch

from gmp import GMP
from gmp.report import layer_zeros
from gmp.testing import train
from tests.gmp.conftest import digits_batches

SPE = 5


def test_onnx_export_after_finalize_keeps_every_zero(cnn, tmp_path):
    import onnx
    from onnx import numpy_helper

    opt = torch.optim.SGD(cnn.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    pruner = GMP(
        cnn, opt, init_sparsity=0.05, final_sparsity=0.8, start_epoch=1.0, end_epoch=4.0,
        update_frequency=0.4, steps_per_epoch=SPE,
    )  # fmt: skip
    train(cnn, opt, digits_batches(5 * SPE))
    pruner.finalize()
    path = tmp_path / "m.onnx"
    cnn.eval()
    torch.onnx.export(cnn, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, opset_version=13)
    inits = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    onnx_zeros = sum(int((a == 0).sum()) for a in inits if a.ndim >= 2)
    assert onnx_zeros == sum(layer_zeros(cnn).values()) > 0
