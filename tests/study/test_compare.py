"""The end-to-end study on the smoke preset: everything is written, resumes, and refuses bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from study.compare import main
from study.export import gzip_size
from study.pipeline import read_manifest


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    code = main(["--preset", "smoke", "--out", str(out), "--no-progress"])
    return out, code


def test_smoke_study_completes_without_failures(smoke_run):
    out, code = smoke_run
    failures = (out / "failures.jsonl").read_text() if (out / "failures.jsonl").exists() else ""
    assert code == 0, failures


def test_every_variant_is_exported_with_its_zeros(smoke_run):
    out, _ = smoke_run
    records = read_manifest(out)
    kinds = {(r.pruner, r.exporter) for r in records}
    assert kinds == {
        ("none", "torch"),
        ("none", "sparseml"),
        ("gmp", "torch"),
        ("gmp", "sparseml"),
        ("sparseml", "torch"),
        ("sparseml", "sparseml"),
        ("oneshot", "torch"),
    }
    assert all(r.zero_check_ok for r in records)
    for r in records:
        if r.pruner in ("gmp", "sparseml"):
            # Every prunable layer at round(0.8 * numel) zeros (the smoke recipe's target).
            assert all(lz.zeros == round(0.8 * lz.numel) for lz in r.layers), r
            assert 0 < r.gzip_bytes < r.raw_bytes
    out = smoke_run[0]
    # Sizes are measured several files at once: each must be its own file's gzip -9 size.
    assert [r.gzip_bytes for r in records] == [gzip_size(out / r.onnx_path) for r in records]


def test_gmp_and_sparseml_models_have_identical_zero_counts(smoke_run):
    out, _ = smoke_run
    by = {(r.pruner, r.exporter): r for r in read_manifest(out)}
    gmp_layers = [(lz.name, lz.zeros) for lz in by["gmp", "torch"].layers]
    sparseml_layers = [(lz.name, lz.zeros) for lz in by["sparseml", "torch"].layers]
    assert gmp_layers == sparseml_layers


def test_every_engine_measured_every_variant(smoke_run):
    out, _ = smoke_run
    rows = pd.read_json(out / "bench.jsonl", lines=True)
    ok = rows[rows.status == "ok"]
    assert set(ok.engine) == {"onnxruntime", "openvino", "deepsparse"}
    per_engine = ok.groupby("engine").onnx_path.nunique()
    assert (per_engine == len(read_manifest(out))).all()
    assert set(ok[ok.engine == "openvino"].precision) == {"f32", "default"}
    assert (out / "bench.csv").exists()


def test_stats_and_summary_state_the_bias_with_a_ci(smoke_run):
    out, _ = smoke_run
    stats = json.loads((out / "stats.json").read_text())
    pooled = [b for b in stats["bias"] if b["model"] == "pooled" and b["factor"] == "pruner"]
    assert pooled and all(b["ci_low"] <= b["estimate"] <= b["ci_high"] for b in pooled)
    summary = (out / "summary.md").read_text()
    assert "B = " in summary and "95% CI" in summary


def test_the_paper_is_built_at_the_end(smoke_run):
    out, _ = smoke_run
    assert (out / "paper" / "report.md").exists()
    assert list((out / "paper").rglob("*.png"))


def test_a_second_run_resumes_without_redoing_anything(smoke_run):
    out, _ = smoke_run
    lines_before = (out / "bench.jsonl").read_text().count("\n")
    manifest_before = (out / "models" / "manifest.jsonl").read_text()
    assert (
        main(["--preset", "smoke", "--out", str(out), "--no-progress", "--no-paper", "--resume"])
        == 0
    )
    assert (out / "bench.jsonl").read_text().count("\n") == lines_before
    assert (out / "models" / "manifest.jsonl").read_text() == manifest_before


def test_a_different_config_into_a_used_folder_is_refused(smoke_run, capsys):
    out, _ = smoke_run
    with pytest.raises(SystemExit):
        main(["--preset", "smoke", "--out", str(out), "--models", "resnet18"])
    assert "different configuration (differs in: models)" in capsys.readouterr().err


def test_unknown_engine_flag_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--preset", "smoke", "--engines", "onnxruntime,tensorrt", "--out", str(tmp_path)])
    assert "tensorrt" in capsys.readouterr().err


def test_resume_of_an_empty_folder_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--preset", "smoke", "--out", str(tmp_path / "none"), "--resume"])
    assert "holds no study to resume" in capsys.readouterr().err


def test_merge_combines_folders_into_a_new_one(smoke_run, tmp_path):
    out, _ = smoke_run
    merged = tmp_path / "merged"
    assert main(["merge", str(out), "--out", str(merged), "--no-paper"]) == 0
    rows_in = [line for line in (out / "bench.jsonl").read_text().splitlines() if line.strip()]
    rows_out = [line for line in (merged / "bench.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows_out) == len(rows_in)
    records = read_manifest(merged)
    assert len(records) == len(read_manifest(out))
    assert all(r.extra["machine"] and r.onnx_path.startswith("/") for r in records)
    assert (merged / "bench.csv").exists() and (merged / "summary.md").exists()
    with pytest.raises(SystemExit):  # never merges into a folder that holds something
        main(["merge", str(out), "--out", str(merged)])
