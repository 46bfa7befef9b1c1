"""Small pieces of the paper: table rendering, loading errors, the onset-sparsity rule, saving."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from paper.analysis import first_speedup_sparsity
from paper.load import load_results
from paper.style import apply_style, save_figure
from paper.tables import Table, size_table, to_latex, to_markdown

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


def test_latex_escapes_special_characters():
    tex = to_latex(_table())
    assert r"res\_net & 1.23 & yes \\" in tex
    assert r"vgg\&19 & -- & no \\" in tex
    assert r"\caption{Reduction 50\% ($\times$)}" in tex
    assert r"\label{tab:t_1}" in tex and r"\begin{tabular}{lrr}" in tex


def test_size_table_matches_dense_per_machine_after_a_merge():
    def record(machine, pruner, sparsity, gzip_bytes):
        return {"model": "resnet50", "pruner": pruner, "exporter": "torch", "sparsity": sparsity,
                "raw_bytes": 1000, "gzip_bytes": gzip_bytes, "extra": {"machine": machine}}  # fmt: skip

    manifest = pd.DataFrame(
        [record("a", "none", 0.0, 900), record("a", "gmp", 0.9, 300)]
        + [record("b", "none", 0.0, 800), record("b", "gmp", 0.9, 200)]
    )
    frame = size_table(manifest).frame
    assert frame["machine"].tolist() == ["a", "b"]
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


def test_missing_folder_gives_an_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_results(missing)


def test_a_broken_jsonl_line_is_reported_with_its_number(tmp_path):
    write_results(tmp_path, optional_files=False)
    with (tmp_path / "bench.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ValueError, match=r"bench.jsonl: line 323 is not valid JSON"):
        load_results(tmp_path)


def test_loading_only_bench_records_the_missing_files(tmp_path):
    results = load_results(write_results(tmp_path, optional_files=False))
    assert (
        len(results.bench) == 322
    )  # 2 models x 8 files x 4 engine/precision x 5 trials + 1 failed + 1 rejected
    assert results.manifest.empty and results.sensitivity is None and results.failures == ()
    assert "models/manifest.jsonl" in results.missing and "config.yaml" in results.missing


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
