"""Build the paper from the synthetic results folder and check files, numbers and reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from paper.__main__ import main
from paper.assemble import build_paper
from paper.figures import FIGURES
from study.stats import toolchain_bias

from .fixture import MACHINE, write_results

TABLES = (
    "table1_accuracy",
    "table2_gzip_sizes",
    "table_cpu",
    "table_throughput",
    "table_bias",
    "table_bias_exporter",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def paper(results) -> Path:
    """Built once through the command line, with the default output folder."""
    assert main([str(results)]) == 0
    return results / "paper"


def _markdown_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the (single) Markdown table in ``path`` as dicts of cell strings."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    return [dict(zip(header, row)) for row in body]


def _bench(results: Path) -> pd.DataFrame:
    return pd.read_json(results / "bench.jsonl", lines=True, precise_float=True)


def _manifest(results: Path) -> pd.DataFrame:
    return pd.read_json(results / "models" / "manifest.jsonl", lines=True, precise_float=True)


def test_every_figure_is_written_as_png_and_svg(paper):
    for name in FIGURES:
        for ext in ("png", "svg"):
            path = paper / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path


def test_every_table_is_written_as_markdown_and_latex(paper):
    for name in TABLES:
        md = (paper / "tables" / f"{name}.md").read_text()
        tex = (paper / "tables" / f"{name}.tex").read_text()
        assert md.count("\n|") >= 3, name  # header, rule and at least one row
        assert "\\begin{tabular}" in tex and f"\\label{{tab:{name}}}" in tex


def test_report_markdown_and_html_are_written(paper):
    md = (paper / "report.md").read_text()
    html = (paper / "report.html").read_text()
    for question in ("### 1.", "### 2.", "### 3.", "### 4."):
        assert question in md
    assert "<table>" in html and '<img alt="Throughput per engine' in html
    assert "not drawn" not in md  # every figure's data is in the fixture


def test_throughput_table_holds_the_mean_of_every_cell(results, paper):
    bench = _bench(results)
    ok = bench[bench["status"] == "ok"]
    keys = ["model", "pruner", "exporter", "sparsity", "engine", "precision"]
    means = ok.groupby(keys)["throughput"].mean()  # pandas recomputation from the raw rows
    rows = {
        (
            r["model"],
            r["pruner"],
            r["exporter"],
            float(r["sparsity"]),
            r["engine"],
            r["precision"],
        ): r
        for r in _markdown_rows(paper / "tables" / "table_throughput.md")
    }
    assert len(rows) == len(means) == 64
    for key, mean in means.items():
        row = rows[key]
        assert row["throughput (img/s)"] == f"{mean:.2f}", key
        assert float(row["95% CI low"]) <= mean <= float(row["95% CI high"])
        assert row["trials"] == "5"


def test_gzip_table_equals_the_manifest(results, paper):
    man = _manifest(results)
    dense = man[(man["pruner"] == "none")].set_index(["model", "exporter"])["gzip_bytes"]
    rows = _markdown_rows(paper / "tables" / "table2_gzip_sizes.md")
    pruned = man[man["pruner"] != "none"]
    assert len(rows) == len(pruned) == 12
    for row in rows:
        rec = pruned[
            (pruned["model"] == row["model"])
            & (pruned["pruner"] == row["pruner"])
            & (pruned["exporter"] == row["exporter"])
            & (pruned["sparsity"].round(2) == float(row["sparsity"]))
        ]
        assert len(rec) == 1
        rec = rec.iloc[0]
        reference = dense[(rec["model"], rec["exporter"])]
        assert int(row["pruned gzip (bytes)"]) == rec["gzip_bytes"]
        assert int(row["dense gzip (bytes)"]) == reference
        assert row["reduction (×)"] == f"{reference / rec['gzip_bytes']:.2f}"


def test_accuracy_table_drop_is_dense_minus_variant(results, paper):
    man = _manifest(results).set_index(["model", "pruner", "exporter", "sparsity"])
    rows = _markdown_rows(paper / "tables" / "table1_accuracy.md")
    assert len(rows) == len(man) == 16
    for row in rows:
        key = (row["model"], row["pruner"], row["exporter"], float(row["target sparsity"]))
        accuracy = man.loc[key, "accuracy"]
        dense = man.loc[(row["model"], "none", row["exporter"], 0.0), "accuracy"]
        assert row["top-1 accuracy (%)"] == f"{accuracy * 100:.2f}"
        assert row["drop vs dense (pp)"] == f"{(dense - accuracy) * 100:.2f}"


def test_bias_table_and_report_carry_the_pooled_estimate(results, paper):
    pooled = [
        r
        for r in toolchain_bias(_bench(results))
        if r.model == "pooled" and r.held == "torch"  # gmp exists with the torch exporter only
    ]
    assert len(pooled) == 1
    b = pooled[0]
    rows = _markdown_rows(paper / "tables" / "table_bias.md")
    row = next(r for r in rows if r["model"] == "pooled")
    assert (row["B"], row["95% CI low"], row["95% CI high"]) == (
        f"{b.estimate:.3f}",
        f"{b.ci_low:.3f}",
        f"{b.ci_high:.3f}",
    )
    assert row["equivalent"] == ("yes" if b.equivalent else "no")
    sentence = f"B = {b.estimate:.3f} (95% CI {b.ci_low:.3f}–{b.ci_high:.3f})"
    assert sentence in (paper / "report.md").read_text()


def test_cpu_table_lists_present_isa_flags_and_cache_sizes(paper):
    (row,) = _markdown_rows(paper / "tables" / "table_cpu.md")
    assert row["machine"] == MACHINE and row["microarchitecture"] == "Zen 4"
    assert row["isa"] == "avx2, avx512_bf16, avx512f"  # amx_tile is recorded as absent
    assert (row["l1d"], row["l2"], row["l3"]) == ("32 KiB", "1 MiB", "32 MiB")


def test_report_names_the_limits_of_the_data(paper):
    md = (paper / "report.md").read_text()
    assert f"single machine ({MACHINE})" in md
    assert "`quick` preset" in md
    assert "random (seeded) weights" in md
    assert "digits" in md
    # The stopping rule comes from config.yaml's bench section.
    assert "`max_trials` = 5" in md and "`target_rel_ci` = 0.05" in md


def test_report_states_the_cpu_steal_of_the_trials(results, paper):
    steal = _bench(results).query("status == 'ok'")["cpu_steal"]
    md = (paper / "report.md").read_text()
    assert (
        f"CPU steal during timed trials: mean {steal.mean():.1%}, median {steal.median():.1%}, "
        f"max {steal.max():.1%}; {(steal > 0.05).mean():.0%} of trials above 5%" in md
    )
    assert "rejected for CPU steal above `max_cpu_steal` = 0.05 and repeated: 1 (kept" in md
    assert (
        f"Noise floor of `{MACHINE}` (study.noise: a fixed numpy float32 matmul 384x384, no engine, "
        "timed in trials of 0.3 s on 2 thread(s) before benchmarking): per-trial CV 8.0% (median "
        "of 2 probe(s), range 4.2%–11.8%)" in md
    )
    assert "bench.jsonl holds 1 failure row(s)." in md  # the rejected trial is not a failure


def test_report_states_replication_only_when_cells_were_measured_twice(results, paper, tmp_path):
    from study.stats.replication import replication_summary, replication_tests

    assert "Replication across runs" not in (paper / "report.md").read_text()
    twice = write_results(tmp_path / "twice")
    path = twice / "bench.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    again = [dict(r, run_id="run-1", throughput=r["throughput"] * 1.1) for r in rows]  # faster
    with path.open("a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in again)
    md = build_paper(twice).report_md.read_text()
    both = pd.DataFrame(rows + again)
    cell, ratio = (replication_summary(replication_tests(both, lv), lv) for lv in ("cell", "ratio"))
    assert cell.rejected > 0.5 and ratio.rejected < cell.rejected  # the shift is common to engines
    assert (
        f"{cell.units} cells were measured in more than one run (2 runs); cell throughput: "
        f"{cell.rejected:.1%} of {cell.tests} pairs of runs differed at p < 0.05 (the CIs would "
        f"have to be {cell.inflation:.2f}x as wide to cover them); engine ratios: "
        f"{ratio.rejected:.1%} of {ratio.tests} pairs" in md
    )


def test_report_lists_the_failures(results, paper):
    entry = json.loads((results / "failures.jsonl").read_text())
    md = (paper / "report.md").read_text()
    assert "bench.jsonl holds 1 failure row(s)." in md
    assert f"| {entry['stage']} | {entry['model']} | {entry['pruner']} |" in md


def test_second_build_is_byte_identical(results, paper, tmp_path):
    again = build_paper(results, tmp_path / "again").out_dir
    first = sorted(p.relative_to(paper) for p in paper.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (paper / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_missing_optional_inputs_are_skipped_with_reasons(tmp_path):
    results = write_results(tmp_path / "bare", optional_files=False, deepsparse=False)
    built = build_paper(results)
    skipped = {f.name: f.skipped for f in built.figures if f.skipped}
    assert set(skipped) == {
        "bias_forest",
        "exporter_forest",
        "layer_sparsity",
        "sensitivity",
        "compression",
    }
    assert "sensitivity.csv" in skipped["sensitivity"]
    assert "deepsparse" in skipped["bias_forest"]
    written = {p.stem for p in (built.out_dir / "figures").iterdir()}
    assert written == set(FIGURES) - set(skipped)  # no empty figure for absent data
    md = built.report_md.read_text()
    assert "not drawn: no sensitivity.csv in the results folder" in md
    assert "table1_accuracy: no models/manifest.jsonl" in md
    assert "config.yaml is missing" in md
    assert "cannot answer: needs throughput rows of both deepsparse and openvino" in md


def test_missing_bench_gives_an_error_naming_the_path(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "bench.jsonl")):
        build_paper(tmp_path)
    assert main([str(tmp_path)]) == 2
    assert str(tmp_path / "bench.jsonl") in capsys.readouterr().err
    assert not (tmp_path / "paper").exists()
