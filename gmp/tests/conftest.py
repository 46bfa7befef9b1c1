"""Fixtures of gmp's own tests (helpers in gmp.testing)."""

from __future__ import annotations

import pytest
import torch

from gmp.testing import make_cnn


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The tensors here are tiny: on a shared 2-core machine a second intra-op thread only waits
    # (a 30-step run took 4x longer with 2 threads under load). No result depends on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cnn():
    return make_cnn()
