"""Build the paper from the synthetic results folder and check files, numbers and reproducibility."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from matplotlib.image import imread

from paper.__main__ import main
from paper.assemble import build_paper
from paper.figures import CENTRAL, FIGURES
from study.analysis.markdown import channel_sentence, summary_markdown
from study.analysis.summary import StudyStats, channel_results
from study.config import load_config
from study.records.manifest import read_manifest
from study.records.results import load_results as load_trials

from .fixture import BLOCK4_BIAS, DATASET, INT8_GAIN, MACHINE, ROUNDS, write_results

TABLES = (
    "table1_accuracy",
    "table2_gzip_sizes",
    "table_cpu",
    "table_throughput",
    "table_channels",
    "table_channels_by_architecture",
    "table_mask_structure",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def paper(results) -> Path:
    """Built once through the command line, with the default output folder."""
    assert main([str(results)]) == 0
    return results / "paper"


@pytest.fixture(scope="module")
def report(paper) -> str:
    return (paper / "report.md").read_text()


@pytest.fixture(scope="module")
def channels(results) -> list:
    """The channels as study.analysis.summary computes them (the reference the paper must repeat)."""
    return channel_results(
        load_trials(results / "bench.jsonl"),
        load_config(results / "config.yaml"),
        read_manifest(results, require_files=False),
    )


def _markdown_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the (single) Markdown table in ``path`` as dicts of cell strings."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = split[0], split[2:]
    return [dict(zip(header, row)) for row in body]


def _section(report: str, heading: str) -> str:
    """The text of the section that starts at ``heading`` (up to the next heading of its level)."""
    start = report.index(heading)
    level = heading.split(" ")[0] + " "
    end = report.find("\n" + level, start + len(heading))
    return report[start : end if end >= 0 else None]


def _block(section: str, channel: str) -> str:
    """A channel's paragraph and bullets: from ``**channel**`` to the next bold heading."""
    start = section.index(f"**{channel}**")
    end = section.find("\n**", start + 2)
    return section[start : end if end >= 0 else None]


def test_every_figure_is_written_as_png_and_svg(paper):
    for name in FIGURES:
        for ext in ("png", "svg"):
            path = paper / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path


def test_the_central_figure_is_readable_at_900_px(paper):
    height, width = imread(paper / "figures" / f"{CENTRAL}.png").shape[:2]
    assert 900 <= width <= 1400 and height > width  # one row per channel and pair
    svg = (paper / "figures" / f"{CENTRAL}.svg").read_text()
    # text stays text; small_cnn's twin is its own file (zeros of opposite sign), so: both files
    assert "A/A control: SparseML vs gmp (same numbers)" in svg
    assert "±10% margin" in svg


def test_figures_label_the_not_trained_models(paper):
    assert "block4 mask (not trained)" in (paper / "figures" / "throughput.svg").read_text()
    assert "dashed: not trained" in (paper / "figures" / "layer_sparsity.svg").read_text()
    assert "t 95% CI" in (paper / "figures" / "throughput.svg").read_text()


def test_every_table_is_written_as_markdown_and_latex(paper):
    for name in TABLES:
        md = (paper / "tables" / f"{name}.md").read_text()
        tex = (paper / "tables" / f"{name}.tex").read_text()
        assert md.count("\n|") >= 3, name  # header, rule and at least one row
        assert "\\begin{tabular}" in tex and f"\\label{{tab:{name}}}" in tex


def test_report_leads_with_the_a_a_control_then_the_channels(report, paper):
    order = [
        "## What these data can and cannot say",
        "## Answers",
        "### The A/A control",
        "### Does a vendor toolchain's choice change the engine comparison?",
        "### 1. Which engine was faster",
        "### 2. Did pruning speed up",
        "### 3. Does OpenVINO's win survive",
        "### The int8 arm",
        "### Accuracy",
        "### Mask structure",
        "## Methods",
        "## Results",
        "## Failures",
    ]
    positions = [report.index(heading) for heading in order]
    assert positions == sorted(positions)
    html = (paper / "report.html").read_text()
    assert "<table>" in html and f'src="figures/{CENTRAL}.png"' in html
    assert "not drawn" not in report  # every figure's data is in the fixture
    assert "bootstrap" not in report.replace("no bootstrap", "")


def test_the_a_a_control_is_identical_and_near_one(report, channels):
    aa = _section(report, "### The A/A control")
    assert "**Identical models: the pruning implementation cannot bias the engines.**" in aa
    assert "17 on small_cnn" in aa  # signed-zero differences, only where nonzero
    assert "0 on resnet18" not in aa
    assert "both files were measured, each in its own cell" in aa
    pooled = [r for r in channels if r.channel == "pruner" and r.model == "pooled"]
    assert len(pooled) == 3
    for r in pooled:
        assert 0.95 < r.estimate < 1.05 and r.ci_low < 1 < r.ci_high  # the same numbers twice
        said = channel_sentence(r, identical=True, one_file=False)  # not every twin is one file
        assert said in aa  # B, CI and MDE (detection limit)


def test_channel_table_holds_study_summary_numbers(paper, channels):
    rows = _markdown_rows(paper / "tables" / "table_channels.md")
    pooled = [r for r in channels if r.model == "pooled"]
    assert len(rows) == len(pooled) == 21  # 7 channels x 3 engine pairs
    assert rows[0]["channel"] == "pruner"  # the A/A control first
    for row, r in zip(rows, pooled):
        assert (row["channel"], row["engines"]) == (r.channel, f"{r.numerator}/{r.denominator}")
        if math.isfinite(r.estimate):
            assert row["B [95% CI]"] == f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        assert row["Holm p"] == f"{r.p_holm:.3g}"
        assert row["TOST ±10% p"] == f"{r.tost.pvalue:.3g}"
        assert row["p (B ≥ 1.1)"] == f"{r.gap_pvalue:.3g}"
        assert row["MDE"] == f"{r.mde:.1%}"
        assert (row["k"], row["method"], row["rounds"]) == (str(r.k), r.method, str(r.n_rounds))
    arch = _markdown_rows(paper / "tables" / "table_channels_by_architecture.md")
    assert len(arch) == sum(r.model != "pooled" for r in channels)


def test_a_sentence_per_channel_finds_the_invented_bias(report, channels):
    section = _section(report, "### Does a vendor toolchain's choice change the engine comparison?")
    names = list(dict.fromkeys(r.channel for r in channels))
    assert names == ["pruner", "exporter", "profile:uniform", "profile:vendor", "mask:block4"] + [
        "precision",
        "quantizer",
    ]
    for r in channels:
        if r.model == "pooled" and r.channel != "pruner":
            assert f"- {channel_sentence(r)}" in section
    block4 = {
        r.numerator + "/" + r.denominator: r
        for r in channels
        if r.model == "pooled" and r.channel == "mask:block4"
    }
    for pair in ("deepsparse/openvino", "deepsparse/onnxruntime"):
        r = block4[pair]
        assert r.ci_low > 1.0 and abs(math.log(r.estimate / BLOCK4_BIAS)) < 0.05
        assert f"{pair}: a bias in favour of deepsparse, B = {r.estimate:.3f}" in section
    assert "openvino/onnxruntime: no bias larger than 10%" in _block(section, "mask:block4")
    for name in ("exporter", "profile:uniform", "profile:vendor"):  # true B = 1: equivalence shown
        assert _block(section, name).count("no bias larger than 10%") == 3


def test_report_says_what_summary_md_says(results, report):
    copy = results.parent / "summary_copy"
    if not copy.exists():
        shutil.copytree(results, copy, ignore=shutil.ignore_patterns("paper"))
    summary = summary_markdown(StudyStats(copy))
    bullets = [line for line in summary.splitlines() if line.startswith("- ") and "B = " in line]
    assert len(bullets) == 21
    for line in bullets:  # every channel sentence, word for word
        assert line in report
    int8 = [
        line
        for line in summary.splitlines()
        if line.startswith("| small_cnn | ") and "paired" in line
    ]
    for line in int8:  # "| model | engine | quantizer | int8 / fp32 [95% CI] | method |"
        model, engine, quant, ratio = [c.strip() for c in line.strip("|").split("|")][:4]
        if quant in ("torch", "sparseml") and "[" in ratio:
            name = {"torch": "torch.ao", "sparseml": "SparseML"}[quant]
            assert f"| {MACHINE} | {model} | {engine} | {name} | {ratio} | paired |" in report


def test_accuracy_table_names_the_dataset_and_the_not_trained_model(results, paper, report):
    section = _section(report, "### Accuracy")
    assert f"### Accuracy (top-1 of each model on {DATASET})" in section
    assert "accuracy gate of 80%" in section
    rows = _markdown_rows(paper / "tables" / "table1_accuracy.md")
    assert len(rows) == 22
    man = pd.read_json(results / "models" / "manifest.jsonl", lines=True)
    dense = man[man["pruner"] == "none"].set_index("model")["accuracy"]
    for row, (_, rec) in zip(rows, man.iterrows()):
        assert row["model"] == rec["model"]
        assert row["top-1 accuracy (%)"] == f"{rec['accuracy'] * 100:.2f}"
        assert row["drop vs dense (pp)"] == f"{(dense[rec['model']] - rec['accuracy']) * 100:.2f}"
        assert row["trained"] == ("yes" if rec["trained"] else "not trained")
    (block4,) = [r for r in rows if r["model"] == "resnet18" and r["variant"] == "block4 mask"]
    assert block4["trained"] == "not trained"
    assert "| resnet18 | block4 mask (not trained) |" in _section(report, "### 1. Which engine")


def test_int8_section_says_what_each_engine_ran(report):
    section = _section(report, "### The int8 arm")
    said = (
        "DeepSparse ran int8 kernels on SparseML's file only; OpenVINO ran int8 kernels on "
        "torch.ao's file only; ONNX Runtime does not record which kernels ran"
    )
    assert said in section
    assert "mostly measures which int8 graph format each engine supports" in section
    assert "fraction_of_supported_ops 0.0" in section and "Convolution: u8 2" in section
    for quant, name in (("torch", "torch.ao"), ("sparseml", "SparseML")):
        for engine, gain in INT8_GAIN[quant].items():
            line = next(
                line
                for line in section.splitlines()
                if line.startswith(f"| {MACHINE} | small_cnn | {engine} | {name} |")
            )
            estimate = float(line.split("|")[5].split("[")[0])
            assert abs(math.log(estimate / gain)) < 0.05, line
    assert "did not take effect on any of the 2 int8 cell(s)" in section
    assert (
        "- small_cnn, int8 (torch.ao): top-1 92.50% (drop vs dense 2.50 pp; 0.50 pp below"
        in section
    )


def test_precision_section_recovers_openvinos_default_speed_up(report):
    section = _section(report, "### 3. Does OpenVINO's win survive")
    for model in ("resnet18", "small_cnn"):
        line = next(
            line
            for line in section.splitlines()
            if line.startswith(f"| {MACHINE} | {model} | dense | openvino default / openvino f32 |")
        )
        estimate = float(line.split("|")[5].split("[")[0])
        assert abs(math.log(estimate / 1.6)) < 0.05  # the fixture's bf16 gain
    assert "| small_cnn | int8 (torch.ao) | openvino f32-sparse / openvino f32 |" in section
    # bf16 makes OpenVINO win everywhere; at fp32 it still wins on dense, loses on pruned files.
    assert (
        "OpenVINO at its default precision beat DeepSparse (CI below 1) on 4 of 4 model files; "
        "with its precision fixed to fp32 the win survived on 2, was reversed on 2" in section
    )


def test_mask_structure_table_lists_the_pruned_torch_files(paper):
    rows = _markdown_rows(paper / "tables" / "table_mask_structure.md")
    variants = [(r["model"], r["variant"]) for r in rows]
    assert ("small_cnn", "block4 mask") in variants and (
        "small_cnn",
        "int8 (SparseML)",
    ) not in variants
    (block4,) = [r for r in rows if r["model"] == "resnet18" and r["variant"] == "block4 mask"]
    assert block4["zero 1x4 blocks"] == block4["sparsity"]  # every zero lies in a whole 1x4 block


def test_throughput_table_holds_the_geometric_mean_and_t_interval_of_every_cell(results, paper):
    bench = pd.read_json(results / "bench.jsonl", lines=True, precise_float=True)
    ok = bench[bench["status"] == "ok"]
    rows = _markdown_rows(paper / "tables" / "table_throughput.md")
    assert len(rows) == ok["cell"].nunique() == 72
    by_key = {(r["model"], r["variant"], r["engine"], r["precision"]): r for r in rows}
    assert len(by_key) == 72  # variant labels are unique within a model
    (cell,) = ok.loc[
        (ok["model"] == "resnet18") & (ok["mask"] == "block4") & (ok["engine"] == "deepsparse"),
        "cell",
    ].unique()
    logs = np.log(ok.loc[ok["cell"] == cell, "throughput"].to_numpy())
    half = scipy.stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    row = by_key[("resnet18", "block4 mask (not trained)", "deepsparse", "f32")]
    assert row["throughput (img/s)"] == f"{np.exp(logs.mean()):.2f}"
    assert row["95% CI low"] == f"{np.exp(logs.mean() - half):.2f}"
    assert row["95% CI high"] == f"{np.exp(logs.mean() + half):.2f}"
    assert row["trials"] == str(ROUNDS)
    assert (
        "geometric mean of the trials, t 95% CI"
        in (paper / "tables" / "table_throughput.md").read_text()
    )


def test_gzip_table_equals_the_manifest(results, paper):
    man = pd.read_json(results / "models" / "manifest.jsonl", lines=True, precise_float=True)
    dense = man[man["pruner"] == "none"].set_index("model")["gzip_bytes"]
    rows = _markdown_rows(paper / "tables" / "table2_gzip_sizes.md")
    pruned = man[man["pruner"] != "none"]
    assert len(rows) == len(pruned) == 20
    for row, (_, rec) in zip(rows, pruned.iterrows()):
        assert (row["model"], row["exporter"]) == (rec["model"], rec["exporter"])
        assert int(row["pruned gzip (bytes)"]) == rec["gzip_bytes"]
        assert int(row["dense gzip (bytes)"]) == dense[rec["model"]]
        assert row["reduction (×)"] == f"{dense[rec['model']] / rec['gzip_bytes']:.2f}"


def test_cpu_table_lists_present_isa_flags_and_cache_sizes(paper):
    (row,) = _markdown_rows(paper / "tables" / "table_cpu.md")
    assert row["machine"] == MACHINE and row["microarchitecture"] == "Zen 4"
    assert row["isa"] == "avx2, avx512_bf16, avx512f"  # amx_tile is recorded as absent
    assert (row["l1d"], row["l2"], row["l3"]) == ("32 KiB", "1 MiB", "32 MiB")


def test_report_names_the_limits_of_the_data(report):
    limits = _section(report, "## What these data can and cannot say")
    assert f"single machine ({MACHINE})" in limits
    assert "`smoke` preset" in limits
    assert "trained from random initialisation on digits" in limits
    assert "random (seeded) weights" not in limits  # the models passed through the accuracy gate
    assert "5 of 22 model files are below the accuracy gate of 80%" in limits
    assert "their speed is still measured" in limits and "accuracy is meaningless" in limits
    assert "8×8 digits" in limits
    assert "The quantizer B mostly measures graph-format support" in limits
    assert "sparse-weights decompression (precision f32-sparse) did not take effect" in limits
    assert "no AMX" in limits


def test_methods_state_the_design_and_the_statistics(report):
    methods = _section(report, "## Methods")
    assert (
        "rounds per block: 5–5" in methods
        and "2 block(s): resnet18/sync, small_cnn/sync" in methods
    )
    assert "odd rounds run the previous round's order reversed" in methods
    assert "Student-t 95% interval on log throughput" in methods
    assert "unpaired Welch-Satterthwaite contrast, labelled 'unpaired' (here: 0 of" in methods
    assert (
        "with equal weights (the mean over architectures, Satterthwaite dof) below k = 5" in methods
        and "here k = 1, 2" in methods
    )
    assert "margin ±10%, confidence 95%" in methods and "80% power" in methods
    assert "Holm across the family of pooled B's (21 tests)" in methods
    assert "`max_trials` = 5" in methods and "`target_ci` = 0.05" in methods
    assert "Accuracy gate (`train.accuracy_gate`): 0.8." in methods
    assert "Time per stage (timings.csv" in methods


def test_report_states_the_cpu_steal_and_noise_floor(results, report):
    steal = pd.read_json(results / "bench.jsonl", lines=True).query("status == 'ok'")["cpu_steal"]
    assert (
        f"CPU steal during timed trials: mean {steal.mean():.1%}, median {steal.median():.1%}, "
        f"max {steal.max():.1%}; {(steal > 0.05).mean():.0%} of trials above 5%" in report
    )
    assert "rejected for CPU steal above `max_cpu_steal` = 0.05 and repeated: 1 (kept" in report
    assert (
        f"Noise floor of `{MACHINE}` (study.bench.noise: a fixed numpy float32 matmul 384x384, no engine, "
        "timed in trials of 0.3 s on 2 thread(s) before benchmarking): per-trial CV 8.0% (median "
        "of 2 probe(s), range 4.2%–11.8%)" in report
    )


def test_report_states_replication_only_when_cells_were_measured_twice(report, tmp_path):
    from study.stats.replication import replication_summary, replication_tests

    assert "Replication across runs" not in report
    twice = write_results(tmp_path / "twice")
    path = twice / "bench.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    again = [dict(r, run_id="run-1", throughput=r["throughput"] * 1.5) for r in rows]  # faster
    with path.open("a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in again)
    md = build_paper(twice).report_md.read_text()
    both = pd.DataFrame(rows + again)
    cell, ratio = (replication_summary(replication_tests(both, lv), lv) for lv in ("cell", "ratio"))
    assert cell.rejected > 0.5 and ratio.rejected < cell.rejected  # the shift is common to engines
    assert f"{cell.units} cells were measured in more than one run (2 runs)" in md


def test_report_lists_the_failures(results, report):
    entry = json.loads((results / "failures.jsonl").read_text())
    assert "bench.jsonl holds 1 failure row(s)." in report  # the rejected trial is not a failure
    assert f"| {entry['stage']} | {entry['model']} | {entry['pruner']} |" in report


def test_second_build_is_byte_identical(results, paper, tmp_path):
    again = build_paper(results, tmp_path / "again").out_dir
    first = sorted(p.relative_to(paper) for p in paper.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (paper / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_the_results_page_is_generated_from_the_run_with_its_date_machine_and_command(
    results, channels, tmp_path
):
    page = tmp_path / "docs" / "results.md"
    assert main([str(results), "--out", str(tmp_path / "p"), "--results-page", str(page)]) == 0
    text = page.read_text()
    assert f"from the run folder `{results.name}`" in text and MACHINE in text
    assert "made by `python -m study.compare" in text
    assert (page.parent / "figures" / f"{CENTRAL}.png").is_file()
    assert f"](figures/{CENTRAL}.png)" in text  # the link resolves beside the page
    block4 = next(
        r
        for r in channels
        if r.channel == "mask:block4"
        and r.model == "pooled"
        and (r.numerator, r.denominator) == ("deepsparse", "openvino")
    )
    # The numbers are the run's, as the report prints them (a page that typed them could not match).
    assert f"B = {block4.estimate:.3f}" in text


def test_the_results_page_answers_the_per_architecture_questions_and_shows_the_profiles(
    results, tmp_path
):
    """Questions 1 and 2, Table 2, and (when the run profiled its files) where the time goes."""
    run = tmp_path / "run"
    shutil.copytree(results, run)
    profile = {
        "model": "resnet18",
        "label": "reference s0.90",
        "engine": "deepsparse",
        "bound": 2.5,
        "sentence": "pruning cannot speed resnet18 up by more than 2.5x on deepsparse",
        "shares": {"sparse": 0.6, "memory": 0.4},
    }
    failed = {"model": "resnet18", "label": "dense", "engine": "openvino", "error": "boom"}
    (run / "opprofile.json").write_text(json.dumps({"profiles": [profile, failed]}))
    page = tmp_path / "docs" / "results.md"
    assert main([str(run), "--out", str(tmp_path / "p"), "--results-page", str(page)]) == 0
    text = page.read_text()
    for heading in (
        "## The original study's questions, per architecture",
        "### 1. Which engine was faster, and by how much?",
        "### 2. Did pruning speed up each architecture on each engine, and from what sparsity?",
        "### Where the time goes: what pruning could gain at most",
        "**Table 2. Size of the ONNX files after gzip",
    ):
        assert heading in text, heading
    assert "| resnet18 | reference s0.90 | deepsparse | 60% | 40% | 2.50x |" in text
    assert "Profiles that failed: resnet18 dense on openvino." in text
    assert (page.parent / "figures" / "opprofile.png").is_file()
    assert "](figures/opprofile.png)" in text


def test_the_results_page_total_leaves_out_the_gzip_threads(results, tmp_path):
    """gzip sizes are measured beside the making: their seconds are not added to the total."""
    run = tmp_path / "run"
    shutil.copytree(results, run)
    timings = pd.DataFrame(
        {
            "model": ["m", "m", "m", "all"],
            "stage": ["train dense", "gzip -9 m.onnx", "export torch", "benchmark"],
            "seconds": [60.0, 600.0, 60.0, 120.0],
            "reused": [0, 0, 0, 0],
        }
    )
    timings.to_csv(run / "timings.csv", index=False)
    page = tmp_path / "docs" / "results.md"
    assert main([str(run), "--out", str(tmp_path / "p"), "--results-page", str(page)]) == 0
    assert "Its stages took 4.0 min in all, 2.0 min of it benchmarking" in page.read_text()
