"""Schedule math and update timing: Zhu & Gupta's formula and SparseML 1.8's step arithmetic.

The bit-for-bit comparison with SparseML's own ``interpolate`` is in the repository's tests/gmp.
"""

from __future__ import annotations

import math

import pytest

from gmp.schedule import interpolate, sparsity_at, step_to_epoch, update_events


def test_cubic_is_zhu_gupta_formula():
    # s = s_f + (s_i - s_f)(1 - x)^3, Zhu & Gupta 2017 eq. (1), at x = 0.25.
    assert sparsity_at(1.0, 0.0, 4.0, 0.1, 0.9) == pytest.approx(0.9 + (0.1 - 0.9) * 0.75**3)


def test_inverse_cubic_clamped_past_end_and_one_shot():
    # SparseML raises TypeError past the end and returns init at epoch=inf; we return final.
    assert interpolate(5.0, 1.0, 4.0, 0.05, 0.9, "inverse_cubic") == 0.9
    assert interpolate(math.inf, 1.0, 4.0, 0.05, 0.9, "inverse_cubic") == 0.9


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="`inter_func` must be one of .*'quadratic'"):
        interpolate(1.0, 0.0, 2.0, 0.0, 0.5, "quadratic")


def test_step_to_epoch_matches_sparseml_wrapper_arithmetic():
    # RecipeManagerStepWrapper: float(steps // spe) + float(steps % spe) / float(spe)
    assert [step_to_epoch(i, 3) for i in range(5)] == [0.0, 1 / 3, 2 / 3, 1.0, 1.0 + 1 / 3]


def test_update_steps_drift_off_grid_like_sparseml():
    # spe 3, freq 0.5 epoch: next update at the first step with epoch >= last + 0.5, i.e. every
    # 2 steps (ceil(0.5 * 3)), so 0.667 epochs apart; the forced final update lands on the first
    # step with epoch >= end_epoch (step 12, epoch 4.0), one step after the previous update.
    events = list(update_events(30, 3, 1.0, 4.0, 0.5))
    assert [e.step for e in events] == [3, 5, 7, 9, 11, 12]
    assert [e.final for e in events] == [False] * 5 + [True]


def test_every_step_updates_with_minus_one():
    events = list(update_events(10, 2, 1.0, 3.0, -1.0))
    assert [e.step for e in events] == [2, 3, 4, 5, 6]
