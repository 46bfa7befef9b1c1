"""Pipeline helpers: exact one-shot zero counts, crash-safe JSONL, deterministic names."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from study.make.models import build_model
from study.records.jsonl import append_jsonl, read_jsonl
from study.records.manifest import read_manifest
from study.variants import oneshot_prune


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
def test_oneshot_prune_zeros_round_s_times_numel_per_layer(sparsity):
    model = build_model("small_cnn", seed=0)
    oneshot_prune(model, sparsity)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            w = module.weight
            assert int((w == 0).sum()) == round(sparsity * w.numel())  # Python's round, as SparseML


def test_oneshot_prune_removes_the_smallest_magnitudes():
    model = build_model("small_cnn", seed=0)
    before = model[0].weight.detach().clone().abs().flatten()
    oneshot_prune(model, 0.5)
    after = model[0].weight.detach().flatten()
    kept = before[after != 0]
    dropped = before[after == 0]
    assert kept.min() >= dropped.max()


def test_oneshot_prune_rejects_bad_sparsity():
    with pytest.raises(ValueError, match=r"`sparsity` must be in \[0, 1\); got 1.0"):
        oneshot_prune(build_model("small_cnn"), 1.0)


def test_jsonl_survives_a_truncated_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}, {"a": 2, "t": (1, 2)}])
    with path.open("a") as fh:
        fh.write('{"a": 3, "trunc')  # a crash mid-write
    with pytest.warns(UserWarning, match=r"rows.jsonl:3: skipping an incomplete row"):
        assert read_jsonl(path) == [{"a": 1}, {"a": 2, "t": [1, 2]}]
    append_jsonl(path, [{"a": 4}])  # the fragment is closed first, so the new row survives
    with pytest.warns(UserWarning):
        assert read_jsonl(path)[-1] == {"a": 4}


def test_reading_a_missing_jsonl_names_the_path_unless_allowed(tmp_path):
    with pytest.raises(ValueError, match=r"existing results file; got '.*none.jsonl'"):
        read_jsonl(tmp_path / "none.jsonl")
    assert read_jsonl(tmp_path / "none.jsonl", missing_ok=True) == []


def _image_folder(root, per_class: int = 12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, cls in enumerate(("left", "right")):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            pixels[:, (0 if k == 0 else 8) : (8 if k == 0 else 16)] += (
                150  # the class is the bright half
            )
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def test_an_image_folder_trains_and_prunes_from_its_held_out_split(tmp_path):
    from study.config import load_config
    from study.variants import prepare_model

    folder = _image_folder(tmp_path / "images")
    cfg = load_config(
        "smoke",
        {"data": str(folder), "engines": ["onnxruntime"], "factor_names": ["mask"], "sweep": []},
    )
    cfg = dataclasses.replace(cfg, sensitivity=dataclasses.replace(cfg.sensitivity, models=()))
    out = tmp_path / "out"
    assert prepare_model(cfg, "small_cnn", out, progress=False) == []
    records = read_manifest(out)
    assert {(r.pruner, r.mask) for r in records} == {
        ("none", "none"),
        ("gmp", "unstructured"),
        ("gmp", "block4"),
    }
    assert all(r.accuracy_dataset == f"{folder} (held-out 20%)" for r in records)
    assert (out / "models" / "checkpoints" / "small_cnn-dense.pt").is_file()


def test_pretrained_weights_offline_are_a_recorded_failure_and_nothing_else_runs(tmp_path):
    from study.config import load_config
    from study.variants import prepare_model

    cfg = load_config("smoke", {"weights": "pretrained", "engines": ["onnxruntime"]})
    failures = prepare_model(cfg, "small_cnn", tmp_path, progress=False)
    assert [f.stage for f in failures] == ["dense"]
    assert "`small_cnn` has no pretrained weights" in failures[0].reason
    assert read_manifest(tmp_path) == []
