"""Helpers for tests of code that uses gmp: a small CNN, seeded data, one training loop, LR traces.

Pure torch, like gmp itself: gmp's own tests run with them in an environment holding only
torch-gmp, torch, numpy and pytest, and the gmp-bias-study repository's comparisons with SparseML
(which train on real digits instead of :func:`batches`) use the same model, loop and optimizer.

Example:
    >>> from gmp.testing import batches, make_cnn
    >>> x, y = batches(1, batch=4)[0]
    >>> tuple(make_cnn()(x).shape)
    (4, 10)
"""

from __future__ import annotations

import torch
from torch import nn

from gmp.lr import RecipeLR
from gmp.recipe import load_recipe
from gmp.report import layer_zeros

__all__ = ["SmallCNN", "batches", "lr_trace", "make_cnn", "recipe", "two_group_sgd", "train"]


class SmallCNN(nn.Module):
    """Two convs and two linears on 1x8x8 inputs, no BatchNorm (conv1 has 1 input channel: padded
    block4; an export keeps every weight)."""

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
    """A :class:`SmallCNN` initialised under ``torch.manual_seed(seed)``."""
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
    """One optimizer step per (x, y) batch of ``data``; returns the zeros per layer after every step."""
    history = []
    loss_fn = nn.CrossEntropyLoss()
    for x, y in data:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        history.append(layer_zeros(model, params))
    return history


def two_group_sgd() -> torch.optim.Optimizer:
    """SGD (momentum 0.9) over two parameter groups of a seeded 2-layer model, lr 0.3 and 0.4."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    groups = [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.4}]
    return torch.optim.SGD(groups, lr=0.3, momentum=0.9)


def recipe(*modifiers: str) -> str:
    """A recipe's YAML text with ``modifiers`` (each a ``!Tag`` and its indented fields) listed."""
    body = "".join(f"  - {m.strip()}\n" for m in modifiers)
    return "modifiers:\n" + body


def lr_trace(text: str, steps_per_epoch: int, steps: int) -> list[tuple[float, ...]]:
    """Each group's learning rate after every one of ``steps`` steps of :func:`two_group_sgd` under
    the learning-rate modifiers of the recipe ``text`` (:class:`gmp.lr.RecipeLR`)."""
    optimizer = two_group_sgd()
    RecipeLR(optimizer, load_recipe(text).lr, steps_per_epoch)
    lrs = []
    for _ in range(steps):
        optimizer.step()
        lrs.append(tuple(group["lr"] for group in optimizer.param_groups))
    return lrs
