"""The one training loop shared by every toolchain; only the line that attaches the pruner differs.

A comparison of pruning toolchains is fair only when everything else is shared, so :func:`train`
takes the model (the caller owns the initial weights; the loop never re-initialises), re-seeds
the training loader's shuffle generator and torch's RNG from ``config.seed`` (same data order),
builds the optimizer from ``config`` (same optimizer), and looks the toolchain up in
:data:`TOOLCHAINS`, a plain dict of attach functions:

- ``"gmp"``: ``gmp.GMP.from_recipe(recipe, model, optimizer, steps_per_epoch=...)``.
- ``"sparseml"`` and ``"nncf"``: the vendors' toolchains, registered by ``baselines`` when it is
  imported (:func:`register_toolchain`; ``baselines/toolchains.py``), so this loop imports no
  vendor code: SparseML's ``manager.modify`` (its returned wrapper is the optimizer that gets
  stepped), and Intel's NNCF (its own ranking, layer coverage and schedule; NNCF masks weights in
  the forward pass, so its attach also hands the loop a function counting the zeros it sees).
- ``"dense"``: no pruner and no recipe modifiers at all, learning-rate modifiers included: the
  dense baseline trains with ``config.lr`` under ``config.schedule`` (constant by default; a
  one-cycle or cosine schedule trains the dense checkpoint the pruned variants start from). The
  recipe is only read for its length in epochs when ``config.epochs`` is None.

Pruning toolchains take their learning rate from the recipe's LR modifiers, which both implement
identically; a ``config.schedule`` other than ``"constant"`` would be a second, toolchain-external
schedule on top of them, so it is refused for them. ``config.augment_shift`` (random translation,
:func:`study.make.data.random_shift`) draws from a generator re-seeded from ``config.seed`` at the
start of every run, so every toolchain sees the same augmented batches.

Per step the loop logs loss, learning rate and per-layer zero counts (``gmp.report.layer_zeros``,
which counts zeros in the effective weights of either toolchain); per epoch, validation accuracy.
At the end it finalizes the pruner and checks that no hook added during training remains.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

__all__ = [
    "SCHEDULES",
    "TOOLCHAINS",
    "EpochLog",
    "StepLog",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "train",
]

# Values of TrainConfig.schedule.
SCHEDULES = ("constant", "onecycle", "cosine")
# OneCycleLR's share of steps spent warming up (torch's default), documented in TrainConfig.
_ONECYCLE_PCT_START = 0.3


@dataclass(frozen=True)
class TrainConfig:
    """Everything the loop needs besides the model, the data and the recipe."""

    # Training length in epochs; None takes the recipe's length.
    epochs: int | None = None
    # Batch size the caller's loaders were built with (recorded; the loop does not rebuild them).
    batch_size: int = 64
    # Initial learning rate (recipe LR modifiers, when a toolchain applies them, override it).
    lr: float = 0.05
    # SGD momentum (ignored by Adam).
    momentum: float = 0.0
    # L2 weight decay, passed to the optimizer.
    weight_decay: float = 0.0
    # Nesterov momentum for SGD.
    nesterov: bool = False
    # Seed of torch's RNG and of the training loader's shuffle generator.
    seed: int = 0
    # "sgd" or "adam".
    optimizer: Literal["sgd", "adam"] = "sgd"
    # Log per-layer zero counts every this many steps (0: never).
    log_zeros_every: int = 1
    # Device to train on.
    device: str = "cpu"
    # Learning-rate schedule, stepped after every optimizer step ("dense" toolchain only):
    # "constant" (config.lr throughout); "onecycle" (torch OneCycleLR, max_lr=config.lr: cosine
    # warm-up from lr/25 over the first 30% of the steps (pct_start=0.3), then cosine annealing to
    # lr/2.5e5; momentum not cycled); "cosine" (CosineAnnealingLR from config.lr towards 0).
    schedule: Literal["constant", "onecycle", "cosine"] = "constant"
    # Random translation of each training image by up to this many pixels, zero fill (0: none).
    augment_shift: int = 0


@dataclass(frozen=True)
class StepLog:
    """One optimizer step."""

    # 0-based global step index.
    step: int
    # 0-based epoch the step belongs to.
    epoch: int
    # Training loss of the batch (before the step).
    loss: float
    # Learning rate of the first parameter group, read after the step (the rate the step used).
    lr: float
    # Zeros per prunable weight after the step; empty on steps where zeros were not logged.
    zeros: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochLog:
    """One epoch."""

    # 0-based epoch index.
    epoch: int
    # Top-1 accuracy on the validation loader at the end of the epoch, in [0, 1].
    val_accuracy: float
    # Mean training loss over the epoch's batches.
    train_loss: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome of one :func:`train` run."""

    # Toolchain name ("gmp", "sparseml", "nncf" or "dense").
    toolchain: str
    # The trained model, finalized: plain weights holding the zeros, no pruning hooks.
    model: torch.nn.Module
    # One record per optimizer step.
    steps: tuple[StepLog, ...]
    # One record per epoch.
    epochs: tuple[EpochLog, ...]
    # gmp.SparsityReport of the finalized model.
    report: Any
    # Wall-clock seconds of the training loop (attach to finalize, evaluation included).
    seconds: float
    # The configuration the run used.
    config: TrainConfig = field(default_factory=TrainConfig)
    # The toolchain's own settings record, for the manifest (NNCF's; empty for the others).
    toolchain_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attached:
    """What an attach function hands back to the loop."""

    # The object whose step() advances training (SparseML wraps the optimizer).
    optimizer: Any
    # Training length in epochs from the recipe (rounded up by the loop), or None.
    epochs: float | None
    # Makes pruning permanent and removes hooks.
    finalize: Callable[[], None]
    # Zeros per prunable weight as the forward pass sees them (None: gmp.report.layer_zeros).
    zeros: Callable[[torch.nn.Module], dict[str, int]] | None = None
    # The toolchain's settings record, read after finalize (None: nothing to record).
    settings: Callable[[], dict[str, Any]] | None = None


def _attach_gmp(recipe, model, optimizer, steps_per_epoch) -> Attached:
    import gmp

    pruner = gmp.GMP.from_recipe(recipe, model, optimizer, steps_per_epoch=steps_per_epoch)
    return Attached(optimizer=optimizer, epochs=pruner.epochs, finalize=pruner.finalize)


def _attach_dense(recipe, model, optimizer, steps_per_epoch) -> Attached:
    epochs = None
    if recipe is not None:
        from gmp.recipe import load_recipe

        epochs = load_recipe(recipe).epochs
    return Attached(optimizer=optimizer, epochs=epochs, finalize=lambda: None)


# Toolchain name -> attach(recipe, model, optimizer, steps_per_epoch). The only line that differs.
# The vendors' toolchains join it through register_toolchain (``import baselines`` does it).
TOOLCHAINS: dict[str, Callable[..., Attached]] = {
    "gmp": _attach_gmp,
    "dense": _attach_dense,
}


def register_toolchain(name: str, attach: Callable[..., Attached]) -> None:
    """Let :func:`train` run ``toolchain=name`` by calling ``attach(recipe, model, optimizer,
    steps_per_epoch)``, which returns an :class:`Attached`. Registering a name twice with another
    function is refused (two toolchains under one name would make results ambiguous)."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a toolchain name must be a non-empty string; got {name!r}")
    if TOOLCHAINS.get(name, attach) is not attach:
        raise ValueError(f"toolchain {name!r} is already registered by {TOOLCHAINS[name]!r}")
    TOOLCHAINS[name] = attach


def _check_train_args(
    toolchain: str, recipe, config: TrainConfig, train_loader: DataLoader
) -> None:
    if toolchain not in TOOLCHAINS:
        raise ValueError(
            f"`toolchain` must be one of {sorted(TOOLCHAINS)}; got {toolchain!r}"
            + (
                " (SparseML's and NNCF's register when `baselines` is imported)"
                if toolchain in ("sparseml", "nncf")
                else ""
            )
        )
    if recipe is None and toolchain != "dense":
        raise ValueError(f"`recipe` is required for toolchain {toolchain!r}; got None")
    if config.optimizer not in ("sgd", "adam"):
        raise ValueError(f"`config.optimizer` must be 'sgd' or 'adam'; got {config.optimizer!r}")
    if config.epochs is not None and (not isinstance(config.epochs, int) or config.epochs < 1):
        raise ValueError(
            f"`config.epochs` must be None or a positive integer; got {config.epochs!r}"
        )
    if not isinstance(config.log_zeros_every, int) or config.log_zeros_every < 0:
        raise ValueError(
            f"`config.log_zeros_every` must be an integer >= 0; got {config.log_zeros_every!r}"
        )
    if config.schedule not in SCHEDULES:
        raise ValueError(
            f"`config.schedule` must be one of {list(SCHEDULES)}; got {config.schedule!r}"
        )
    if config.schedule != "constant" and toolchain != "dense":
        raise ValueError(
            f"`config.schedule` {config.schedule!r} is only allowed for the 'dense' toolchain; "
            f"got toolchain {toolchain!r}, which takes its learning rate from the recipe's LR "
            "modifiers (both toolchains implement them): put the schedule in the recipe"
        )
    shift = config.augment_shift
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise ValueError(f"`config.augment_shift` must be an integer >= 0; got {shift!r}")
    if len(train_loader) == 0:
        raise ValueError("`train_loader` must yield at least one batch; got an empty loader")


def _make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def _make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate scheduler of ``schedule`` (None for "constant")."""
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=optimizer.param_groups[0]["lr"],
            total_steps=total_steps,
            pct_start=_ONECYCLE_PCT_START,
            cycle_momentum=False,
        )
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


def _hook_counts(model: torch.nn.Module) -> dict[str, int]:
    """Hooks on each module and parameter; pruning adds some, finalize must remove them."""
    counts = {}
    for name, module in model.named_modules():
        counts[f"module:{name}"] = len(module._forward_pre_hooks) + len(module._forward_hooks)
    for name, param in model.named_parameters():
        counts[f"param:{name}"] = len(param._backward_hooks or {})
    return counts


def _check_finalized(model: torch.nn.Module, hooks_before: dict[str, int], toolchain: str) -> None:
    leftover = [n for n, c in _hook_counts(model).items() if c > hooks_before.get(n, 0)]
    masked = [n for n, _ in model.named_buffers() if n.endswith("_mask")]
    masked += [n for n, _ in model.named_parameters() if n.endswith("_orig")]
    if leftover or masked:
        raise RuntimeError(
            f"toolchain {toolchain!r} left pruning state after finalize: hooks on {leftover}, "
            f"mask tensors {masked}"
        )


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``loader``, in eval mode (the mode is restored after).

    Args:
        model: A classifier returning logits ``[batch, classes]``.
        loader: Yields ``(images, labels)``.
        device: Device to run on.

    Returns:
        The fraction of correctly classified samples, in [0, 1].

    Example:
        >>> evaluate(model, val_loader)  # doctest: +SKIP
        0.93
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in loader:
        logits = model(images.to(device))  # [batch, classes]
        correct += int((logits.argmax(dim=1) == labels.to(device)).sum())
        total += len(labels)
    model.train(was_training)
    return correct / total if total else float("nan")


def train(
    model: torch.nn.Module,
    recipe: str | Path | None,
    train_loader: DataLoader,
    val_loader: DataLoader,
    toolchain: str = "gmp",
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
) -> TrainResult:
    """Train (and prune) ``model`` with one toolchain; everything else is shared.

    Args:
        model: The model to train, modified in place; the caller sets its initial weights.
        recipe: SparseML-style recipe path or YAML text; may be None for ``"dense"``.
        train_loader: Training batches; its shuffle generator is re-seeded with ``config.seed``.
        val_loader: Validation batches, evaluated after each epoch.
        toolchain: A key of :data:`TOOLCHAINS`: ``"gmp"``, ``"sparseml"``, ``"nncf"`` or ``"dense"``.
        config: Optimizer, schedule, augmentation, seed, logging and device settings.
        progress: Show a tqdm progress bar.

    Returns:
        A :class:`TrainResult` whose model is finalized (plain weights with zeros, no hooks).

    Raises:
        ValueError: If the toolchain is unknown, the recipe is missing, a config field is out of
            range, a non-constant schedule is asked of a pruning toolchain, or the number of
            epochs is known neither from ``config`` nor the recipe.
        RuntimeError: If pruning hooks or mask tensors remain after finalize, or finalizing
            changed a layer's zero count.

    Example:
        >>> train_ds, val_ds = study.make.data.digits(image_size=16)  # doctest: +SKIP
        >>> tl, vl = study.make.data.loaders(train_ds, val_ds, batch_size=64)  # doctest: +SKIP
        >>> result = train(model, "recipe.yaml", tl, vl, toolchain="sparseml")  # doctest: +SKIP
    """
    from gmp.report import layer_zeros, sparsity_report
    from study.make.data import random_shift

    _check_train_args(toolchain, recipe, config, train_loader)
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    if train_loader.generator is not None:
        train_loader.generator.manual_seed(config.seed)
    model.to(config.device)
    optimizer = _make_optimizer(model, config)
    steps_per_epoch = len(train_loader)
    hooks_before = _hook_counts(model)
    attached = TOOLCHAINS[toolchain](recipe, model, optimizer, steps_per_epoch)
    epochs = config.epochs or (math.ceil(attached.epochs) if attached.epochs else None)
    if not epochs:
        raise ValueError(
            f"`config.epochs` is None and toolchain {toolchain!r} found no length in the recipe"
        )
    scheduler = _make_scheduler(optimizer, config.schedule, epochs * steps_per_epoch)
    shift_generator = torch.Generator().manual_seed(config.seed)
    count_zeros = attached.zeros or layer_zeros

    step_logs: list[StepLog] = []
    epoch_logs: list[EpochLog] = []
    bar = tqdm(
        total=epochs * steps_per_epoch,
        desc=f"train[{toolchain}]",
        disable=not progress,
        leave=False,
    )
    step = 0
    for epoch in range(epochs):
        model.train()
        losses = []
        for images, labels in train_loader:
            images = random_shift(images, config.augment_shift, shift_generator)
            attached.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images.to(config.device)), labels.to(config.device))
            loss.backward()
            attached.optimizer.step()
            log_zeros = config.log_zeros_every and step % config.log_zeros_every == 0
            zeros = count_zeros(model) if log_zeros else {}
            lr = float(optimizer.param_groups[0]["lr"])
            if scheduler is not None:
                scheduler.step()  # the rate of the next step
            step_logs.append(StepLog(step, epoch, loss.item(), lr, zeros))
            losses.append(loss.item())
            step += 1
            bar.update(1)
        accuracy = evaluate(model, val_loader, config.device)
        epoch_logs.append(EpochLog(epoch, accuracy, sum(losses) / len(losses)))
        bar.set_postfix(epoch=epoch, val_acc=f"{accuracy:.3f}")
    bar.close()
    zeros_before = count_zeros(model)
    attached.finalize()
    _check_finalized(model, hooks_before, toolchain)
    if layer_zeros(model) != zeros_before:
        raise RuntimeError(
            f"toolchain {toolchain!r} changed the zeros when finalizing: {zeros_before} -> {layer_zeros(model)}"
        )
    return TrainResult(
        toolchain=toolchain,
        model=model,
        steps=tuple(step_logs),
        epochs=tuple(epoch_logs),
        report=sparsity_report(model),
        seconds=time.perf_counter() - start,
        config=config,
        toolchain_settings=attached.settings() if attached.settings else {},
    )
