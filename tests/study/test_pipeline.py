"""Pipeline helpers: exact one-shot zero counts, crash-safe JSONL, deterministic names."""

from __future__ import annotations

import json

import pytest
import torch

from study.manifest import append_jsonl, onnx_name, read_jsonl
from study.models import build_model
from study.pipeline import oneshot_prune


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


def test_jsonl_survives_a_truncated_last_line(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, {"a": 1})
    append_jsonl(path, {"a": 2, "t": (1, 2)})
    with path.open("a") as fh:
        fh.write('{"a": 3, "trunc')  # a crash mid-write
    assert read_jsonl(path) == [{"a": 1}, {"a": 2, "t": [1, 2]}]
    assert "truncated" in caplog.text


def test_jsonl_corruption_before_the_end_is_an_error(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\nnot json\n' + json.dumps({"a": 2}) + "\n")
    with pytest.raises(ValueError, match=r"line 2 is not valid JSON"):
        read_jsonl(path)


def test_onnx_names_are_deterministic_and_distinct():
    names = {
        onnx_name("resnet50", p, e, s)
        for p in ("gmp", "sparseml")
        for e in ("torch", "sparseml")
        for s in (0.9, 0.95)
    }
    assert len(names) == 8
    assert onnx_name("resnet50", "gmp", "torch", 0.9) == "resnet50-gmp-torch-s0.90.onnx"
