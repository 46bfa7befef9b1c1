"""Sparsity schedules and SparseML's update timing, as pure functions of an explicit step/epoch.

The schedule is Zhu & Gupta's gradual pruning schedule ("To prune, or not to prune", 2017,
https://arxiv.org/abs/1710.01878): with ``x`` the fraction of the pruning window elapsed,

    s(x) = s_i + y(x) * (s_f - s_i),   y_cubic(x) = 1 - (1 - x)^3,

plus SparseML's ``linear`` (y = x) and ``inverse_cubic`` (y = 1 - (1 - x)^(1/3)) variants.
Timing follows SparseML 1.8 (``ScheduledUpdateModifier.update_ready``): the update for optimizer
step ``i`` (0-based) happens before that step, at epoch ``i / steps_per_epoch``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

__all__ = [
    "SCHEDULES",
    "ScheduleState",
    "UpdateEvent",
    "interpolate",
    "next_update",
    "sparsity_at",
    "step_to_epoch",
    "update_events",
]

# Name -> y(x) on [0, 1], the shape of the sparsity ramp.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "cubic": lambda x: 1 - (1 - x) ** 3,
    "inverse_cubic": lambda x: 1 - (1 - x) ** (1 / 3),
}


def step_to_epoch(step: int, steps_per_epoch: int) -> float:
    """The epoch (with fraction) at which optimizer step ``step`` (0-based) is taken.

    Computed exactly as SparseML's ``RecipeManagerStepWrapper`` does, so float comparisons
    against recipe epochs give the same answer.

    Args:
        step: Number of optimizer steps already taken.
        steps_per_epoch: Optimizer steps in one epoch.

    Returns:
        ``step // spe + (step % spe) / spe`` as a float.

    Example:
        >>> step_to_epoch(7, 5)
        1.4
    """
    return float(step // steps_per_epoch) + float(step % steps_per_epoch) / float(steps_per_epoch)


def interpolate(
    x_cur: float, x0: float, x1: float, y0: float, y1: float, inter_func: str = "cubic"
) -> float:
    """Interpolate from ``y0`` at ``x0`` to ``y1`` at ``x1`` along a named schedule.

    Same arithmetic as ``sparseml.utils.helpers.interpolate`` (y within machine epsilon of 0 or 1
    snaps to ``y0`` / ``y1``), except that x is clamped to [0, 1]: SparseML's ``inverse_cubic``
    crashes past ``x1`` (fractional power of a negative number) and returns ``y0`` for one-shot
    use (``x_cur = inf``); here both give ``y1``. Inside [x0, x1] results are bit-identical.

    Args:
        x_cur: Current position (epoch).
        x0: Start of the window.
        x1: End of the window; must differ from ``x0``.
        y0: Value at ``x0``.
        y1: Value at ``x1``.
        inter_func: A key of :data:`SCHEDULES`.

    Returns:
        The interpolated value.

    Raises:
        ValueError: If ``inter_func`` is unknown.

    Example:
        >>> interpolate(5.0, 0.0, 10.0, 0.0, 0.8, "linear")
        0.4
    """
    if inter_func not in SCHEDULES:
        raise ValueError(f"`inter_func` must be one of {sorted(SCHEDULES)}; got {inter_func!r}")
    x_per = (x_cur - x0) / (x1 - x0)
    x_per = min(max(x_per, 0.0), 1.0)  # the deviation from SparseML: clamp (see docstring)
    y_per = SCHEDULES[inter_func](x_per)
    if y_per <= 0.0 + sys.float_info.epsilon:
        return y0
    if y_per >= 1.0 - sys.float_info.epsilon:
        return y1
    return y_per * (y1 - y0) + y0


def sparsity_at(
    epoch: float,
    start_epoch: float,
    end_epoch: float,
    init_sparsity: float,
    final_sparsity: float,
    inter_func: str = "cubic",
) -> float:
    """The target sparsity at ``epoch``: s_i + y(x)(s_f - s_i), Zhu & Gupta (arXiv 1710.01878).

    Args:
        epoch: Current epoch (float).
        start_epoch: Epoch of the first update (sparsity ``init_sparsity``).
        end_epoch: Epoch at which ``final_sparsity`` is reached.
        init_sparsity: Sparsity at ``start_epoch``.
        final_sparsity: Sparsity from ``end_epoch`` on.
        inter_func: "cubic" (default), "linear" or "inverse_cubic".

    Returns:
        The sparsity, clamped to the window (``init`` before it, ``final`` after it).

    Example:
        >>> round(sparsity_at(5.0, 0.0, 10.0, 0.0, 0.8), 6)  # 0.8 * (1 - 0.5 ** 3)
        0.7
    """
    return interpolate(epoch, start_epoch, end_epoch, init_sparsity, final_sparsity, inter_func)


@dataclass(frozen=True)
class ScheduleState:
    """Where one modifier stands in its schedule (SparseML's started/ended/last update)."""

    # The first update (at or after start_epoch) has been made.
    started: bool = False
    # The final update (at or after end_epoch) has been made; no more updates.
    ended: bool = False
    # Epoch of the last update made; -1.0 before the first.
    last_update_epoch: float = -1.0


@dataclass(frozen=True)
class UpdateEvent:
    """One mask update: when it happens and what it sets."""

    # 0-based optimizer step before which the update happens.
    step: int
    # step_to_epoch(step, steps_per_epoch).
    epoch: float
    # True on the update that reaches end_epoch (final sparsity, end of pruning).
    final: bool


def next_update(
    state: ScheduleState,
    epoch: float,
    start_epoch: float,
    end_epoch: float,
    update_frequency: float,
) -> tuple[ScheduleState, bool, bool]:
    """Decide whether a modifier updates at ``epoch``; SparseML's ``update_ready`` as a function.

    The first update is at the first step with ``epoch >= start_epoch`` (``start_epoch == -1``:
    the first step); later ones at the first step with
    ``epoch >= last_update_epoch + update_frequency`` (``update_frequency == -1``: every step);
    the first step with ``epoch >= end_epoch`` forces the final update and ends the schedule
    (``end_epoch == -1``: never ends).

    Args:
        state: The state before this step.
        epoch: Epoch of this step (see :func:`step_to_epoch`).
        start_epoch: First epoch, or -1 for "from the first step".
        end_epoch: Last epoch, or -1 for "never".
        update_frequency: Epochs between updates, or -1 for every step.

    Returns:
        ``(new_state, update, end)``: the state after this step, whether masks are recomputed
        now, and whether this update ends the schedule.

    Example:
        >>> s, upd, end = next_update(ScheduleState(), 0.0, 0.0, 2.0, 1.0)
        >>> (upd, end, s.started)
        (True, False, True)
    """
    if state.ended:
        return state, False, False
    start_pending = not state.started and (epoch >= start_epoch >= 0.0 or start_epoch == -1.0)
    end_now = epoch >= end_epoch >= 0.0
    regular = (
        state.started
        and epoch > start_epoch
        and (
            update_frequency == -1.0
            or (
                state.last_update_epoch >= 0.0
                and epoch >= state.last_update_epoch + update_frequency
            )
        )
    )
    if not (start_pending or (state.started and end_now) or regular):
        return state, False, False
    ended = end_now and (state.started or start_pending)
    return replace(state, started=True, ended=ended, last_update_epoch=epoch), True, ended


def update_events(
    n_steps: int,
    steps_per_epoch: int,
    start_epoch: float,
    end_epoch: float,
    update_frequency: float,
) -> Iterator[UpdateEvent]:
    """All mask updates of a modifier over ``n_steps`` optimizer steps (closed form for tests/plots).

    Args:
        n_steps: Number of optimizer steps to simulate.
        steps_per_epoch: Optimizer steps per epoch.
        start_epoch: See :func:`next_update`.
        end_epoch: See :func:`next_update`.
        update_frequency: See :func:`next_update`.

    Yields:
        One :class:`UpdateEvent` per update, in step order.

    Example:
        >>> [e.step for e in update_events(10, 2, 1.0, 3.0, 1.0)]
        [2, 4, 6]
    """
    state = ScheduleState()
    for step in range(n_steps):
        epoch = step_to_epoch(step, steps_per_epoch)
        state, update, end = next_update(state, epoch, start_epoch, end_epoch, update_frequency)
        if update:
            yield UpdateEvent(step=step, epoch=epoch, final=end)
