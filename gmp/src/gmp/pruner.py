"""The one stateful object: attach gradual magnitude pruning to a model and its optimizer.

``GMP`` reproduces SparseML 1.8's ``GMPruningModifier`` / ``GlobalMagnitudePruningModifier`` /
``ConstantPruningModifier`` step for step (same update steps, same zero counts, same masks, same
weights), on top of ``torch.nn.utils.prune``: each selected parameter ``w`` becomes
``w_orig * w_mask`` (``w_mask`` a 0/1 buffer of the weight's dtype), recomputed by prune's forward
pre-hook. Masks are updated in an optimizer *step pre-hook*, i.e. before optimizer step ``i`` at
epoch ``i / steps_per_epoch``, exactly when SparseML's wrapped ``optimizer.step`` updates them.

Why the results equal SparseML's: the gradient reaching ``w_orig`` is ``grad(w) * mask`` (SparseML
masks the gradient with a hook), unpruned entries see the same optimizer arithmetic, and masks
only grow, so the values ``w_orig`` keeps at pruned positions never reach the model. Masks are
scored on ``|w_orig * w_mask|``, which is SparseML's ``|param.data|`` (zeros where pruned).
Element-wise optimizers (SGD, Adam, ...) are covered; optimizers that use whole-tensor norms
(LARS/LAMB) see the stale ``w_orig`` values and would differ.

Deviations from SparseML (deliberate, documented):
    * ``leave_enabled=False``: at end_epoch SparseML drops its hooks but keeps the optimizer's
      momentum for pruned entries, which then regrow. Here the final mask is made permanent
      after the end step (``prune.remove``) and the optimizer state tensors shaped like the
      parameter (momentum, Adam moments) are zeroed at pruned entries, so nothing regrows by
      itself; gradients may still regrow them (that is what releasing means).
    * Masks only grow: a new mask is AND-ed with the old one. This differs from SparseML only in
      its random tie-break among pre-existing zeros, when it could re-admit a masked zero.
    * inverse_cubic is clamped (see :mod:`gmp.schedule`); N:M masks are permuted back on convs
      (see :mod:`gmp.masks`); N:M schedules must stay within 1e-2 of 1 - N/M (checked up front).
    * ``init_sparsity="__FROM_PARAM__"`` is refused with global scope (SparseML raises later
      whenever the tensors' sparsities differ).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.utils import prune

from gmp.masks import _and_masks_, check_mask_type_fits, parse_mask_type
from gmp.params import select_params
from gmp.schedule import SCHEDULES, ScheduleState, interpolate, next_update, step_to_epoch
from gmp.spec import FROM_PARAM, PruningModifierSpec

__all__ = ["GMP"]

_SCOPES = ("layerwise", "global")


class _MaskedWeight(torch.autograd.Function):
    """``orig * mask`` whose backward masks the incoming gradient in place (no extra tensor)."""

    @staticmethod
    def forward(ctx: Any, orig: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(mask)
        return orig * mask

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad.mul(mask) if not grad.is_contiguous() else grad.mul_(mask), None


class _KeepMask(prune.BasePruningMethod):
    """``torch.nn.utils.prune`` method that installs a given mask (1 = keep, 0 = pruned).

    Same reparametrisation as ``prune.custom_from_mask`` (``weight = weight_orig * weight_mask``,
    the mask a buffer of the weight's dtype), with two differences: it does not keep a reference
    to the mask it was created with, and the gradient is masked in place in backward instead of
    allocating a second weight-sized tensor (this keeps the step overhead at SparseML's level).
    """

    PRUNING_TYPE = "unstructured"

    def __init__(self, mask: Tensor):
        self._initial = mask

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        mask, self._initial = self._initial, None
        return mask

    def apply_mask(self, module: nn.Module) -> Tensor:
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask")
        if torch.is_grad_enabled() and orig.requires_grad:
            return _MaskedWeight.apply(orig, mask)
        return orig * mask


class _DetachAfterForward:
    """Forward hook: keep ``module.<name>`` a detached tensor between forwards.

    prune leaves the masked weight (a non-leaf autograd tensor) on the module, which makes
    ``copy.deepcopy(model)`` fail; the graph of the forward already holds what backward needs.
    """

    def __init__(self, name: str):
        self.name = name

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> None:
        setattr(module, self.name, getattr(module, self.name).detach())


@dataclass
class _Target:
    name: str  # full parameter name, e.g. "features.0.weight"
    module: nn.Module  # owning module
    attr: str  # attribute name, e.g. "weight"
    handle: Any = None  # the _DetachAfterForward hook's handle

    @property
    def mask(self) -> Tensor:
        return getattr(self.module, self.attr + "_mask")

    @property
    def orig(self) -> Tensor:
        return getattr(self.module, self.attr + "_orig")

    @property
    def active(self) -> bool:
        return hasattr(self.module, self.attr + "_mask")


@dataclass
class _Group:
    spec: PruningModifierSpec
    mask_type: tuple
    targets: list[_Target]
    init_sparsities: list[float]
    state: ScheduleState = field(default_factory=ScheduleState)
    release_pending: bool = False
    released: bool = False
    applied_sparsity: float | None = None


class GMP:
    """Gradual magnitude pruning attached to a model and its optimizer (SparseML GMP, exactly).

    Settings come either from ``modifiers`` (one :class:`~gmp.spec.PruningModifierSpec` each,
    e.g. from a recipe; several = per-layer targets) or from keyword arguments for a single
    modifier. Schedules are in epochs (``steps_per_epoch`` required) or in optimizer steps
    (``start_step``/``end_step``/``update_frequency_steps``).

    Args:
        model: The model; the selected parameters get a ``torch.nn.utils.prune`` reparametrisation
            now (all-ones masks until start).
        optimizer: The optimizer that trains ``model``; hooks are registered on it.
        modifiers: Specs to run; exclusive with the keyword settings below.
        steps_per_epoch: Optimizer steps per epoch (needed for epoch-based schedules).
        init_sparsity: Sparsity at the start, in [0, 1), or "__FROM_PARAM__". Default 0.05.
        final_sparsity: Sparsity at the end, in [0, 1). Default 0.9.
        start_epoch: First update epoch. Default 0.
        end_epoch: Epoch at which final_sparsity is forced. Default 10.
        update_frequency: Epochs between updates, or -1 for every step. Default 1.
        start_step: Like start_epoch, in optimizer steps.
        end_step: Like end_epoch, in optimizer steps.
        update_frequency_steps: Like update_frequency, in optimizer steps.
        inter_func: "cubic" (default), "linear" or "inverse_cubic".
        scope: "layerwise" (default) or "global" (one threshold over all selected tensors).
        params: Patterns (see :mod:`gmp.params`). Default "__ALL_PRUNABLE__".
        mask_type: "unstructured" (default), "block4", "N:M" or ``[a, b]``.
        leave_enabled: Keep enforcing masks after the end (default True).

    Raises:
        ValueError: On any invalid setting (the message names the field, value and what is allowed).

    Example:
        >>> model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> pruner = GMP(model, opt, final_sparsity=0.5, start_step=0, end_step=4)
        >>> for _ in range(5):
        ...     opt.zero_grad(); model(torch.randn(4, 8)).sum().backward(); opt.step()
        >>> pruner.finalize()
        >>> int((model[0].weight == 0).sum())
        32
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        modifiers: Sequence[PruningModifierSpec] | None = None,
        steps_per_epoch: int | None = None,
        init_sparsity: float | str | None = None,
        final_sparsity: float | None = None,
        start_epoch: float | None = None,
        end_epoch: float | None = None,
        update_frequency: float | None = None,
        start_step: int | None = None,
        end_step: int | None = None,
        update_frequency_steps: int | None = None,
        inter_func: str | None = None,
        scope: str | None = None,
        params: Sequence[str] | str | None = None,
        mask_type: str | Sequence[int] | None = None,
        leave_enabled: bool | None = None,
    ):
        kw = {
            "init_sparsity": init_sparsity,
            "final_sparsity": final_sparsity,
            "start_epoch": start_epoch,
            "end_epoch": end_epoch,
            "update_frequency": update_frequency,
            "start_step": start_step,
            "end_step": end_step,
            "update_frequency_steps": update_frequency_steps,
            "inter_func": inter_func,
            "scope": scope,
            "params": params,
            "mask_type": mask_type,
            "leave_enabled": leave_enabled,
        }
        if modifiers is not None:
            given = sorted(k for k, v in kw.items() if v is not None)
            if given:
                raise ValueError(f"`modifiers` replaces the keyword settings; got both and {given}")
            specs = list(modifiers)
            if not specs:
                raise ValueError("`modifiers` must hold at least one PruningModifierSpec; got []")
            self._spe = _validate_steps_per_epoch(steps_per_epoch, required=True)
        else:
            specs, self._spe = _specs_from_kwargs(kw, steps_per_epoch)
        for spec in specs:
            _validate_spec(spec)
        self.model = model
        self.optimizer = optimizer
        self.lr = None  # a gmp.lr.RecipeLR when built from a recipe with LR modifiers
        # Training length hint: the latest end (in steps for step schedules); from_recipe sets
        # the recipe's own length.
        self.epochs = max((s.end_epoch for s in specs if s.end_epoch >= 0), default=None)
        self._step = 0
        self._finalized = False
        self._groups = self._build_groups(model, specs)
        self._handles = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(self._post_step),
        ]

    @classmethod
    def from_recipe(
        cls,
        recipe: str | os.PathLike,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        steps_per_epoch: int,
    ) -> GMP:
        """Build from a SparseML-style YAML recipe (path or text), LR modifiers included.

        Args:
            recipe: Path to a YAML file or the YAML text.
            model: The model.
            optimizer: Its optimizer.
            steps_per_epoch: Optimizer steps per epoch.

        Returns:
            The pruner; ``pruner.epochs`` is the recipe's training length and ``pruner.lr`` its
            learning-rate schedule (or None).
        """
        from gmp.recipe import load_recipe

        r = load_recipe(recipe)
        pruner = cls(model, optimizer, modifiers=r.pruning, steps_per_epoch=steps_per_epoch)
        pruner.epochs = r.epochs
        if r.lr:
            from gmp.lr import RecipeLR

            pruner.lr = RecipeLR(optimizer, r.lr, steps_per_epoch)
        return pruner

    # ------------------------------------------------------------------ public state
    @property
    def step(self) -> int:
        """Optimizer steps taken since the pruner was attached (or restored)."""
        return self._step

    @property
    def names(self) -> list[str]:
        """Full names of the pruned parameters, in modifier then model order."""
        return [t.name for g in self._groups for t in g.targets]

    def masks(self) -> dict[str, Tensor]:
        """Current masks (bool, True = keep) of the parameters still under pruning."""
        return {t.name: t.mask.detach() != 0 for g in self._groups for t in g.targets if t.active}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: step, schedule states, masks and the LR schedule."""
        return {
            "version": 1,
            "step": self._step,
            "finalized": self._finalized,
            "groups": [
                {
                    "started": g.state.started,
                    "ended": g.state.ended,
                    "last_update_epoch": g.state.last_update_epoch,
                    "init_sparsities": list(g.init_sparsities),
                    "release_pending": g.release_pending,
                    "released": g.released,
                    "applied_sparsity": g.applied_sparsity,
                }
                for g in self._groups
            ],
            "masks": self.masks(),
            "lr": self.lr.state_dict() if self.lr is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Load it before the model's and the optimizer's state.

        Args:
            state: From :meth:`state_dict` of a pruner built with the same settings.

        Raises:
            ValueError: If the state does not belong to a pruner with these settings.
        """
        if len(state["groups"]) != len(self._groups):
            raise ValueError(
                f"`state` has {len(state['groups'])} modifiers; this pruner has {len(self._groups)}"
            )
        self._step = int(state["step"])
        for g, s in zip(self._groups, state["groups"]):
            g.state = ScheduleState(s["started"], s["ended"], float(s["last_update_epoch"]))
            g.init_sparsities = list(s["init_sparsities"])
            g.release_pending = bool(s["release_pending"])
            g.applied_sparsity = s["applied_sparsity"]
            for t in g.targets:
                if t.name in state["masks"] and t.active:
                    with torch.no_grad():
                        t.mask.copy_(state["masks"][t.name].to(t.mask.device))
            if s["released"] and not g.released:
                self._release(g)
        if self.lr is not None and state.get("lr") is not None:
            self.lr.load_state_dict(state["lr"])
        if state["finalized"]:
            self.finalize()

    def finalize(self) -> None:
        """Make pruning permanent and detach: plain ``weight`` Parameters with zeros, no hooks.

        Removes every reparametrisation (``prune.remove``), the optimizer hooks and the LR
        schedule's hook; zeroes optimizer state at pruned entries; keeps the optimizer pointing
        at the live Parameters so training can go on. Idempotent.
        """
        if self._finalized:
            return
        for g in self._groups:
            if not g.released:
                self._release(g)
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.lr is not None:
            self.lr.remove()
        self._finalized = True

    # ------------------------------------------------------------------ hooks
    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        epoch = step_to_epoch(self._step, self._spe)
        for g in self._groups:
            if g.released:
                continue
            g.state, update, end = next_update(
                g.state, epoch, g.spec.start_epoch, g.spec.end_epoch, g.spec.update_frequency
            )
            if update:
                self._update(g, epoch)
            if end and not g.spec.leave_enabled:
                g.release_pending = True

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for g in self._groups:
            if g.release_pending and not g.released:
                self._release(g)
        self._step += 1

    # ------------------------------------------------------------------ mask work
    @torch.no_grad()
    def _update(self, g: _Group, epoch: float) -> None:
        weights = [t.orig * t.mask for t in g.targets]  # == SparseML's param.data
        masks = [t.mask for t in g.targets]
        if g.spec.kind == "constant":
            for m, w in zip(masks, weights):
                m.mul_((w != 0).view(torch.uint8))  # uint8 multiplies twice as fast as bool
        else:
            sparsities = [
                interpolate(
                    epoch,
                    g.spec.start_epoch,
                    g.spec.end_epoch,
                    s0,
                    g.spec.final_sparsity,
                    g.spec.inter_func,
                )
                for s0 in g.init_sparsities
            ]
            g.applied_sparsity = sparsities[0]
            # masks only grow: each mask is AND-ed with the new one; |w| is 0 where it is 0
            _and_masks_(
                masks, [w.abs_() for w in weights], sparsities, g.mask_type, g.spec.global_sparsity
            )
        del weights
        self._sync_masks(g)

    @torch.no_grad()
    def _sync_masks(self, g: _Group) -> None:
        """Under ``torch.distributed``, give every rank rank 0's masks of group ``g``.

        Each rank has just computed its masks from the same weights (DDP keeps them equal) with
        deterministic tie rules, so they agree already; the broadcast makes it a guarantee.
        Tests record the masks each rank computed by overriding this method.
        """
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for t in g.targets:
                dist.broadcast(t.mask, src=0)

    @torch.no_grad()
    def _release(self, g: _Group) -> None:
        for t in g.targets:
            if not t.active:
                continue
            keep = t.mask
            old = t.orig
            for value in self.optimizer.state.get(old, {}).values():
                if isinstance(value, Tensor) and value.shape == old.shape:
                    value.mul_(keep)
            prune.remove(t.module, t.attr)
            if t.handle is not None:
                t.handle.remove()
                t.handle = None
            new = getattr(t.module, t.attr)
            if new is not old:  # prune.remove reuses the Parameter in torch 2.x; be safe anyway
                _repoint(self.optimizer, old, new)
        g.released = True
        g.release_pending = False

    def _build_groups(self, model: nn.Module, specs: list[PruningModifierSpec]) -> list[_Group]:
        groups, seen = [], {}
        for i, spec in enumerate(specs):
            selected = select_params(model, spec.params)
            mtype = parse_mask_type(spec.mask_type)
            targets = []
            for name, module, attr in selected:
                if name in seen:
                    raise ValueError(
                        f"`params` of modifier {i} selects {name!r}, already pruned by modifier "
                        f"{seen[name]}; allowed: each parameter in one modifier"
                    )
                if hasattr(module, attr + "_mask"):
                    raise ValueError(
                        f"`params` entry {name!r} already has a torch.nn.utils.prune "
                        "reparametrisation; allowed: parameters not pruned yet"
                    )
                seen[name] = i
                check_mask_type_fits(mtype, getattr(module, attr).shape, name)
                targets.append(_Target(name, module, attr))
            if spec.init_sparsity == FROM_PARAM:
                init = [
                    (
                        (getattr(t.module, t.attr) == 0).sum().float()
                        / float(getattr(t.module, t.attr).numel())
                    ).item()
                    for t in targets
                ]  # SparseML's tensor_sparsity(param).item(), float32 rounding included
            else:
                init = [float(spec.init_sparsity)] * len(targets)
            groups.append(_Group(spec, mtype, targets, init))
        for g in groups:
            for t in g.targets:
                p = getattr(t.module, t.attr)
                _KeepMask.apply(t.module, t.attr, torch.ones_like(p))
                setattr(t.module, t.attr, getattr(t.module, t.attr).detach())
                t.handle = t.module.register_forward_hook(_DetachAfterForward(t.attr))
        return groups


def _repoint(optimizer: torch.optim.Optimizer, old: Tensor, new: Tensor) -> None:
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    if old in optimizer.state:
        optimizer.state[new] = optimizer.state.pop(old)


def _validate_steps_per_epoch(value: Any, required: bool) -> int:
    if value is None and not required:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`steps_per_epoch` must be a positive int; got {value!r}")
    return value


def _specs_from_kwargs(kw: dict[str, Any], steps_per_epoch: int | None):
    step_keys = ("start_step", "end_step", "update_frequency_steps")
    epoch_keys = ("start_epoch", "end_epoch", "update_frequency")
    in_steps = any(kw[k] is not None for k in step_keys)
    if in_steps and any(kw[k] is not None for k in epoch_keys):
        raise ValueError(
            f"give the schedule in epochs {epoch_keys} or in steps {step_keys}, not both; got "
            f"{ {k: kw[k] for k in step_keys + epoch_keys if kw[k] is not None} }"
        )
    if in_steps:
        spe = 1  # the schedule runs in step units: "epoch" == step, exactly
        if steps_per_epoch is not None:
            _validate_steps_per_epoch(steps_per_epoch, required=True)
        start, end = kw["start_step"], kw["end_step"]
        freq = kw["update_frequency_steps"]
        for key, v in (("start_step", start), ("end_step", end), ("update_frequency_steps", freq)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ValueError(f"`{key}` must be an int; got {v!r}")
        start = 0 if start is None else start
        end = 10 if end is None else end
        freq = 1 if freq is None else freq
    else:
        spe = _validate_steps_per_epoch(steps_per_epoch, required=True)
        start = 0.0 if kw["start_epoch"] is None else kw["start_epoch"]
        end = 10.0 if kw["end_epoch"] is None else kw["end_epoch"]
        freq = 1.0 if kw["update_frequency"] is None else kw["update_frequency"]
    scope = "layerwise" if kw["scope"] is None else kw["scope"]
    if scope not in _SCOPES:
        raise ValueError(f"`scope` must be one of {_SCOPES}; got {scope!r}")
    params = "__ALL_PRUNABLE__" if kw["params"] is None else kw["params"]
    spec = PruningModifierSpec(
        kind="gmp",
        params=(params,) if isinstance(params, str) else tuple(params),
        init_sparsity=0.05 if kw["init_sparsity"] is None else kw["init_sparsity"],
        final_sparsity=0.9 if kw["final_sparsity"] is None else kw["final_sparsity"],
        start_epoch=float(start),
        end_epoch=float(end),
        update_frequency=float(freq),
        inter_func="cubic" if kw["inter_func"] is None else kw["inter_func"],
        mask_type="unstructured" if kw["mask_type"] is None else kw["mask_type"],
        global_sparsity=scope == "global",
        leave_enabled=True if kw["leave_enabled"] is None else kw["leave_enabled"],
    )
    return [spec], spe


def _check_sparsity(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1); got {value!r}")


def _validate_spec(spec: PruningModifierSpec) -> None:
    """Raise ValueError naming the field, the value and what is allowed."""
    if spec.kind not in ("gmp", "constant"):
        raise ValueError(f"`kind` must be 'gmp' or 'constant'; got {spec.kind!r}")
    mtype = parse_mask_type(spec.mask_type)
    for key in ("start_epoch", "end_epoch", "update_frequency"):
        v = getattr(spec, key)
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
            raise ValueError(f"`{key}` must be a number; got {v!r}")
    if spec.start_epoch < 0 and spec.start_epoch != -1:
        raise ValueError(f"`start_epoch` must be >= 0 or -1 (first step); got {spec.start_epoch!r}")
    if spec.update_frequency <= 0 and spec.update_frequency != -1:
        raise ValueError(
            f"`update_frequency` must be > 0 or -1 (every step); got {spec.update_frequency!r}"
        )
    if spec.kind == "constant":
        if spec.end_epoch != -1 and spec.end_epoch < max(spec.start_epoch, 0):
            raise ValueError(
                f"`end_epoch` must be -1 or >= start_epoch ({spec.start_epoch}); got {spec.end_epoch!r}"
            )
        return
    if spec.start_epoch == -1 or spec.end_epoch <= spec.start_epoch:
        raise ValueError(
            f"`end_epoch` must be > `start_epoch` >= 0 for GMP; got start_epoch="
            f"{spec.start_epoch!r}, end_epoch={spec.end_epoch!r}"
        )
    if spec.inter_func not in SCHEDULES:
        raise ValueError(
            f"`inter_func` must be one of {sorted(SCHEDULES)}; got {spec.inter_func!r}"
        )
    _check_sparsity("final_sparsity", spec.final_sparsity)
    if spec.init_sparsity == FROM_PARAM:
        if spec.global_sparsity:
            raise ValueError(
                f"`init_sparsity` {FROM_PARAM!r} needs layerwise scope; got global_sparsity=True"
            )
    else:
        if isinstance(spec.init_sparsity, str):
            raise ValueError(
                f"`init_sparsity` must be in [0, 1) or {FROM_PARAM!r}; got {spec.init_sparsity!r}"
            )
        _check_sparsity("init_sparsity", spec.init_sparsity)
    if mtype[0] == "nm":
        target = 1 - mtype[1] / mtype[2]
        for key in ("init_sparsity", "final_sparsity"):
            v = getattr(spec, key)
            if v == FROM_PARAM or abs(v - target) > 1e-2:
                raise ValueError(
                    f"`{key}` must be within 1e-2 of {target} for mask_type {spec.mask_type!r}; "
                    f"got {v!r}"
                )
