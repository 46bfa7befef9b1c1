"""Gradual magnitude pruning by NNCF 3.4 itself (Intel's toolchain) on the shared training loop.

:func:`attach` has the signature of the loop's toolchains (``study.make.train.TOOLCHAINS``). From the
SparseML-style recipe it reads only the overall target sparsity, the pruning window (start and
end epoch) and the learning-rate modifiers (applied by gmp's :class:`gmp.lr.RecipeLR`, exactly as
the gmp and SparseML toolchains get them). Everything else is NNCF's (see ``docs/nncf.md``):

- ranking: ``nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL``, i.e. ``|w| / ||W||_2`` of each
  tensor, one threshold over all of them (``nncf/torch/function_hook/pruning/magnitude/algo.py``);
- coverage: NNCF's default, the weights of every Conv (depthwise included), ConvTranspose,
  Linear, Embedding and MatMul it finds by tracing (``prune_model.py``), no ignored scope;
- schedule: ``ExponentialMagnitudePruningScheduler`` from ratio 0 to the target, stepped once per
  update: ``n = max(1, round(end - start))`` updates after the first, evenly spaced over the window
  (about one per epoch, as NNCF's docs and example step it), the target at the window's end;
- masks: NNCF's ``UnstructuredPruningMask`` hooks multiply the weights in the forward pass; the
  raw weights keep their values (NNCF ranks the raw weights at each update, so a masked weight can
  come back); at :meth:`NNCFPruner.finalize`, ``nncf.strip(strip_format=IN_PLACE)`` writes the
  masks into the weights and the NNCF wrapper is removed.

Example:
    >>> result = study.make.train.train(model, recipe, tl, vl, toolchain="nncf")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from baselines.nncf_common import NNCFError, import_nncf, nncf_step
from baselines.nncf_strip import check_prunable, nncf_masks, unwrap

__all__ = ["NNCFPruneSettings", "NNCFPruner", "attach"]

_MODE = "UNSTRUCTURED_MAGNITUDE_GLOBAL"
_SCHEDULE = "exponential"


@dataclass(frozen=True)
class NNCFPruneSettings:
    """What NNCF was asked to do, for the manifest (``to_dict()``)."""

    # Installed NNCF version.
    nncf_version: str
    # nncf.PruneMode member used.
    mode: str
    # Overall target sparsity over the tensors NNCF prunes (from the recipe).
    target_ratio: float
    # Ratio of the exponential schedule at its first update (NNCF's scheduler argument).
    initial_ratio: float
    # NNCF scheduler: "exponential" (ExponentialMagnitudePruningScheduler).
    schedule: str
    # Pruning window from the recipe, in epochs.
    start_epoch: float
    end_epoch: float
    # The scheduler's target_epoch: updates after the first (its epochs are update indices).
    target_epoch: int
    # Loop epoch at which each update k = 0..target_epoch is applied (first step at or after).
    update_epochs: tuple[float, ...]
    # Ratio NNCF's schedule gives at each update.
    update_ratios: tuple[float, ...]
    # nncf.IgnoredScope names (empty: NNCF's default coverage).
    ignored_scope: tuple[str, ...] = ()
    # Parameters NNCF pruned (known once pruning has started).
    pruned_tensors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain Python values."""
        return asdict(self)


def _read_recipe(recipe: str | Path, model: torch.nn.Module) -> tuple[Any, float, float, float]:
    """``(Recipe, overall target, window start, window end)`` of a recipe's GMP modifiers."""
    from gmp.params import select_params
    from gmp.recipe import load_recipe

    parsed = load_recipe(recipe)
    specs = [s for s in parsed.pruning if s.kind == "gmp"]
    if not specs:
        raise ValueError(
            "`recipe` must hold a GMPruningModifier (or a magnitude pruning modifier) for the "
            f"NNCF toolchain to read its target and window; got modifiers {parsed.pruning!r}"
        )
    numel: dict[str, tuple[int, float]] = {}
    for spec in specs:
        for name, module, attr in select_params(model, spec.params):
            if name in numel:
                raise ValueError(
                    f"`recipe` prunes {name!r} in two modifiers; the NNCF toolchain needs one "
                    "target per tensor to compute the overall sparsity"
                )
            numel[name] = (getattr(module, attr).numel(), spec.final_sparsity)
    finals = {s for _, s in numel.values()}
    if len(finals) == 1:  # one target everywhere: take it as written
        target = finals.pop()
    else:  # per-layer targets: the fraction of the selected weights they zero
        target = sum(n * s for n, s in numel.values()) / sum(n for n, _ in numel.values())
    return parsed, target, min(s.start_epoch for s in specs), max(s.end_epoch for s in specs)


def _schedule(start: float, end: float) -> tuple[int, tuple[float, ...]]:
    """NNCF's target_epoch and the loop epoch of each of its updates (first step at or after)."""
    n = max(1, round(end - start))
    return n, tuple(end if k == n else start + (end - start) * k / n for k in range(n + 1))


def _settings(version: str, target: float, start: float, end: float) -> NNCFPruneSettings:
    """The settings record of a run (its ratios from NNCF's own exponential schedule function)."""
    from nncf.torch.function_hook.pruning.scheduler_fns import exponential_ratio_scheduler

    n, epochs = _schedule(start, end)
    ratios = tuple(
        float(
            exponential_ratio_scheduler(k, initial_ratio=0.0, target_ratio=target, target_epoch=n)
        )
        for k in range(n + 1)
    )
    return NNCFPruneSettings(
        nncf_version=version,
        mode=_MODE,
        target_ratio=float(target),
        initial_ratio=0.0,
        schedule=_SCHEDULE,
        start_epoch=float(start),
        end_epoch=float(end),
        target_epoch=n,
        update_epochs=epochs,
        update_ratios=ratios,
    )


class NNCFPruner:
    """NNCF's gradual pruning attached to a model and optimizer (what :func:`attach` returns).

    Args:
        model: The model to prune (in place).
        optimizer: The optimizer over its parameters; a step pre-hook runs NNCF's updates.
        steps_per_epoch: Optimizer steps per epoch.
        recipe: The parsed recipe (``gmp.recipe.Recipe``), for its LR modifiers and length.
        target: Overall target sparsity, in (0, 1).
        start: First epoch of the pruning window.
        end: Epoch at which the target is reached, > ``start``.

    Attributes:
        optimizer: The optimizer to step (the one passed in; NNCF does not wrap it).
        epochs: Training length in epochs from the recipe.
        lr: The :class:`gmp.lr.RecipeLR` applying the recipe's learning-rate modifiers, or None.
    """

    def __init__(self, model, optimizer, steps_per_epoch, recipe, target, start, end) -> None:
        from gmp.lr import RecipeLR

        nncf = import_nncf()
        check_prunable(model)
        if not 0 < target < 1:
            raise ValueError(
                f"the recipe's overall target sparsity must be in (0, 1); got {target!r}"
            )
        if end <= start:
            raise ValueError(
                f"the recipe's pruning window must have end > start; got {start}..{end}"
            )
        self.model, self.optimizer, self.epochs = model, optimizer, recipe.epochs
        self._spe, self._steps, self._next = steps_per_epoch, 0, 0
        self._nncf, self._scheduler, self._example = nncf, None, None
        self._target_epoch, self._update_epochs = _schedule(start, end)
        self._settings = _settings(str(nncf.__version__), target, start, end)
        self.lr = RecipeLR(optimizer, recipe.lr, steps_per_epoch) if recipe.lr else None
        self._capture = model.register_forward_pre_hook(self._capture_input)
        self._handle = optimizer.register_step_pre_hook(self._pre_step)
        self._finalized = False

    @property
    def settings(self) -> NNCFPruneSettings:
        """The settings record, with the pruned tensors once pruning has started."""
        from dataclasses import replace

        if self._finalized:
            return self._settings
        return replace(self._settings, pruned_tensors=tuple(sorted(nncf_masks(self.model))))

    def _capture_input(self, module: torch.nn.Module, args: tuple) -> None:
        if len(args) != 1 or not isinstance(args[0], torch.Tensor):
            raise NNCFError(
                "the NNCF toolchain traces the model with one sample of its input and needs a "
                f"model called with a single tensor; got {len(args)} positional arguments"
            )
        self._example = args[0][:1].detach().clone()
        self._capture.remove()

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        from gmp.lr import step_epoch

        epoch = step_epoch(self._steps, self._spe)
        due = [
            k
            for k in range(self._next, len(self._update_epochs))
            if epoch >= self._update_epochs[k]
        ]
        if due:
            self._update(due[-1])
            self._next = due[-1] + 1
        self._steps += 1

    def _update(self, k: int) -> None:
        nncf = self._nncf
        mode = nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL
        if self._scheduler is None:
            if self._example is None:
                raise NNCFError("the NNCF toolchain prunes after the first forward pass; none ran")
            from nncf.torch.function_hook.pruning.magnitude.schedulers import (
                ExponentialMagnitudePruningScheduler,
            )

            was_training = self.model.training
            self.model.eval()  # NNCF traces with one sample: BatchNorm statistics must not move
            with nncf_step("nncf.prune"):
                nncf.prune(self.model, mode=mode, ratio=0.0, examples_inputs=self._example)
                self._scheduler = ExponentialMagnitudePruningScheduler(
                    self.model,
                    mode=mode,
                    initial_ratio=0.0,
                    target_ratio=self._settings.target_ratio,
                    target_epoch=self._target_epoch,
                )
            self.model.train(was_training)
        with nncf_step(f"ExponentialMagnitudePruningScheduler.step({k})"):
            self._scheduler.step(k)

    def zeros(self, model: torch.nn.Module) -> dict[str, int]:
        """Zeros of each prunable weight as the forward pass sees them (weight times NNCF's mask)."""
        from gmp.report import layer_zeros

        counts = layer_zeros(model)
        with torch.no_grad():
            for name, mask in nncf_masks(model).items():
                if name in counts:
                    counts[name] = int(((model.get_parameter(name) == 0) | ~mask).sum())
        return counts

    def finalize(self) -> None:
        """Write NNCF's masks into the weights and remove NNCF (:func:`unwrap`). Idempotent."""
        if self._finalized:
            return
        self._handle.remove()
        self._capture.remove()
        if self.lr is not None:
            self.lr.remove()
        self._settings = self.settings
        unwrap(self.model)
        self._finalized = True


def attach(
    recipe: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
) -> NNCFPruner:
    """Attach NNCF gradual magnitude pruning, with the recipe's target, window and learning rate.

    Args:
        recipe: SparseML-style recipe path or YAML text.
        model: The model to prune (in place); called with one tensor.
        optimizer: The optimizer over ``model``'s parameters.
        steps_per_epoch: Optimizer steps per epoch (``len(train_loader)``).

    Returns:
        An :class:`NNCFPruner`; step ``optimizer``, call ``finalize()`` at the end, read
        ``settings`` for the manifest.

    Raises:
        ValueError: If ``steps_per_epoch`` is not a positive int or the recipe has no GMP
            modifier, a target outside (0, 1) or an empty window.
        NNCFError: If NNCF is missing, cannot prune this model, or fails.

    Example:
        >>> pruner = attach("recipe.yaml", model, optimizer, steps_per_epoch=len(loader))  # doctest: +SKIP
    """
    if (
        not isinstance(steps_per_epoch, int)
        or isinstance(steps_per_epoch, bool)
        or steps_per_epoch < 1
    ):
        raise ValueError(f"`steps_per_epoch` must be a positive integer; got {steps_per_epoch!r}")
    parsed, target, start, end = _read_recipe(recipe, model)
    if not math.isfinite(target):
        raise ValueError(f"the recipe's overall target sparsity must be finite; got {target!r}")
    return NNCFPruner(model, optimizer, steps_per_epoch, parsed, target, start, end)
