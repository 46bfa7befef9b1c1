"""A results folder with inputs missing or malformed: skipped with reasons, or an error naming them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper.__main__ import main
from paper.assemble import build_paper
from paper.figures import FIGURES

from .fixture import write_results


def _markdown_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(split[0], row)) for row in split[2:]]


def test_missing_optional_inputs_are_skipped_with_reasons(tmp_path):
    results = write_results(tmp_path / "bare", optional_files=False, deepsparse=False)
    built = build_paper(results)
    skipped = {f.name: f.skipped for f in built.figures if f.skipped}
    assert set(skipped) == {
        "channel_forest",
        "channel_forest_by_architecture",
        "layer_sparsity",
        "sensitivity",
        "compression",
        "opprofile",
    }
    assert "config.yaml is absent" in skipped["channel_forest"]
    assert "no opprofile.json" in skipped["opprofile"]
    assert "sensitivity.csv" in skipped["sensitivity"]
    written = {p.stem for p in (built.out_dir / "figures").iterdir()}
    assert written == set(FIGURES) - set(skipped)  # no empty figure for absent data
    md = built.report_md.read_text()
    assert "not drawn: no sensitivity.csv in the results folder" in md
    assert "table1_accuracy: no models/manifest.jsonl" in md
    assert "table_channels: the channel analysis needs the study configuration" in md
    assert "config.yaml is missing" in md
    assert (
        "Not measured: the channel analysis needs the study configuration: config.yaml is absent"
        in md
    )


def test_without_deepsparse_the_channels_cover_the_other_pair(tmp_path):
    built = build_paper(write_results(tmp_path / "two", deepsparse=False))
    rows = _markdown_rows(built.out_dir / "tables" / "table_channels.md")
    assert {r["engines"] for r in rows} == {"openvino/onnxruntime"}
    md = built.report_md.read_text()
    assert "OpenVINO ran int8 kernels on torch.ao's file only" in md


def test_an_unreadable_config_names_the_problem(tmp_path):
    results = write_results(tmp_path / "old")
    config = results / "config.yaml"
    config.write_text(config.read_text().replace("factors:", "pruners: [gmp]\nfactors:", 1))
    md = build_paper(results).report_md.read_text()
    assert "config.yaml is not a configuration this version reads (unknown key(s) ['pruners']" in md


def test_missing_bench_gives_an_error_naming_the_path(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "bench.jsonl")):
        build_paper(tmp_path)
    assert main([str(tmp_path)]) == 2
    assert str(tmp_path / "bench.jsonl") in capsys.readouterr().err
    assert not (tmp_path / "paper").exists()


def test_a_malformed_manifest_row_is_named(tmp_path, capsys):
    results = write_results(tmp_path / "bad")
    manifest = results / "models" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lines[2] = json.dumps(dict(json.loads(lines[2]), speed=1))
    manifest.write_text("\n".join(lines) + "\n")
    assert main([str(results)]) == 2
    err = capsys.readouterr().err
    assert "manifest.jsonl: row 3 has unknown ModelRecord field(s) ['speed']" in err
