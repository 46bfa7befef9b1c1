"""Helpers for the comparisons of gmp with SparseML: a small CNN, real digits data, one training loop.

The same loop drives gmp and SparseML, so side-by-side runs differ only in the attached pruner.
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from gmp.report import layer_zeros


class SmallCNN(nn.Module):
    """Two convs and two linears on 8x8 digits; no BatchNorm so exports keep every weight."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def make_cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN()


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


def train(model, optimizer, batches, params="__ALL_PRUNABLE__"):
    """Run one optimizer step per batch; return the zeros per layer after every step."""
    history = []
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        history.append(layer_zeros(model, params))
    return history


@pytest.fixture
def cnn():
    return make_cnn()
