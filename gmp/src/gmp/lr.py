"""Learning-rate modifiers of SparseML recipes, applied through an optimizer step pre-hook.

Reproduces SparseML 1.8's ``SetLearningRateModifier``, ``LearningRateFunctionModifier`` and
``LearningRateModifier`` (``sparseml/pytorch/sparsification/training/modifier_lr.py``) step for
step: before optimizer step ``i`` the modifiers see ``epoch = i / steps_per_epoch`` (computed as
SparseML's ``RecipeManagerStepWrapper`` does), run in SparseML's modifier order (by end epoch,
``-1`` last, then start epoch) and write ``param_group["lr"]``.

``LearningRateModifier`` drives a ``torch.optim.lr_scheduler`` in SparseML; here the chainable
recurrences of ``StepLR`` and ``MultiStepLR`` (``lr <- lr * gamma`` at the scheduler's step
``k``) are applied directly, because constructing a torch scheduler patches ``optimizer.step``.
``step_size`` and ``milestones`` are given in epochs and converted to steps as SparseML's
``corrected_lr_info`` does (``ExponentialLR`` = ``StepLR`` with ``step_size`` 1 epoch).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

__all__ = ["LR_CLASSES", "LR_FUNCS", "LRModifierSpec", "RecipeLR", "function_lr", "step_epoch"]

LR_FUNCS = ("linear", "cosine", "cyclic_linear")
LR_CLASSES = ("StepLR", "MultiStepLR", "ExponentialLR")
_EPS = sys.float_info.epsilon


@dataclass(frozen=True)
class LRModifierSpec:
    """One learning-rate modifier of a recipe (SparseML 1.8 semantics and defaults)."""

    # "set": SetLearningRateModifier; "function": LearningRateFunctionModifier;
    # "scheduler": LearningRateModifier (a torch StepLR/MultiStepLR/ExponentialLR schedule).
    kind: Literal["set", "function", "scheduler"]
    # First epoch the modifier acts at; -1 means "from the first step".
    start_epoch: float = -1.0
    # Last epoch ("function": required, > start_epoch; "scheduler": -1 = never ends;
    # "set": always -1, SparseML ignores it).
    end_epoch: float = -1.0
    # "set": the learning rate written once at start_epoch, in (0, 1].
    learning_rate: float | None = None
    # "function": "linear", "cosine" or "cyclic_linear".
    lr_func: str | None = None
    # "function": LR at start_epoch, in [0, 1]; "scheduler": LR written at start, in (0, 1].
    init_lr: float | None = None
    # "function": LR at end_epoch, in [0, 1].
    final_lr: float | None = None
    # "function" with "cyclic_linear": epochs per cycle (> 0).
    cycle_epochs: float = 1.0
    # "scheduler": "StepLR", "MultiStepLR" or "ExponentialLR" (StepLR with step_size 1 epoch).
    lr_class: str | None = None
    # "scheduler": multiplicative decay applied at each step_size / milestone.
    gamma: float | None = None
    # "scheduler" StepLR: epochs between decays (rounded to steps).
    step_size: float | None = None
    # "scheduler" MultiStepLR: absolute epochs of the decays, each in (start_epoch, end_epoch).
    milestones: tuple[float, ...] | None = None
    # "set"/"function": indices of the param groups to set; None = all ("scheduler": always all).
    param_groups: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _validate_lr_spec(self)


def _validate_lr_spec(spec: LRModifierSpec) -> None:
    """Checks one spec against SparseML 1.8's own validation rules, with clear messages."""
    name = {"set": "SetLearningRateModifier", "function": "LearningRateFunctionModifier"}.get(
        spec.kind, "LearningRateModifier"
    )
    if spec.kind not in ("set", "function", "scheduler"):
        raise ValueError(f"`kind` must be 'set', 'function' or 'scheduler'; got {spec.kind!r}")
    for field in ("start_epoch", "end_epoch"):
        value = getattr(spec, field)
        if not _is_number(value) or value < -1:
            raise ValueError(f"{name}: `{field}` must be a number >= -1; got {value!r}")
    if spec.param_groups is not None and not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in spec.param_groups
    ):
        raise ValueError(
            f"{name}: `param_groups` must be a list of non-negative ints; got {spec.param_groups!r}"
        )
    if spec.kind == "set":
        _check_lr(name, "learning_rate", spec.learning_rate, allow_zero=False)
        if spec.end_epoch != -1:
            raise ValueError(f"{name}: `end_epoch` must be -1 (unused); got {spec.end_epoch!r}")
    elif spec.kind == "function":
        if spec.lr_func not in LR_FUNCS:
            raise ValueError(f"{name}: `lr_func` must be one of {LR_FUNCS}; got {spec.lr_func!r}")
        _check_lr(name, "init_lr", spec.init_lr, allow_zero=True)
        _check_lr(name, "final_lr", spec.final_lr, allow_zero=True)
        if spec.end_epoch <= spec.start_epoch:
            raise ValueError(
                f"{name}: `end_epoch` must be > start_epoch ({spec.start_epoch!r}); "
                f"got {spec.end_epoch!r}"
            )
        if spec.lr_func == "cyclic_linear" and not (
            _is_number(spec.cycle_epochs) and spec.cycle_epochs > 0
        ):
            raise ValueError(f"{name}: `cycle_epochs` must be > 0; got {spec.cycle_epochs!r}")
    else:
        _validate_scheduler_spec(name, spec)


def _validate_scheduler_spec(name: str, spec: LRModifierSpec) -> None:
    """Checks the fields of a ``LearningRateModifier`` (torch scheduler) spec."""
    if spec.lr_class not in LR_CLASSES:
        raise ValueError(f"{name}: `lr_class` must be one of {LR_CLASSES}; got {spec.lr_class!r}")
    _check_lr(name, "init_lr", spec.init_lr, allow_zero=False)
    if spec.end_epoch != -1 and spec.end_epoch < spec.start_epoch:
        raise ValueError(
            f"{name}: `end_epoch` must be -1 or >= start_epoch ({spec.start_epoch!r}); "
            f"got {spec.end_epoch!r}"
        )
    if not _is_number(spec.gamma):
        raise ValueError(f"{name}: `lr_kwargs.gamma` must be a number; got {spec.gamma!r}")
    if spec.lr_class == "StepLR" and not (_is_number(spec.step_size) and spec.step_size > 0):
        raise ValueError(
            f"{name}: `lr_kwargs.step_size` must be a number > 0 (epochs); got {spec.step_size!r}"
        )
    if spec.lr_class == "MultiStepLR":
        if not spec.milestones or not all(_is_number(m) for m in spec.milestones):
            raise ValueError(
                f"{name}: `lr_kwargs.milestones` must be a non-empty list of epochs; "
                f"got {spec.milestones!r}"
            )
        for mile in spec.milestones:
            if mile <= spec.start_epoch or (spec.end_epoch >= 0 and mile >= spec.end_epoch):
                raise ValueError(
                    f"{name}: `lr_kwargs.milestones` must all lie in (start_epoch, end_epoch) = "
                    f"({spec.start_epoch!r}, {spec.end_epoch!r}); got {list(spec.milestones)!r}"
                )


def _check_lr(name: str, field: str, value: Any, *, allow_zero: bool) -> None:
    """Checks that a learning rate lies in [0, 1] (or (0, 1]) as SparseML requires."""
    low_ok = value >= 0 if allow_zero else value > 0
    if not _is_number(value) or not low_ok or value > 1:
        allowed = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name}: `{field}` must be a number in {allowed}; got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def step_epoch(steps: int, steps_per_epoch: int) -> float:
    """The epoch SparseML's step wrapper reports after ``steps`` optimizer steps.

    Args:
        steps: Optimizer steps taken so far.
        steps_per_epoch: Optimizer steps in one epoch.

    Returns:
        ``steps // spe + (steps % spe) / spe``, computed in that order (bit-identical to SparseML).

    Example:
        >>> step_epoch(5, 4)
        1.25
    """
    return float(steps // steps_per_epoch) + float(steps % steps_per_epoch) / float(steps_per_epoch)


def function_lr(spec: LRModifierSpec, epoch: float, steps_per_epoch: int) -> float:
    """The learning rate a ``LearningRateFunctionModifier`` sets at ``epoch``.

    Args:
        spec: A spec of kind "function".
        epoch: Current (fractional) epoch.
        steps_per_epoch: Optimizer steps per epoch (used by "cyclic_linear").

    Returns:
        linear: ``init + (epoch - start) / (end - start) * (final - init)``; cosine: half a cosine
        period from init to final; cyclic_linear: linear decay restarted every ``cycle_epochs``.

    Example:
        >>> spec = LRModifierSpec("function", 0.0, 10.0, lr_func="linear", init_lr=0.1, final_lr=0.0)
        >>> round(function_lr(spec, 5.0, 100), 6)
        0.05
    """
    start = spec.start_epoch if spec.start_epoch > 0 else 0.0
    end = spec.end_epoch
    init, final = spec.init_lr, spec.final_lr
    if spec.lr_func == "linear":
        return init + ((epoch - start) / (end - start)) * (final - init)
    if spec.lr_func == "cosine":
        x_norm = (epoch - start) / (end - start)
        if final < init:
            y_range, y_shift, x_shift = init - final, final, 0
        else:
            y_range, y_shift, x_shift = final - init, init, math.pi
        return math.cos(x_norm * math.pi + x_shift) * y_range / 2 + y_range / 2 + y_shift
    # cyclic_linear, as SparseML computes it (raw start_epoch, not clamped at 0).
    end_step = spec.end_epoch * steps_per_epoch
    start_step = spec.start_epoch * steps_per_epoch
    cycle_steps = spec.cycle_epochs * steps_per_epoch
    current_step = (epoch - spec.start_epoch) * steps_per_epoch
    if current_step > int((end_step - start_step) / cycle_steps) * cycle_steps:
        cycle_steps = (end_step - start_step) % cycle_steps
    adjusted_step = current_step % cycle_steps
    return init - (adjusted_step / (cycle_steps - 1)) * (init - final)


@dataclass
class _ModifierState:
    """Mutable progress of one LR modifier (mirrors SparseML's private attributes)."""

    started: bool = False
    ended: bool = False
    lr_set: bool = False  # "set": the LR was written
    scheduler_built: bool = False  # "scheduler": SparseML constructed its torch scheduler
    scheduler_epoch: int = 0  # "scheduler": the torch scheduler's last_epoch
    scheduler_steps: int = 0  # "scheduler": SparseML's _scheduler_steps bookkeeping


class RecipeLR:
    """Sets the optimizer's learning rate before every step, as a recipe's LR modifiers would.

    Attaches with ``optimizer.register_step_pre_hook``; ``remove()`` detaches it.

    Args:
        optimizer: The optimizer whose ``param_groups[*]["lr"]`` are written.
        specs: The recipe's LR modifiers (``Recipe.lr``).
        steps_per_epoch: Optimizer steps per epoch (>= 1).

    Raises:
        ValueError: If ``steps_per_epoch`` is not a positive int, a spec is not an
            ``LRModifierSpec``, or a StepLR ``step_size`` rounds to zero steps.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=1.0)
        >>> spec = LRModifierSpec("set", start_epoch=1.0, learning_rate=0.01)
        >>> sched = RecipeLR(opt, [spec], steps_per_epoch=2)
        >>> lrs = []
        >>> for _ in range(3):
        ...     opt.step()
        ...     lrs.append(opt.param_groups[0]["lr"])
        >>> lrs
        [1.0, 1.0, 0.01]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, specs: Any, steps_per_epoch: int) -> None:
        self._specs = _validate_recipe_lr_args(optimizer, specs, steps_per_epoch)
        self._spe = steps_per_epoch
        self._states = [_ModifierState() for _ in self._specs]
        self._steps = 0
        self._optimizer = optimizer
        self._handle = optimizer.register_step_pre_hook(self._pre_step)

    @property
    def steps(self) -> int:
        """Optimizer steps seen so far."""
        return self._steps

    @property
    def epoch(self) -> float:
        """The epoch the next optimizer step will run at."""
        return step_epoch(self._steps, self._spe)

    def state_dict(self) -> dict[str, Any]:
        """Returns the step counter and each modifier's progress (plain Python values)."""
        return {"steps": self._steps, "modifiers": [asdict(state) for state in self._states]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned (for the same specs).

        Raises:
            ValueError: If the state has a different number of modifiers or unknown keys.
        """
        mods = state_dict.get("modifiers")
        if not isinstance(mods, list) or len(mods) != len(self._states):
            raise ValueError(
                f"`state_dict['modifiers']` must list {len(self._states)} modifier states; "
                f"got {mods!r}"
            )
        known = {f.name for f in fields(_ModifierState)}
        for mod in mods:
            if set(mod) != known:
                raise ValueError(
                    f"modifier state must have keys {sorted(known)}; got {sorted(mod)}"
                )
        self._states = [_ModifierState(**mod) for mod in mods]
        self._steps = int(state_dict["steps"])

    def remove(self) -> None:
        """Detaches the hook; the learning rate is no longer changed."""
        self._handle.remove()

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        epoch = step_epoch(self._steps, self._spe)
        for spec, state in zip(self._specs, self._states):
            if _update_ready(spec, state, epoch):
                _apply_update(spec, state, optimizer, epoch, self._spe)
                if _start_pending(spec, state, epoch):
                    state.started = True
                if _end_pending(spec, state, epoch):
                    state.ended = True
        self._steps += 1


def _validate_recipe_lr_args(
    optimizer: Any, specs: Any, steps_per_epoch: Any
) -> tuple[LRModifierSpec, ...]:
    """Checks RecipeLR's arguments; returns the specs in SparseML's modifier order."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"`optimizer` must be a torch.optim.Optimizer; got {type(optimizer)!r}")
    if (
        not isinstance(steps_per_epoch, int)
        or isinstance(steps_per_epoch, bool)
        or steps_per_epoch < 1
    ):
        raise ValueError(f"`steps_per_epoch` must be an int >= 1; got {steps_per_epoch!r}")
    specs = tuple(specs)
    for spec in specs:
        if not isinstance(spec, LRModifierSpec):
            raise ValueError(f"`specs` must hold LRModifierSpec objects; got {spec!r}")
        n_groups = len(optimizer.param_groups)
        if spec.param_groups and max(spec.param_groups) >= n_groups:
            raise ValueError(
                f"`param_groups` {list(spec.param_groups)} of a {spec.kind!r} LR modifier must "
                f"index the optimizer's {n_groups} param group(s)"
            )
        if spec.kind == "scheduler":
            for step in _scheduler_periods(spec, steps_per_epoch):
                if step < 1:
                    raise ValueError(
                        f"LearningRateModifier {spec.lr_class}: `step_size` "
                        f"({spec.step_size if spec.lr_class == 'StepLR' else 1.0} epochs) is "
                        f"less than one step at steps_per_epoch={steps_per_epoch}"
                    )
    # SparseML sorts modifiers by end epoch (-1 = never ends, last), then start epoch; its final
    # tie-break is an md5 of the modifier's properties, here it is the recipe order.
    return tuple(
        sorted(specs, key=lambda s: (math.inf if s.end_epoch == -1 else s.end_epoch, s.start_epoch))
    )


def _scheduler_periods(spec: LRModifierSpec, steps_per_epoch: int) -> tuple[int, ...]:
    """StepLR's step_size in steps (ExponentialLR: one epoch); empty for MultiStepLR."""
    if spec.lr_class == "ExponentialLR":
        return (round(1.0 * steps_per_epoch),)
    if spec.lr_class == "StepLR":
        return (round(spec.step_size * steps_per_epoch),)
    return ()


def _start_pending(spec: LRModifierSpec, state: _ModifierState, epoch: float) -> bool:
    return (
        not state.started
        and not state.ended
        and (epoch >= spec.start_epoch >= 0.0 or spec.start_epoch == -1.0)
    )


def _end_pending(spec: LRModifierSpec, state: _ModifierState, epoch: float) -> bool:
    return not state.ended and state.started and epoch >= spec.end_epoch >= 0.0


def _update_ready(spec: LRModifierSpec, state: _ModifierState, epoch: float) -> bool:
    """SparseML's update_ready: at start, at end, and (not "set") every step in between."""
    if _start_pending(spec, state, epoch) or _end_pending(spec, state, epoch):
        return True
    if spec.kind == "set":
        return False
    return state.started and epoch > spec.start_epoch and not state.ended


def _set_lr(optimizer: torch.optim.Optimizer, lr: float, groups: tuple[int, ...] | None) -> None:
    for index, group in enumerate(optimizer.param_groups):
        if not groups or index in groups:
            group["lr"] = lr


def _apply_update(
    spec: LRModifierSpec,
    state: _ModifierState,
    optimizer: torch.optim.Optimizer,
    epoch: float,
    steps_per_epoch: int,
) -> None:
    """One modifier's ``update()`` (SparseML ``modifier_lr.py``), on the optimizer's groups."""
    if spec.kind == "set":
        if (spec.start_epoch < 0.0 or (spec.start_epoch - epoch) < _EPS) and not state.lr_set:
            _set_lr(optimizer, spec.learning_rate, spec.param_groups)
            state.lr_set = True
    elif spec.kind == "function":
        _set_lr(optimizer, function_lr(spec, epoch, steps_per_epoch), spec.param_groups)
    else:
        _scheduler_update(spec, state, optimizer, epoch, steps_per_epoch)


def _scheduler_update(
    spec: LRModifierSpec,
    state: _ModifierState,
    optimizer: torch.optim.Optimizer,
    epoch: float,
    steps_per_epoch: int,
) -> None:
    """LearningRateModifier.update: init LR, then catch the torch scheduler up to this step."""
    if not state.scheduler_built and spec.init_lr:
        _set_lr(optimizer, spec.init_lr, None)
    if epoch <= _EPS:
        # SparseML defers the first scheduler step to the next update.
        state.scheduler_steps -= 1
        return
    if abs(spec.end_epoch - epoch) <= _EPS and spec.end_epoch >= 0.0:
        return
    if not state.scheduler_built:
        # Constructing a torch scheduler takes an initial step (last_epoch 0) that keeps the LR.
        state.scheduler_built = True
        state.scheduler_epoch = 0
        state.scheduler_steps += round(epoch * steps_per_epoch)
    if spec.end_epoch < 0.0 or epoch <= spec.end_epoch:
        global_step = round(epoch * steps_per_epoch)
    else:
        global_step = round(spec.end_epoch * steps_per_epoch)
    step_diff = global_step - state.scheduler_steps
    if step_diff > 0:
        for _ in range(step_diff):
            state.scheduler_epoch += 1
            factor = _scheduler_factor(spec, state.scheduler_epoch, steps_per_epoch)
            if factor is not None:
                for group in optimizer.param_groups:
                    group["lr"] = group["lr"] * factor
        state.scheduler_steps = global_step


def _scheduler_factor(spec: LRModifierSpec, k: int, steps_per_epoch: int) -> float | None:
    """The chainable torch StepLR/MultiStepLR factor at scheduler step ``k`` (None: unchanged)."""
    if spec.lr_class == "MultiStepLR":
        miles = [round((m - spec.start_epoch) * steps_per_epoch) for m in spec.milestones]
        count = miles.count(k)
        return spec.gamma**count if count else None
    (period,) = _scheduler_periods(spec, steps_per_epoch)
    return spec.gamma if k != 0 and k % period == 0 else None
