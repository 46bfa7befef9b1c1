"""The end-to-end study on the smoke preset: every factor runs, in one block, resumes, refuses bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from study.compare import main, write_stats
from study.config import load_config
from study.design import Variant, variant_key, variants
from study.make.export import gzip_size
from study.onnx.content_hash import signed_zero_differences
from study.records.jsonl import append_jsonl, read_jsonl
from study.records.manifest import read_manifest


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    code = main(["--preset", "smoke", "--out", str(out), "--no-progress"])
    return out, code


def _ok_rows(out) -> pd.DataFrame:
    rows = pd.read_json(out / "bench.jsonl", lines=True)
    return rows[rows.status == "ok"]


def _isa() -> dict[str, bool]:
    from study.bench.hardware import capture_hardware

    return capture_hardware().isa


def test_smoke_study_completes_without_failures(smoke_run):
    # On every CPU, VNNI or not: the int8 arm is measured, labelled where it runs emulated.
    out, code = smoke_run
    assert code == 0, read_jsonl(out / "failures.jsonl", missing_ok=True)


def test_every_variant_of_the_design_is_exported_with_its_zeros(smoke_run):
    out, _ = smoke_run
    records = read_manifest(out)
    cfg = load_config("smoke")
    made = {(r.pruner, r.profile, r.mask, r.quant, r.exporter) for r in records}
    planned = {
        (v.pruner, v.profile, v.mask, v.quant, v.exporter) for v in variants(cfg, "small_cnn")
    }
    assert {p[3] for p in planned} == {"none", "torch", "sparseml", "nncf", "nncf_ptq"}  # any CPU
    assert made == planned and len(records) == len(planned)
    assert all(r.zero_check_ok for r in records), [r.zero_check_detail for r in records]
    for r in records:
        if (r.pruner, r.profile, r.mask) == ("gmp", "uniform", "unstructured"):
            # Every prunable layer at round(0.8 * numel) zeros (the smoke recipe's target).
            assert all(lz.zeros == round(0.8 * lz.numel) for lz in r.layers), r
        if (r.pruner, r.profile, r.mask) == ("gmp", "global", "unstructured"):  # one threshold
            assert sum(lz.zeros for lz in r.layers) == round(0.8 * sum(lz.numel for lz in r.layers))
        assert 0 < r.gzip_bytes <= r.raw_bytes
    # Each size is its own file's gzip size at the preset's level.
    sizes = [gzip_size(out / r.onnx_path, r.extra["gzip_level"]) for r in records]
    assert [r.gzip_bytes for r in records] == sizes
    assert {r.extra["gzip_level"] for r in records} == {load_config("smoke").gzip_level}
    # The sizes are measured in threads beside the making; the records still land in the order
    # the design made the variants, and each size's time is in timings.csv.
    assert [variant_key(r) for r in records] == [variant_key(v) for v in variants(cfg, "small_cnn")]
    timings = pd.read_csv(out / "timings.csv")
    level = load_config("smoke").gzip_level
    gzipped = timings.loc[timings.stage.str.startswith(f"gzip -{level} "), "stage"]
    assert sorted(gzipped) == sorted(f"gzip -{level} {Path(r.onnx_path).name}" for r in records)
    # What the making waited for after its last variant: one row, counted in the totals.
    assert (timings.stage == "waiting for gzip sizes").sum() == 1


def test_the_dense_model_is_trained_once_and_saved(smoke_run):
    out, _ = smoke_run
    assert (out / "models" / "checkpoints" / "small_cnn-dense.pt").is_file()
    timings = pd.read_csv(out / "timings.csv")
    assert (timings.stage == "train dense").sum() == 1
    assert {"benchmark", "qat torch", "qat sparseml"} <= set(timings.stage)
    gate = load_config("smoke").train.accuracy_gate
    dense = next(r for r in read_manifest(out) if r.pruner == "none")
    assert dense.accuracy >= gate and dense.trained is True


def test_gmp_and_sparseml_models_hold_the_same_numbers_and_both_are_measured(smoke_run):
    out, _ = smoke_run
    records = read_manifest(out)
    key = ("global", "unstructured", "none", "torch")
    gmp = next(
        r for r in records if r.pruner == "gmp" and (r.profile, r.mask, r.quant, r.exporter) == key
    )
    twin = next(
        r
        for r in records
        if r.pruner == "sparseml" and (r.profile, r.mask, r.quant, r.exporter) == key
    )
    assert twin.content_sha256 == gmp.content_sha256  # the same numbers
    ok = _ok_rows(out)
    ort = ok[ok.engine == "onnxruntime"]
    if twin.extra["signed_zero_differences"]:  # zeros of opposite sign bit: both files measured
        assert twin.onnx_path != gmp.onnx_path
        assert twin.extra["numerically_identical_to"] == gmp.onnx_path
        assert (
            signed_zero_differences(out / gmp.onnx_path, out / twin.onnx_path)
            == (twin.extra["signed_zero_differences"])
        )
        assert set(ort[ort.onnx_sha256 == twin.onnx_sha256].pruner) == {"sparseml"}
    else:  # the same bytes: one file in two cells
        assert twin.onnx_path == gmp.onnx_path and twin.extra["identical_to"] == gmp.onnx_path
        same_file = ort[ort.onnx_sha256 == gmp.onnx_sha256]
        assert set(same_file.pruner) == {"gmp", "sparseml"} and same_file.cell.nunique() == 2
    summary = (out / "summary.md").read_text()
    assert "Identical models: the pruning implementation cannot bias the engines" in summary


def test_all_cells_of_the_architecture_are_measured_round_by_round(smoke_run):
    out, _ = smoke_run
    ok = _ok_rows(out).assign(ts=lambda d: pd.to_datetime(d.timestamp))
    assert set(ok.block) == {"small_cnn/sync"}
    spans = ok.groupby("round").ts.agg(["min", "max"]).sort_index()
    assert (spans["max"].iloc[:-1].to_numpy() < spans["min"].iloc[1:].to_numpy()).all()
    assert ok.groupby("cell")["round"].nunique().nunique() == 1  # every cell, every round


def test_every_engine_measured_every_file(smoke_run):
    out, _ = smoke_run
    ok = _ok_rows(out)
    assert set(ok.engine) == {"onnxruntime", "openvino", "deepsparse"}
    files = {r.onnx_path for r in read_manifest(out)}
    assert (ok.groupby("engine").onnx_path.nunique() == len(files)).all()
    # OpenVINO's extra precisions only where they can differ from f32 on this CPU; else skipped
    # with the reason (tests/study/test_isa.py forces both branches with simulated flags).
    from study.engines.isa import amx_int8, bf16_capable

    isa = _isa()
    expected = {"f32"} | ({"default"} if bf16_capable(isa) else set())
    expected |= {"f32-sparse"} if amx_int8(isa) else set()
    assert set(ok[ok.engine == "openvino"].precision) == expected
    skipped = {k["what"] for k in read_jsonl(out / "skipped.jsonl", missing_ok=True)}
    assert ("openvino precision=default" in skipped) == (not bf16_capable(isa))
    assert ("openvino precision=f32-sparse" in skipped) == (not amx_int8(isa))
    assert (out / "bench.csv").exists()


def test_int8_files_keep_their_zeros_and_rows_say_what_ran(smoke_run):
    out, _ = smoke_run
    int8 = [r for r in read_manifest(out) if r.quant != "none"]
    assert {r.quant for r in int8} == {"torch", "sparseml", "nncf", "nncf_ptq"}
    assert all(r.zero_check_ok and r.zeros > 0 for r in int8)
    ok = _ok_rows(out)
    assert set(ok[ok.quant != "none"].engine) == {"onnxruntime", "openvino", "deepsparse"}
    ov = ok[(ok.quant != "none") & (ok.engine == "openvino")]
    assert all("runtime_precisions" in s for s in ov.engine_settings)
    sparse = ov[ov.precision == "f32-sparse"].engine_settings
    assert all(isinstance(s["sparse_weights_took_effect"], bool) for s in sparse)
    ds = ok[(ok.quant != "none") & (ok.engine == "deepsparse")].engine_settings
    assert len(ds) and all(0.0 <= s["fraction_of_supported_ops"] <= 1.0 for s in ds)
    # DeepSparse's own cpu_vnni and engine binary decide the label (its hardware table: int8 is
    # optimized on AVX-512 VNNI only), on whichever CPU this runs.
    for s in ds:
        emulated = not s["cpu_vnni"] or s["engine_binary"] != "avx512"
        assert (s["int8_label"] != "") == emulated, s
        assert s["int8_kernels"] == (s["int8_label"] or "optimized (AVX-512 VNNI)")
        assert s["int8_label"] in (
            "",
            "int8 emulated (no VNNI)",
            "int8 emulated (AVX2 engine binary)",
        )
    summary = (out / "summary.md").read_text()
    labels = {s["int8_label"] for s in ds} - {""}
    assert all(label in summary for label in labels)


def test_every_row_says_which_isa_path_its_engine_ran(smoke_run):
    out, _ = smoke_run
    ok = _ok_rows(out)
    assert set(ok.isa) == {"native"}
    for engine, s in zip(ok.engine, ok.engine_settings):
        assert s["isa_cap"]["level"] == "native" and s["isa_cap"]["took_effect"] is None
        assert s["isa_path"], engine
        if engine == "deepsparse":
            assert s["engine_binary"] in ("avx2", "avx512") and "engine binary" in s["isa_path"]
        if engine == "openvino":
            assert s["kernels_by_isa"] and "OpenVINO ran kernels" in s["isa_path"]
    summary = (out / "summary.md").read_text()
    assert "## The instruction-set path each engine ran" in summary
    section = summary.split("## The instruction-set path each engine ran")[1].split("\n## ")[0]
    assert all(name in section for name in ("DeepSparse ran", "OpenVINO ran", "ONNX Runtime"))


def test_stats_and_summary_give_every_channel_a_b_with_its_mde(smoke_run):
    out, _ = smoke_run
    stats = json.loads((out / "stats.json").read_text())
    pooled = [c for c in stats["channels"] if c["model"] == "pooled"]
    names = {c["channel"] for c in pooled}
    int8 = {"precision", "quantizer", "quantizer:nncf", "quantizer:nncf_ptq"}  # on every CPU
    whole = {f"toolchain:{t}{p}" for t in ("neuralmagic", "intel") for p in ("", ":int8")}
    assert (
        names
        == {"pruner", "exporter", "profile:uniform", "profile:vendor", "mask:block4"} | int8 | whole
    )
    for c in pooled:
        assert c["ci_low"] <= c["estimate"] <= c["ci_high"] and c["mde"] > 0, c
        assert c["method"] == "paired"
    summary = (out / "summary.md").read_text()
    assert summary.index("The A/A control") < summary.index("Channels:")
    assert "MDE" in summary and "## Accuracy" in summary and "## Mask structure" in summary
    assert "## The int8 arm" in summary and "## Time per stage" in summary


def test_a_channel_whose_cells_failed_is_reported_missing_and_the_rest_stands(smoke_run, tmp_path):
    out, _ = smoke_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("paper", "*.onnx", "*.pt"))
    for rec in read_manifest(out):  # read_manifest keeps records whose files exist
        (copy / rec.onnx_path).parent.mkdir(parents=True, exist_ok=True)
        (copy / rec.onnx_path).touch()
    rows = read_jsonl(copy / "bench.jsonl")
    lost = [
        r
        for r in rows
        if (r["mask"], r["profile"], r["engine"]) == ("block4", "global", "deepsparse")
    ]
    kept = [r for r in rows if r not in lost]
    failure = {**lost[0], "status": "failed", "error": "engine crashed (a test)", "trial": -1}
    (copy / "bench.jsonl").unlink()
    append_jsonl(copy / "bench.jsonl", [*kept, failure])
    stats = write_stats(copy)
    block4 = [c for c in stats["channels"] if c["channel"] == "mask:block4"]
    broken = [
        c
        for c in block4
        if c["model"] != "pooled" and "deepsparse" in (c["numerator"], c["denominator"])
    ]
    assert broken and all(c["estimate"] is None for c in broken), broken
    assert all("engine crashed (a test)" in c["note"] for c in broken), [c["note"] for c in broken]
    intact = [c for c in stats["channels"] if c["channel"] == "exporter" and c["model"] != "pooled"]
    assert intact and all(c["estimate"] is not None for c in intact)
    assert "could not be measured" in (copy / "summary.md").read_text()


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


def test_a_second_run_measures_the_same_files_in_new_processes(smoke_run, tmp_path, capsys):
    out, _ = smoke_run
    again = tmp_path / "again"
    args = ["--preset", "smoke", "--out", str(again), "--no-progress", "--no-paper"]
    assert main([*args, "--reuse-models", str(out), "--engines", "onnxruntime"]) in (0, 1)
    before, after = read_manifest(out), read_manifest(again)
    assert [(r.onnx_path, r.onnx_sha256) for r in after] == [
        (r.onnx_path, r.onnx_sha256) for r in before
    ]
    first = pd.read_json(out / "bench.jsonl", lines=True)
    second = _ok_rows(again)
    assert set(second.engine) == {"onnxruntime"} and len(second) > 0
    assert set(second.run_id).isdisjoint(set(first.run_id))  # a new run, never pooled with the old
    timings = pd.read_csv(again / "timings.csv")
    assert timings[timings.stage != "benchmark"].reused.all()  # nothing was trained or exported
    # refused: a used --out, the same folder twice, another making configuration, no study
    for bad, message in [
        (["--reuse-models", str(out)], "must be new or empty"),
        (["--reuse-models", str(tmp_path)], "holds no study with models"),
        (["--reuse-models", str(out), "--models", "resnet18"], "differs in: models"),
    ]:
        with pytest.raises(SystemExit):
            main(
                [*args, *bad]
                if "--models" not in bad
                else [*args, *bad, "--out", str(tmp_path / "x")]
            )
        assert message in capsys.readouterr().err


def test_unknown_engine_flag_lists_the_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--preset", "smoke", "--engines", "onnxruntime,tensorrt", "--out", str(tmp_path)])
    assert "tensorrt" in capsys.readouterr().err


def test_unknown_factor_flag_lists_the_factors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--preset", "smoke", "--factors", "exporter,colour", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "colour" in err and "pruner, exporter, profile, mask, precision, quantizer" in err


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


def test_the_isa_factor_measures_capped_blocks_or_skips_them_with_the_reason(smoke_run, tmp_path):
    from study.engines.isa import level_skip_reason

    out, _ = smoke_run
    new = tmp_path / "isa"  # the trained checkpoints are reused: only export and benchmark run
    shutil.copytree(out / "models" / "checkpoints", new / "models" / "checkpoints")
    argv = ["--preset", "smoke", "--factors", "profile", "--isa", "avx2", "--out", str(new)]
    assert main([*argv, "--no-progress", "--no-paper"]) == 0
    ok = _ok_rows(new)
    skips = read_jsonl(new / "skipped.jsonl", missing_ok=True)
    stats = json.loads((new / "stats.json").read_text())
    summary = (new / "summary.md").read_text()
    why = level_skip_reason("avx2", _isa())
    if why:  # an AVX2-only CPU: the level is skipped with the reason, the rest of the study stands
        assert set(ok.isa) == {"native"}
        assert [k["reason"] for k in skips if k["what"] == "isa=avx2"] == [why]
        assert not any(c["channel"] == "isa:avx2" for c in stats["channels"])
        assert why in summary
        return
    assert set(ok.isa) == {"native", "avx2"}
    capped = ok[ok.isa == "avx2"]
    assert set(capped.block) == {"small_cnn/sync/avx2"} and set(capped.precision) == {"f32"}
    took = {e: s["isa_cap"]["took_effect"] for e, s in zip(capped.engine, capped.engine_settings)}
    assert took == {"deepsparse": True, "openvino": True, "onnxruntime": False}
    pooled = [c for c in stats["channels"] if c["model"] == "pooled"]
    profile = [c for c in pooled if c["channel"] == "profile:uniform"]
    assert {c["isa"] for c in profile} == {"native", "avx2"}  # B at each ISA level
    isa = [c for c in pooled if c["channel"] == "isa:avx2"]
    assert len(isa) == 3 and all(c["method"] == "unpaired" and c["isa"] == "" for c in isa)
    assert all(c["ci_low"] <= c["estimate"] <= c["ci_high"] for c in isa)
    assert (
        "(engines capped to avx2)" in summary and "the engine's report confirms the cap" in summary
    )


def test_whole_toolchain_records_differ_from_the_reference_in_exactly_their_choices(smoke_run):
    out, _ = smoke_run
    records = read_manifest(out)
    columns = ("pruner", "profile", "mask", "quant", "exporter", "sparsity")
    ref = next(r for r in records if (r.pruner, r.profile, r.quant) == ("gmp", "global", "none")
               and (r.mask, r.exporter) == ("unstructured", "torch"))  # fmt: skip
    ref8 = next(r for r in records if (r.pruner, r.profile, r.quant) == ("gmp", "global", "torch"))
    expected = [  # (reference, the choices named by the issue)
        (ref, {"profile": "vendor", "mask": "block4", "exporter": "sparseml"}),
        (
            ref8,
            {"profile": "vendor", "mask": "block4", "quant": "sparseml", "exporter": "sparseml"},
        ),
        (ref, {"pruner": "nncf"}),
        (ref8, {"pruner": "nncf", "quant": "nncf", "exporter": "nncf"}),
    ]
    for base, choices in expected:
        want = {c: choices.get(c, getattr(base, c)) for c in columns}
        found = [r for r in records if {c: getattr(r, c) for c in columns} == want]
        assert len(found) == 1, choices
        rec = found[0]
        differ = {c: getattr(rec, c) for c in columns if getattr(rec, c) != getattr(base, c)}
        assert differ == choices
        # the same checks as every variant: zeros, accuracy gate, per-layer diagnostics
        assert rec.zero_check_ok and rec.zeros > 0 and rec.trained is not None
        assert rec.diagnostics.get("layers"), choices
    nncf = [r for r in records if r.pruner == "nncf"]
    assert all(r.extra["toolchain_settings"]["nncf_version"] == "3.4.0" for r in nncf)
    (int8,) = [r for r in nncf if r.quant == "nncf"]
    assert int8.extra["nncf_quantize"]["method"] == "qat"
    assert int8.extra["engine_file_forms"]["openvino"] == "fq"
    # NNCF's default flow on the reference weights: nncf.quantize alone, its own file forms
    (ptq,) = [r for r in records if r.quant == "nncf_ptq"]
    assert (ptq.pruner, ptq.exporter) == ("gmp", "nncf")
    assert ptq.extra["nncf_quantize"]["method"] == "ptq"
    assert ptq.extra["engine_file_forms"]["openvino"] == "fq" and ptq.zero_check_ok


def test_engines_that_cannot_run_nncfs_file_measure_its_qdq_file_labelled(smoke_run):
    out, _ = smoke_run
    ok = _ok_rows(out)
    rows = ok[ok.quant.isin(["nncf", "nncf_ptq"])]
    files = rows.groupby("engine").onnx_path.unique()
    assert all(str(p).endswith(".qdq.onnx") for p in files["onnxruntime"])
    assert all(str(p).endswith(".qdq.onnx") for p in files["deepsparse"])
    assert not any(str(p).endswith(".qdq.onnx") for p in files["openvino"])
    summary = (out / "summary.md").read_text()
    assert "measured NNCF's weights and scales in a standard QDQ graph" in summary


def test_summary_opens_with_one_sentence_per_vendor_and_the_interaction(smoke_run):
    out, _ = smoke_run
    summary = (out / "summary.md").read_text()
    head = summary.split("## The home-advantage test")[1].split("\n## ")[0]
    assert summary.index("## The home-advantage test") < summary.index("The A/A control")
    stats = json.loads((out / "stats.json").read_text())
    home = [r for r in stats["home_advantage"] if r["model"] == "pooled"]
    for pair in ("DeepSparse/OpenVINO", "DeepSparse/ONNX Runtime", "OpenVINO/ONNX Runtime"):
        assert f"Neural Magic's toolchain moves {pair} by " in head
    nm = next(r for r in home if r["channel"] == "toolchain:neuralmagic"
              and (r["numerator"], r["denominator"]) == ("deepsparse", "openvino"))  # fmt: skip
    intel = next(r for r in home if r["channel"] == "toolchain:intel"
                 and (r["numerator"], r["denominator"]) == ("deepsparse", "openvino"))  # fmt: skip

    def over(k):
        return "pooled over 1 architecture" if k == 1 else f"pooled over {k} architectures"

    first = (
        f"Neural Magic's toolchain moves DeepSparse/OpenVINO by {nm['estimate'] - 1:+.1%} "
        f"[{nm['ci_low'] - 1:+.1%}, {nm['ci_high'] - 1:+.1%}] ({over(nm['k'])}); Intel's by "
        f"{intel['estimate'] - 1:+.1%} [{intel['ci_low'] - 1:+.1%}, {intel['ci_high'] - 1:+.1%}] "
        f"({over(intel['k'])})"
    )
    assert first in head
    assert "Interaction B(Neural Magic) / B(Intel) = " in head
    assert "Do Neural Magic's single factors add up?" in head
    channels = {r["channel"] for r in home}
    assert {"interaction:neuralmagic/intel", "interaction:neuralmagic:int8/intel:int8"} <= channels
    assert {"additivity:neuralmagic", "additivity:neuralmagic:int8"} <= channels


def test_the_memory_plan_before_making_matches_the_plan_from_the_made_files(smoke_run):
    """Sized from parameter counts before anything is made, against the files' real sizes."""
    from study.bench.hardware import capture_hardware
    from study.bench.split import plan_blocks
    from study.compare import bench_cells, planned_memory

    out, _ = smoke_run
    cfg, isa = load_config("smoke"), _isa()
    before = planned_memory(cfg, out, isa, capture_hardware().machine)
    cells, _ = bench_cells(cfg, read_manifest(out), out, isa)
    _, after = plan_blocks(cells, 10**6)
    assert [(p.block, p.cells) for p in before] == [(p.block, p.cells) for p in after]
    for b, a in zip(before, after):
        assert 0.8 < b.total_bytes / a.total_bytes < 1.25, (b, a)


def test_a_run_that_cannot_fit_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    import study.bench.split

    monkeypatch.setattr(study.bench.split, "memory_budget", lambda: 2**20)  # 1 MiB
    out = tmp_path / "run"
    code = main(["--preset", "smoke", "--out", str(out), "--no-progress"])
    assert code == 1
    assert not (out / "models").exists()  # nothing trained or exported
    (failure,) = read_jsonl(out / "failures.jsonl")
    assert failure["reason"].startswith("refused before making: block 'small_cnn/sync'")
    assert "GiB at once" in failure["reason"] and "fix: " in failure["reason"]


# --- python -m study.check: did the run prove the pipeline ------------------------------------


def _copy_records(run, tmp_path):
    """The smoke run's records and model files in a folder of their own, to break."""
    out = tmp_path / "run"
    shutil.copytree(run / "models", out / "models")
    for name in ("config.yaml", "bench.jsonl"):
        shutil.copy(run / name, out / name)
    return out


def test_check_passes_the_smoke_run_and_names_what_a_broken_run_lacks(smoke_run, tmp_path, capsys):
    from study.check import check_run
    from study.check import main as check_main

    run, _ = smoke_run
    (smoke,) = check_run(run)
    assert smoke.ok, smoke.problems
    assert smoke.zero_ok == smoke.files == len(variants(load_config("smoke"), "small_cnn"))
    assert set(smoke.engines_ok) == {"onnxruntime", "openvino", "deepsparse"}
    assert check_main([str(run)]) == 0

    out = _copy_records(run, tmp_path)
    manifest = read_jsonl(out / "models/manifest.jsonl")
    lost, broken = manifest[-1], dict(manifest[1], zero_check_ok=False, zero_check_detail="x: lost")
    (out / "models/manifest.jsonl").unlink()
    append_jsonl(out / "models/manifest.jsonl", [manifest[0], broken, *manifest[2:-1]])
    rows = [r for r in read_jsonl(out / "bench.jsonl") if r["engine"] != "deepsparse"]
    (out / "bench.jsonl").unlink()
    append_jsonl(out / "bench.jsonl", rows)
    append_jsonl(out / "failures.jsonl", [{"stage": "quantize", "model": "small_cnn",
                                          "reason": "TypeError: boom"}])  # fmt: skip
    (check,) = check_run(out)
    assert not check.ok
    keys = ("pruner", "profile", "mask", "quant", "exporter", "sparsity")
    name = Variant("small_cnn", **{k: lost[k] for k in keys}).name
    assert f"not made: {name} (quantize: TypeError: boom)" in check.problems
    assert f"zero check failed: {broken['onnx_path']}: x: lost" in check.problems
    assert "no ok row on deepsparse" in check.problems
    capsys.readouterr()
    assert check_main([str(out)]) == 1
    assert "check failed for 1 of 1 architecture(s): small_cnn" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        check_main([str(tmp_path / "nothing")])
