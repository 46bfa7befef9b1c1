"""Presets, flags and the model registry: valid input works, bad input names the value."""

from __future__ import annotations

import pytest
import torch

from study.config import PRESETS, load_config
from study.make.models import MODELS, WeightsUnavailableError, build_model, model_names


@pytest.mark.parametrize("preset", PRESETS)
def test_every_shipped_preset_loads(preset):
    cfg = load_config(preset)
    assert cfg.name == preset
    assert set(cfg.models) <= set(MODELS)


def test_quick_preset_is_the_study_in_miniature():
    cfg = load_config("quick")
    assert sum(MODELS[m].in_original_study for m in cfg.models) >= 1
    assert set(cfg.factors) == {
        "pruner",
        "exporter",
        "profile",
        "mask",
        "precision",
        "quantizer",
        "toolchain",
    }
    assert set(cfg.levels("toolchain")) == {"neutral", "neuralmagic", "intel"}
    assert cfg.train.accuracy_gate == 0.9 and cfg.analysis.margin == 0.10
    assert {"onnxruntime", "openvino", "deepsparse"} <= set(cfg.engines)


def test_seed_preset_holds_the_original_seven():
    assert set(load_config("seed").models) == set(model_names(original_only=True))
    assert len(model_names(original_only=True)) == 7


def test_flags_override_the_preset():
    cfg = load_config("quick", {"models": ["small_cnn"], "sweep": [0.5], "engines": None})
    assert cfg.models == ("small_cnn",) and cfg.sweep == (0.5,)
    assert cfg.engines == load_config("quick").engines  # None leaves the preset's value


def test_a_user_preset_file_is_read(tmp_path):
    (tmp_path / "x.yaml").write_text(
        "models: [small_cnn]\nengines: [onnxruntime]\nrecipe: |\n  modifiers: []\n"
    )
    cfg = load_config(tmp_path / "x.yaml")
    assert cfg.name == "x" and cfg.engines == ("onnxruntime",)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"models": ["resnet5"]}, r"unknown model.*resnet5.*valid: resnet50"),
        ({"engines": ["tensorrt"]}, r"`engines` must be .*onnxruntime.*tensorrt"),
        ({"pruners": ["gmp"]}, r"unknown key\(s\) \['pruners'\].*became `factors"),
        ({"sweep": [0.5, 1.0]}, r"in \[0, 1\); got \[1.0\]"),
        ({"data": "/no/such/dir"}, r"`data` must be 'digits' or an ImageFolder.*/no/such/dir"),
        ({"weights": "/no/such.pt"}, r"`weights` must be .*/no/such.pt"),
        ({"bogus": 1}, r"unknown key\(s\) \['bogus'\]"),
        ({"train": {"val_samples": 0}}, r"`train.val_samples` must be null .*; got 0"),
        ({"train": {"train_samples": "64"}}, r"`train.train_samples` must be null .*; got '64'"),
    ],
)
def test_bad_config_names_the_value(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config("quick", overrides)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"one of quick, seed, seven_ci, smoke, seven_hour or a YAML file path; got 'fast'",
    ):
        load_config("fast")


def test_registry_models_are_seeded_and_have_the_requested_head():
    a, b = build_model("small_cnn", seed=3), build_model("small_cnn", seed=3)
    c = build_model("small_cnn", seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a[0].weight, c[0].weight)
    assert a(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_unknown_model_lists_the_registry():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'; valid: resnet50, mobilenetv1"):
        build_model("resnet5")


def test_checkpoint_round_trip_and_bad_paths(tmp_path):
    model = build_model("small_cnn", seed=1)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    loaded = build_model("small_cnn", weights=tmp_path / "w.pt", seed=99)
    assert torch.equal(loaded[0].weight, model[0].weight)
    with pytest.raises(WeightsUnavailableError, match=r"'.*missing.pt' does not exist"):
        build_model("small_cnn", weights=tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match=r"cannot read weights file '.*bad.pt'"):
        build_model("small_cnn", weights=tmp_path / "bad.pt")


def test_pretrained_weights_fail_clearly_offline(monkeypatch):
    import urllib.error

    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(
        WeightsUnavailableError, match=r"'resnet18' .*could not be downloaded.*No network"
    ):
        build_model("resnet18", weights="pretrained")


def test_val_samples_evaluates_on_a_seeded_subset_and_says_so():
    from study.variants import _datasets

    cfg = load_config("seven_ci", {"train": {"val_samples": 40, "train_samples": 64}})
    train, val, classes, name = _datasets(cfg, 8)
    again = _datasets(cfg, 8)[1]
    assert len(train) == 64 and len(val) == 40 and classes == 10
    assert list(val.indices) == list(again.indices)  # seeded: every variant sees the same images
    assert name == "sklearn-digits (held-out 20%, 40 of its 360 images)"
