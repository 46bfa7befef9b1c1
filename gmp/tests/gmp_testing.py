"""Helpers of gmp's own tests: a small CNN, seeded synthetic data and one training loop.

Pure torch: these tests run in an environment holding only torch-gmp, torch, numpy and pytest.
(The project's SparseML comparisons, in the repository's ``tests/gmp``, train on real digits.)
"""

from __future__ import annotations

import torch
from torch import nn

from gmp.report import layer_zeros


class SmallCNN(nn.Module):
    """Two convs and two linears on 1x8x8 inputs (conv1 has 1 input channel: padded block4)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):  # x: (B, 1, 8, 8)
        x = torch.relu(self.conv1(x))  # (B, 8, 8, 8)
        x = self.pool(torch.relu(self.conv2(x)))  # (B, 16, 4, 4)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))  # (B, 10)


def make_cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN()


def batches(n_steps: int, batch: int = 32, seed: int = 0, offset: int = 0):
    """``n_steps`` seeded (x, y) batches of 1x8x8 inputs whose labels a fixed linear map sets.

    Batch ``i`` is the same whatever ``n_steps`` is; ``offset`` shifts the index (``offset=99``
    gives batches no other call with ``offset=0`` and fewer than 99 steps sees).
    """
    teacher = torch.randn(64, 10, generator=torch.Generator().manual_seed(1234))
    out = []
    for i in range(offset, offset + n_steps):
        g = torch.Generator().manual_seed(seed * 100_003 + i)
        x = torch.randn(batch, 1, 8, 8, generator=g)  # (batch, 1, 8, 8)
        y = (x.flatten(1) @ teacher).argmax(1)  # (batch,)
        out.append((x, y))
    return out


def train(model, optimizer, data, params="__ALL_PRUNABLE__"):
    """One optimizer step per batch; returns the zeros per layer after every step."""
    history = []
    loss_fn = nn.CrossEntropyLoss()
    for x, y in data:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        history.append(layer_zeros(model, params))
    return history
