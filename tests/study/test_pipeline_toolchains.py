"""The Intel arm in the pipeline: NNCF missing or failing fails that arm only, with NNCF's message."""

from __future__ import annotations

import sys

import pytest

from study.config import load_config
from study.records.manifest import read_manifest
from study.variants import prepare_model


@pytest.fixture
def cfg():
    overrides = {
        "factors": {"toolchain": ["neutral", "intel"]},
        "sweep": [],
        "sensitivity": {"models": []},
    }
    return load_config("smoke", overrides)


def test_missing_nncf_fails_the_intel_arm_with_nncfs_error_and_the_rest_stands(
    cfg, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    failures = prepare_model(cfg, "small_cnn", tmp_path, progress=False)
    assert [(f.stage, f.pruner) for f in failures] == [("train", "nncf")]
    assert "NNCFError: NNCF is not available (import nncf failed" in failures[0].reason
    records = read_manifest(tmp_path)
    assert {(r.pruner, r.profile) for r in records} == {("none", "dense"), ("gmp", "global")}
    assert all(r.zero_check_ok for r in records)


def test_a_failing_nncf_call_is_recorded_with_nncfs_own_message(cfg, tmp_path, monkeypatch):
    import nncf

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator in the traced graph")

    monkeypatch.setattr(nncf, "prune", broken)
    failures = prepare_model(cfg, "small_cnn", tmp_path, progress=False)
    assert [(f.stage, f.pruner) for f in failures] == [("train", "nncf")]
    reason = failures[0].reason
    assert reason.startswith("NNCFError: NNCF 3.4.0: nncf.prune")
    assert "RuntimeError: unsupported operator in the traced graph" in reason
    assert len(read_manifest(tmp_path)) == 2  # dense and the reference
