"""Small pieces of the paper: table rendering, loading, the int8 arm, labels, forest titles, saving."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from paper.analysis import first_speedup_sparsity
from paper.figures.forest import channel_title
from paper.load import load_results
from paper.style import apply_style, save_figure
from paper.tables import Table, size_table, to_latex, to_markdown
from paper.tables.render import format_cell
from study.analysis.int8 import engine_runs, int8_speedups, kernel_support
from tests.study._synth import synth_trials

from .fixture import write_results


def _table() -> Table:
    frame = pd.DataFrame(
        {"model": ["res_net", "vgg&19"], "ratio": [1.23456, math.nan], "ok": [True, False]}
    )
    return Table("t_1", "Reduction 50% (×)", frame, {"ratio": "{:.2f}"})


def test_markdown_formats_numbers_and_marks_missing_values():
    assert to_markdown(_table()).splitlines() == [
        "| model | ratio | ok |",
        "| --- | ---: | ---: |",
        "| res_net | 1.23 | yes |",
        "| vgg&19 | – | no |",
    ]


def test_numpy_flags_read_yes_and_no():
    assert (format_cell(np.bool_(True), None), format_cell(np.bool_(False), None)) == ("yes", "no")


def test_latex_escapes_special_characters():
    tex = to_latex(_table())
    assert r"res\_net & 1.23 & yes \\" in tex
    assert r"vgg\&19 & -- & no \\" in tex
    assert r"\caption{Reduction 50\% ($\times$)}" in tex
    assert r"\label{tab:t_1}" in tex and r"\begin{tabular}{lrr}" in tex


def test_size_table_matches_dense_per_machine_after_a_merge():
    def record(machine, pruner, sparsity, gzip_bytes):
        return {"model": "resnet50", "pruner": pruner, "profile": "global", "mask": "unstructured",
                "quant": "none", "exporter": "torch", "sparsity": sparsity, "raw_bytes": 1000,
                "gzip_bytes": gzip_bytes, "extra": {"machine": machine}}  # fmt: skip

    manifest = pd.DataFrame(
        [record("a", "none", 0.0, 900), record("a", "gmp", 0.9, 300)]
        + [record("b", "none", 0.0, 800), record("b", "gmp", 0.9, 200)]
    )
    frame = size_table(manifest).frame
    assert frame["machine"].tolist() == ["a", "b"]
    assert frame["variant"].tolist() == ["reference", "reference"]
    assert frame["dense gzip (bytes)"].tolist() == [900, 800]
    assert frame["reduction (×)"].tolist() == [3.0, 4.0]


def _speedup(ci_low: list[float]) -> pd.DataFrame:
    levels = [0.5, 0.7, 0.9]
    return pd.DataFrame(
        {
            "machine": "m",
            "engine": "deepsparse",
            "model": "resnet50",
            "exporter": "torch",
            "pruner": "oneshot",
            "precision": "f32",
            "sparsity": levels,
            "estimate": [c + 0.1 for c in ci_low],
            "ci_low": ci_low,
            "ci_high": [c + 0.2 for c in ci_low],
        }
    )


def test_onset_is_the_first_level_whose_ci_lies_above_one():
    # Level 0.7's CI (0.98, 1.18) still includes 1, so the onset is 0.9, not 0.7.
    first = first_speedup_sparsity(_speedup([0.95, 0.98, 1.4]))
    assert first["first_sparsity"].tolist() == [0.9]
    assert first["ci_low"].tolist() == [1.4]


def test_onset_is_nan_when_no_level_speeds_up():
    first = first_speedup_sparsity(_speedup([0.9, 0.95, 0.99]))
    assert np.isnan(first["first_sparsity"].iloc[0])
    assert first["max_sparsity"].iloc[0] == 0.9


def _int8_trials() -> pd.DataFrame:
    """fp32 and int8 (both quantizers) of one pruned model on two engines, round-paired."""
    gain = {("openvino", "torch"): 2.0, ("openvino", "sparseml"): 1.0}
    gain |= {("deepsparse", "torch"): 1.0, ("deepsparse", "sparseml"): 3.0}
    df = synth_trials(
        models=("resnet50",), pruners=("gmp",), profiles=("global",), quants=("none", "torch", "sparseml"),
        engines=("openvino", "deepsparse"), sigma=0.01, n_trials=6,
        effect=lambda c: gain.get((c["engine"], c["quant"]), 1.0),
        drift=lambda c, r: 1.0 + 0.3 * (r % 2),
    )  # fmt: skip
    df.loc[df["quant"] == "sparseml", "exporter"] = "sparseml"  # SparseML exports its own int8
    settings = {
        ("openvino", "torch"): {"runtime_precisions": {"Convolution": {"u8": 3}}},
        ("openvino", "sparseml"): {"runtime_precisions": {"Convolution": {"f32": 3}}},
        ("deepsparse", "torch"): {"fraction_of_supported_ops": 0.0, "cpu_vnni": True},
        ("deepsparse", "sparseml"): {"fraction_of_supported_ops": 1.0, "cpu_vnni": True},
    }
    df["engine_settings"] = [settings.get((e, q), {}) for e, q in zip(df["engine"], df["quant"])]
    return df


def test_int8_speedup_is_round_paired_and_recovers_the_gain():
    speed = int8_speedups(_int8_trials()).set_index(["engine", "quantizer"])
    assert speed["method"].eq("paired").all() and speed["n_rounds"].eq(6).all()
    for key, gain in {("openvino", "torch"): 2.0, ("deepsparse", "sparseml"): 3.0}.items():
        assert speed.loc[key, "ci_low"] < gain < speed.loc[key, "ci_high"]
        assert speed.loc[key, "estimate"] == pytest.approx(gain, rel=0.03)


def test_engine_runs_say_which_toolchain_ran_int8_kernels():
    runs = engine_runs(_int8_trials())
    assert len(runs) == 4  # two int8 files x two engines (the fp32 file is not listed)
    assert kernel_support(runs) == {
        "deepsparse": {"sparseml": True, "torch": False},
        "openvino": {"sparseml": False, "torch": True},
    }
    fell_back = runs[(runs["engine"] == "deepsparse") & (runs["quant"] == "torch")]
    assert "fell back to the bundled ONNX Runtime" in fell_back["what_ran"].iloc[0]


def test_the_a_a_control_is_named_only_when_the_files_are_identical():
    assert channel_title("pruner", identical=True).startswith("A/A control")
    assert channel_title("pruner", identical=False) == "pruner: SparseML vs gmp"
    assert channel_title("mask:block4") == "mask: 1x4 blocks vs unstructured"


def test_missing_folder_gives_an_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_results(missing)


def test_a_crash_truncated_line_is_skipped_with_its_number_as_study_does(tmp_path):
    # One reader for the study and the paper (study.records.jsonl): after an interrupted run both build.
    write_results(tmp_path, optional_files=False)
    whole = load_results(tmp_path)
    lines = (tmp_path / "bench.jsonl").read_text().count("\n")
    with (tmp_path / "bench.jsonl").open("a") as fh:
        fh.write('{"run_id": "r0", "mach')  # a crash in the middle of a write
    with pytest.warns(UserWarning, match=rf"bench.jsonl:{lines + 1}: skipping an incomplete row"):
        after = load_results(tmp_path)
    assert len(after.bench) == len(whole.bench) > 0


def test_rows_that_are_not_trials_are_refused(tmp_path):
    (tmp_path / "bench.jsonl").write_text(json.dumps({"model": "resnet50"}) + "\n")
    with pytest.raises(
        ValueError, match=r"not a file of study.records.schema.TrialRow rows: no \['engine'"
    ):
        load_results(tmp_path)


def test_loading_only_bench_records_the_missing_files(tmp_path):
    results = load_results(write_results(tmp_path, optional_files=False))
    # 2 architectures: (12 + 10 files) x 3 engines + 4 OpenVINO default + 2 f32-sparse cells,
    # 5 rounds each, + 1 failed + 1 rejected row.
    assert len(results.bench) == 72 * 5 + 2
    assert results.manifest.empty and results.records == () and results.sensitivity is None
    assert results.study_config is None and results.config_problem == "config.yaml is absent"
    assert "models/manifest.jsonl" in results.missing and "config.yaml" in results.missing


def test_rows_of_schema_version_2_load_as_version_3(tmp_path):
    row = {"schema_version": 2, "run_id": "r", "machine": "m", "cell": "c1", "trial": 3}
    row |= {"model": "resnet50", "pruner": "gmp", "exporter": "torch", "sparsity": 0.9}
    row |= {"engine": "openvino", "precision": "f32", "throughput": 10.0, "status": "ok"}
    (tmp_path / "bench.jsonl").write_text(json.dumps(row) + "\n")
    bench = load_results(tmp_path).bench
    assert bench.loc[0, ["profile", "mask", "quant"]].tolist() == [
        "uniform",
        "unstructured",
        "none",
    ]
    assert (bench.loc[0, "block"], bench.loc[0, "round"]) == ("cell:c1", 3)  # pairs with nothing


def test_manifest_records_carry_the_gate_and_the_twin(tmp_path):
    results = load_results(write_results(tmp_path))
    (twin,) = [r for r in results.records if r.model == "small_cnn" and r.pruner == "sparseml"]
    assert twin.extra["signed_zero_differences"] == 17  # zeros of opposite sign: its own file
    assert twin.onnx_path != twin.extra["numerically_identical_to"]
    (same,) = [r for r in results.records if r.model == "resnet18" and r.pruner == "sparseml"]
    assert same.onnx_path == same.extra["identical_to"]  # the same bytes: gmp's file
    below = {(r.model, r.mask) for r in results.records if r.trained is False}
    assert ("resnet18", "block4") in below
    assert results.study_config is not None and results.study_config.analysis.margin == 0.10


def test_saved_svg_carries_no_date_and_is_reproducible(tmp_path):
    def draw(folder):
        apply_style()
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 2], label="a")
        ax.legend()
        return save_figure(fig, tmp_path / folder, "f")

    first, second = draw("a"), draw("b")
    assert [p.suffix for p in first] == [".png", ".svg"]
    svg = first[1].read_text()
    assert "<dc:date>" not in svg
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
