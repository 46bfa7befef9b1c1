"""The original study's seven architectures end to end (issue 22 item 1): the `seven_ci` preset.

One run of ``python -m study.compare --preset seven_ci`` (64 digits, one epoch, files exported
at 32 px or each architecture's minimum, two trials a cell): every architecture through every
factor, fp32 and int8 (both quantizers, both exporters), on ONNX Runtime, OpenVINO and
DeepSparse. Per architecture the test asserts that every file's zero check is ok and that every
file has ok rows on the three engines, except the known problems listed in :data:`KNOWN`, which
must show up exactly as recorded (a failed cell with its reason, or a failed zero check): a new
failure fails the test, and so does a known one that went away (remove it from the list).

Cost, measured 2026-12-04 on the 2-core Zen 5 while other jobs kept its load average at 10-12 (so
several times what a quiet machine takes): making the files took 9-15 min per architecture
(ResNet-50: the two QATs 129 s and 310 s; VGG19's dense training 97 s and each pruning 60-250 s;
the parent process peaked at 8.9 GB RSS with VGG19's models cached), and MobileNetV1's benchmark
(27 cells in 2 sub-blocks, every cell ok) 358 s. Far over the few minutes asked for: see the
branch report before keeping it in the default run.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from study.compare import run_study
from study.config import load_config
from study.design import variants
from study.records.jsonl import read_jsonl
from study.records.manifest import read_manifest
from study.records.results import load_results

ENGINES = ("onnxruntime", "openvino", "deepsparse")
SEVEN = ("resnet50", "mobilenetv1", "vgg19", "inception_v3", "efficientnet_b0",
         "efficientnet_b2", "mobilevit_xs")  # fmt: skip

# (model, variant name, engine | "zeros" | "made") -> a regex the recorded reason must match.
KNOWN: dict[tuple[str, str, str], str] = {
    # torch.ao FX traces timm's BatchNormAct2d with `self.training` baked in: the converted int8
    # MobileNetV1 calls batch_norm(training=True) 27 times, so a batch of one 1x1 map (32 px)
    # cannot run, and at 224 px the file normalises with each batch's own statistics.
    ("mobilenetv1", "mobilenetv1-gmp-global-unstructured-int8torch-torch-s0.80", "made"): (
        r"Expected more than 1 value per channel when training"
    ),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = load_config("seven_ci")
    out = tmp_path_factory.mktemp("seven_ci")
    run_study(cfg, out, progress=False, build_paper=False)
    return out, read_manifest(out), load_results(out / "bench.jsonl")


@pytest.mark.slow
def test_the_preset_is_the_seven_through_every_factor():
    cfg = load_config("seven_ci")
    assert cfg.models == SEVEN and set(cfg.engines) == set(ENGINES)
    assert all(cfg.int8_for(m) for m in SEVEN)
    assert set(cfg.levels("quantizer")) == {"torch", "sparseml"}
    assert set(cfg.levels("exporter")) == {"torch", "sparseml"}


@pytest.mark.slow
@pytest.mark.parametrize("model", SEVEN)
def test_every_file_of_each_architecture_is_checked_and_runs_on_the_three_engines(run, model):
    out, records, rows = run
    cfg = load_config("seven_ci")
    wanted = {v.name: v for v in variants(cfg, model)}
    assert {v.quant for v in wanted.values()} == {"none", "torch", "sparseml"}
    assert {v.exporter for v in wanted.values()} == {"torch", "sparseml"}
    made = {_stem(r.onnx_path): r for r in records if r.model == model}
    made.update({name: r for r in records for name in _aliases(r, wanted) if r.model == model})
    failures = read_jsonl(out / "failures.jsonl", missing_ok=True)
    why_not_made = "; ".join(f["reason"] for f in failures if f["model"] == model)
    problems: dict[tuple[str, str, str], str] = {}
    for name, v in wanted.items():
        rec = made.get(name)
        if rec is None:
            problems[(model, name, "made")] = why_not_made or "no record, no failure"
            continue
        if not rec.zero_check_ok:
            problems[(model, name, "zeros")] = rec.zero_check_detail
        for engine in ENGINES:
            sel = rows[(rows["model"] == model) & (rows["engine"] == engine)]
            for column, value in v.columns().items():
                sel = sel[sel[column] == value]
            if not (sel["status"] == "ok").any():
                errors = sorted(set(sel.loc[sel["status"] == "failed", "error"].astype(str)))
                problems[(model, name, engine)] = "; ".join(errors) or "no row"
    known = {k: v for k, v in KNOWN.items() if k[0] == model}
    assert set(problems) == set(known), problems
    for key, pattern in known.items():
        assert re.search(pattern, problems[key]), (key, problems[key])


def _stem(onnx_path: str) -> str:
    return onnx_path.rsplit("/", 1)[-1].removesuffix(".onnx")


def _aliases(rec, wanted) -> list[str]:
    """The variants a record stands for (SparseML's A/A file points at gmp's identical file)."""
    cols = ("pruner", "profile", "mask", "quant", "exporter")
    return [n for n, v in wanted.items() if all(getattr(rec, c) == getattr(v, c) for c in cols)]


@pytest.mark.slow
def test_split_blocks_measure_the_reference_in_every_sub_block(run):
    out, records, rows = run
    parts = defaultdict(set)
    for block, path in rows[["block", "onnx_path"]].drop_duplicates().itertuples(index=False):
        parts[block.split("/part")[0]].add((block, path))
    for block, pairs in parts.items():
        sub = {b for b, _ in pairs}
        if len(sub) == 1:
            continue
        model = block.split("/")[0]
        ref = f"{model}-gmp-global-unstructured-fp32-torch-s0.80.onnx"
        assert all(any(p.endswith(ref) for b2, p in pairs if b2 == b) for b in sub), block
