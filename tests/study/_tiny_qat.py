"""torch.ao QAT of a pruned model on 16 digits images, one epoch: the fixture the quantization
tests of single architectures share (tests/study/test_quantize_*.py)."""

from __future__ import annotations

import torch
from torch.utils.data import Subset

from study.make.data import digits, loaders
from study.make.quantize import QatConfig, qat_torch


def tiny_qat(pruned: torch.nn.Module, size: int):
    """``qat_torch``'s result for ``pruned`` at ``size`` px (16 training and 16 held-out images)."""
    train, val = digits(image_size=size, channels=3, seed=0)
    tl, vl = loaders(Subset(train, range(16)), Subset(val, range(16)), batch_size=16, seed=0)
    config = QatConfig(epochs=1, batch_size=16)
    return qat_torch(pruned, tl, vl, config, example_input=torch.zeros(1, 3, size, size))
