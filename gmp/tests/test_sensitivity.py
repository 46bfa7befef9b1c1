"""gmp.sensitivity: one-shot per-layer pruning sensitivity.

It returns a pandas DataFrame, so these tests need gmp's ``sensitivity`` extra (pandas, tqdm); the
project's root environment has it and runs them. Without the extra they are skipped, and
test_optional.py checks the ImportError that names the extra instead.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("pandas", reason="gmp.sensitivity needs the [sensitivity] extra (pandas)")
pytest.importorskip("tqdm", reason="gmp.sensitivity needs the [sensitivity] extra (tqdm)")

from gmp.sensitivity import sensitivity  # noqa: E402

LEVELS = (0.1, 0.25, 0.5, 0.9)


def _model() -> nn.Module:
    torch.manual_seed(0)
    # numels: 0.weight 8*12=96, 2.weight 12*12=144, 4.weight 12*3=36 (biases are not prunable).
    return nn.Sequential(
        nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)
    ).eval()


def _bits(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().view(torch.int32) for k, v in model.state_dict().items()}


def _zeros_in(name: str):
    return lambda m: float((m.get_parameter(name) == 0).sum())


def test_exact_zero_counts_per_level():
    model = _model()
    df = sensitivity(model, _zeros_in("2.weight"), levels=LEVELS, progress=False)
    pruned = df[(df.layer == "2.weight") & (df.level > 0)]
    # SparseML's count: round(level * numel) with Python's round (banker's).
    assert pruned.metric.tolist() == [float(round(level * 144)) for level in LEVELS]
    others = df[df.layer != "2.weight"]
    assert (others.metric == 0).all()  # other layers' pruning never touches 2.weight


def test_model_restored_bit_identical():
    model = _model()
    before = _bits(model)
    x = torch.randn(32, 8)
    sensitivity(model, lambda m: m(x).sum().item(), levels=LEVELS, method="random", progress=False)
    sensitivity(model, lambda m: m(x).sum().item(), levels=LEVELS, progress=False)
    after = _bits(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_model_restored_when_metric_raises():
    model = _model()
    before = _bits(model)
    calls = []

    def metric(m):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        sensitivity(model, metric, levels=LEVELS, progress=False)
    after = _bits(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_magnitude_prunes_smallest_weights():
    model = _model()
    weight = model[0].weight.detach().clone()
    df = sensitivity(
        model, lambda m: m[0].weight.abs().sum().item(), levels=LEVELS, params=["0.weight"],
        progress=False,
    )  # fmt: skip
    magnitudes = weight.abs().flatten().sort(descending=True).values
    for level, metric in zip(LEVELS, df[df.level > 0].metric):
        kept = magnitudes[: 96 - round(level * 96)].sum().item()
        assert metric == pytest.approx(kept, rel=1e-6)


def test_random_differs_from_magnitude():
    model = _model()

    def kept_mass(m):
        return m[2].weight.abs().sum().item()

    kwargs = dict(levels=LEVELS, params=["2.weight"], progress=False)
    magnitude = sensitivity(model, kept_mass, method="magnitude", **kwargs)
    random = sensitivity(model, kept_mass, method="random", **kwargs)
    mag, rnd = magnitude[magnitude.level > 0].metric, random[random.level > 0].metric
    # Magnitude pruning keeps the largest weights, so strictly more |w| mass at every level.
    assert (mag.to_numpy() > rnd.to_numpy()).all()
    # Random pruning still zeroes exactly round(level * numel) entries.
    counts = sensitivity(model, _zeros_in("2.weight"), method="random", **kwargs)
    assert counts[counts.level > 0].metric.tolist() == [float(round(lv * 144)) for lv in LEVELS]


def test_random_is_seeded():
    model = _model()
    x = torch.randn(16, 8)
    kwargs = dict(levels=LEVELS, method="random", progress=False)
    a = sensitivity(model, lambda m: m(x).sum().item(), seed=3, **kwargs)
    b = sensitivity(model, lambda m: m(x).sum().item(), seed=3, **kwargs)
    c = sensitivity(model, lambda m: m(x).sum().item(), seed=4, **kwargs)
    assert a.equals(b)
    assert not a.metric.equals(c.metric)


def test_frame_shape_and_baseline():
    model = _model()
    x = torch.randn(16, 8)
    baseline = model(x).sum().item()
    df = sensitivity(model, lambda m: m(x).sum().item(), levels=LEVELS, progress=False)
    assert list(df.columns) == ["layer", "numel", "level", "method", "metric"]
    assert len(df) == 3 * (len(LEVELS) + 1)
    assert df.layer.unique().tolist() == ["0.weight", "2.weight", "4.weight"]
    assert df.groupby("layer").numel.first().to_dict() == {
        "0.weight": 96, "2.weight": 144, "4.weight": 36,
    }  # fmt: skip
    assert (df[df.level == 0].metric == baseline).all()
    assert set(df.method) == {"magnitude"}


def test_top_n_keeps_largest_layers():
    df = sensitivity(_model(), lambda m: 0.0, levels=(0.5,), top_n=2, progress=False)
    assert df.layer.unique().tolist() == ["0.weight", "2.weight"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(levels=(0.5, 1.0)), r"`levels` entries must be numbers in \[0, 1\); got 1.0"),
        (dict(levels=()), r"`levels` must be a non-empty sequence"),
        (dict(method="l1"), r"`method` must be one of \('magnitude', 'random'\); got 'l1'"),
        (dict(top_n=0), r"`top_n` must be None or an int >= 1; got 0"),
        (dict(params=["re:decoder.*"]), r"matches no parameter"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sensitivity(_model(), lambda m: 0.0, progress=False, **kwargs)


def test_metric_must_be_a_number():
    with pytest.raises(ValueError, match="`metric_fn` must return a number"):
        sensitivity(_model(), lambda m: "good", progress=False)
