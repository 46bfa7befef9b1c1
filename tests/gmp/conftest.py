"""Helpers for the comparisons of gmp with SparseML: real digits data for gmp.testing's CNN and loop.

The same loop (``gmp.testing.train``) drives gmp and SparseML, so side-by-side runs differ only in
the attached pruner.
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest
import torch
from sklearn.datasets import load_digits

from gmp.testing import make_cnn


def digits_batches(n_steps: int, batch: int = 32, seed: int = 0, offset: int = 0):
    """``n_steps`` (x, y) batches of real 8x8 digits (sklearn, bundled), in a seeded order."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(data.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    out = []
    for i in range(n_steps):
        idx = order[((i + offset) * batch + torch.arange(batch)) % len(x)]
        out.append((x[idx], y[idx]))
    return out


@pytest.fixture
def cnn():
    return make_cnn()
