"""Why the pool over a handful of architectures weights them alike: coverage, simulated.

Each architecture's log B is the mean of k replicate estimates with its own SE on k - 1 dof (the
study's design). Inverse-variance weights built from such SEs favour whichever architecture drew
an accidentally small variance, and the pooled 95% CI under-covers; the equal-weight mean with a
Satterthwaite dof keeps nominal coverage. The simulation draws replicate-level effects (the
level whose variance the study's SEs estimate), vectorised: 4,000 pooled CIs per setting.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from study.stats.meta import common_effect, equal_weight_effect, pool_estimates

N_SIM = 4000


def _draws(k: int, sds: list[float], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(N_SIM, len(sds), k)) * np.asarray(sds)[None, :, None]
    y = x.mean(axis=2)
    v = x.var(axis=2, ddof=1) / k
    return y, v, np.full(len(sds), k - 1.0)


def _coverage(pool, y, v, dof) -> float:
    hits = [pool(yi, vi, dof).ci_low <= 0.0 <= pool(yi, vi, dof).ci_high for yi, vi in zip(y, v)]
    return float(np.mean(hits))


def _vector_coverage(y, v, dof, equal: bool) -> float:
    if equal:
        mu = y.mean(axis=1)
        var = v.sum(axis=1) / y.shape[1] ** 2
        nu = v.sum(axis=1) ** 2 / np.sum(v**2 / dof, axis=1)
    else:
        w = 1.0 / v
        mu = np.sum(w * y, axis=1) / w.sum(axis=1)
        var = 1.0 / w.sum(axis=1)
        share = w / w.sum(axis=1, keepdims=True)
        nu = 1.0 / np.sum(share**2 / dof, axis=1)
    half = scipy.stats.t.ppf(0.975, nu) * np.sqrt(var)
    return float(np.mean(np.abs(mu) <= half))


def test_the_vectorised_pools_are_the_library_functions():
    y, v, dof = _draws(3, [0.02, 0.06], seed=1)
    for i in range(5):
        eq, iv = equal_weight_effect(y[i], v[i], dof), common_effect(y[i], v[i], dof)
        assert eq.estimate == pytest.approx(y[i].mean())
        assert iv.estimate == pytest.approx(np.sum(y[i] / v[i]) / np.sum(1 / v[i]))
    assert _coverage(equal_weight_effect, y[:200], v[:200], dof) == pytest.approx(
        _vector_coverage(y[:200], v[:200], dof, equal=True)
    )


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("sds", [[0.03, 0.03], [0.02, 0.06], [0.02, 0.06, 0.02]])
def test_equal_weights_cover_and_inverse_variance_weights_do_not(k, sds):
    y, v, dof = _draws(k, sds, seed=k * 100 + len(sds))
    equal = _vector_coverage(y, v, dof, equal=True)
    inverse = _vector_coverage(y, v, dof, equal=False)
    # Nominal 95% within 3 points (k = 2, one dof per architecture, is conservative: up to 98.5%)
    assert 0.92 <= equal <= (0.99 if k == 2 else 0.975), equal
    # Inverse-variance weights from few-dof SEs under-cover, by more than the Monte Carlo error
    # (sd of a coverage estimate at 95% over 4,000 draws: 0.35 points).
    assert inverse < 0.925, inverse


def test_pool_estimates_uses_equal_weights_below_five_architectures():
    assert pool_estimates([0.0, 0.1], [1e-4, 4e-4], [2, 2]).kind == "equal"
    assert pool_estimates([0.0, 0.1], [1e-4, 4e-4], [2, 2]).estimate == pytest.approx(0.05)
    assert pool_estimates([0.1], [1e-4], [2]).kind == "single"
    assert pool_estimates([0.0] * 5, [1e-4] * 5, [2] * 5).kind == "random"


def test_equal_weight_pool_refuses_bad_input():
    with pytest.raises(ValueError, match="same length"):
        equal_weight_effect([0.0, 0.1], [1e-4], [2, 2])
    with pytest.raises(ValueError, match="variances > 0"):
        equal_weight_effect([0.0, 0.1], [1e-4, 0.0], [2, 2])
    with pytest.raises(ValueError, match="degrees of freedom > 0"):
        equal_weight_effect([0.0, 0.1], [1e-4, 1e-4], [2, 0])
