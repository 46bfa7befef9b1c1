"""Blocks that fit (study.bench.split): the memory estimate against real workers, the split of a
block into sub-blocks that share the reference cells, the refusal of a block that cannot fit, and
a B from a split block equal to the paired t computed by hand from its own sub-block's rounds."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter, namedtuple

import numpy as np
import onnx
import pandas as pd
import pytest
import scipy.stats
from onnx import TensorProto, helper, numpy_helper

from study.bench import BenchSettings, CellSpec, run_benchmark
from study.bench.split import ENGINE_MEMORY, cell_memory, split_cells
from study.records.schema import TrialRow
from study.stats import Channel, channel_bias
from tests.study.test_engines import tiny_onnx

GIB = 2**30
ENGINES3 = ("onnxruntime", "openvino", "deepsparse")


def _block(n_variants: int, engines=ENGINES3, block="m/sync") -> list[CellSpec]:
    """The reference file (anchor) and ``n_variants`` other files, each on every engine."""
    ref = [CellSpec("ref.onnx", e, block=block, anchor=True) for e in engines]
    var = [CellSpec(f"v{i}.onnx", e, block=block) for i in range(n_variants) for e in engines]
    return ref + var


def _check_split(cells: list[CellSpec], out: list[CellSpec], parts: tuple[str, ...]) -> None:
    """Every sub-block holds every anchor; every other cell is in exactly one sub-block."""
    anchors = {(c.onnx_path, c.engine) for c in cells if c.anchor}
    others = Counter((c.onnx_path, c.engine) for c in out if not c.anchor)
    assert others == Counter((c.onnx_path, c.engine) for c in cells if not c.anchor)
    for part in parts:
        mine = [c for c in out if c.block == part]
        assert {(c.onnx_path, c.engine) for c in mine if c.anchor} == anchors
    files = {}
    for c in out:
        if not c.anchor:
            files.setdefault(c.onnx_path, set()).add(c.block)
    assert all(len(blocks) == 1 for blocks in files.values())  # a file's engines stay together
    assert {c.block for c in out} == set(parts)


def test_a_block_that_fits_is_left_as_it_is():
    cells = _block(2)
    out, (plan,) = split_cells(cells, max_live_workers=9, budget_bytes=GIB, memory=lambda c: 1)
    assert out == cells and plan.parts == ("m/sync",) and plan.total_bytes == 9


def test_too_many_cells_split_into_sub_blocks_sharing_the_reference():
    cells = _block(8)  # 3 reference cells + 24: at most 12 at once -> 3 variant files per part
    out, (plan,) = split_cells(cells, max_live_workers=12, budget_bytes=GIB, memory=lambda c: 1)
    assert plan.parts == tuple(f"m/sync/part{i}of3" for i in (1, 2, 3))
    _check_split(cells, out, plan.parts)
    assert [sum(c.block == p for c in out) for p in plan.parts] == [12, 12, 9]
    assert len(out) == len(cells) + 2 * 3  # the reference's 3 cells twice more, nothing else


def test_too_much_memory_splits_by_the_estimate():
    # A VGG19-sized block: 550 MB files (~4.1 GiB a file on three engines); 12 cells fit the count, not 9 GiB.
    cells = _block(3)
    sizes = {"ref.onnx": 550 * 2**20, **{f"v{i}.onnx": 550 * 2**20 for i in range(3)}}
    budget = 9 * GIB

    def memory(c):
        return cell_memory(c, sizes[c.onnx_path])

    out, (plan,) = split_cells(cells, max_live_workers=12, budget_bytes=budget, memory=memory)
    _check_split(cells, out, plan.parts)
    assert len(plan.parts) == 3  # each sub-block: the reference and one variant, ~8.3 GiB
    for part in plan.parts:
        assert sum(memory(c) for c in out if c.block == part) <= budget
    assert plan.total_bytes == sum(memory(c) for c in cells) > budget
    assert "split into 3 sub-blocks" in plan.describe()


def test_a_block_that_cannot_fit_is_refused_with_the_estimate_and_the_fix():
    cells = _block(2)
    with pytest.raises(
        ValueError,
        match=r"block 'm/sync' cannot fit: a file on every engine and the reference cells it "
        r"pairs with need 6 workers and an estimated 6\.0 GiB at once, more than "
        r"`max_live_workers`=12 or the memory budget 4\.0 GiB; fix: fewer engines .*, or a "
        r"machine with at least 6\.7 GiB available",
    ):
        split_cells(cells, max_live_workers=12, budget_bytes=4 * GIB, memory=lambda c: GIB)
    with pytest.raises(ValueError, match=r"need 6 workers .*raise max_live_workers to at least 6"):
        split_cells(cells, max_live_workers=5, budget_bytes=10**15, memory=lambda c: 1)


def test_run_benchmark_refuses_a_block_the_machine_cannot_hold_before_measuring(
    tmp_path, monkeypatch
):
    memory = namedtuple("svmem", "available")
    monkeypatch.setattr("psutil.virtual_memory", lambda: memory(available=int(0.6 * GIB)))
    path = tiny_onnx(tmp_path / "m.onnx")
    cells = [CellSpec(path, e, block="b", anchor=True) for e in ENGINES3]  # 160 + 180 + 300 MiB
    with pytest.raises(ValueError, match=r"block 'b' cannot fit: .* an estimated 0\.6 GiB .*"
                       r"memory budget 0\.5 GiB"):  # fmt: skip
        run_benchmark(cells, BenchSettings(), tmp_path / "b.jsonl", progress=False)
    assert not (tmp_path / "b.jsonl").exists()


def test_a_resumed_run_keeps_the_sub_blocks_it_was_planned_with(tmp_path, monkeypatch):
    """The split depends on the memory available when a run starts; resumed on a machine with
    more (or less) free memory, the run keeps its plan, so its finished replicates count."""
    memory = namedtuple("svmem", "available")
    paths = [tiny_onnx(tmp_path / f"{n}.onnx") for n in ("ref", "v0", "v1")]
    cells = [CellSpec(paths[0], "onnxruntime", block="b", anchor=True)]
    cells += [CellSpec(p, "onnxruntime", block="b") for p in paths[1:]]
    settings = BenchSettings(min_trials=2, max_trials=2, trial_seconds=0.02, warmup_max_seconds=0.05,
                             noise_floor_seconds=0)  # fmt: skip
    out = tmp_path / "b.jsonl"
    # 400 MiB budget: a sub-block of the reference and one variant (2 x 160 MiB), not all three
    monkeypatch.setattr("psutil.virtual_memory", lambda: memory(available=int(400 * 2**20 / 0.9)))
    first = run_benchmark(cells, settings, out, progress=False)
    assert {r.block for r in first} == {"b/part1of2", "b/part2of2"}
    plan = json.loads((tmp_path / "bench_plan.json").read_text())
    ((machine, planned),) = plan.items()
    assert planned["blocks"][0]["parts"] == ["b/part1of2", "b/part2of2"]
    lines = out.read_text().count("\n")
    monkeypatch.setattr("psutil.virtual_memory", lambda: memory(available=64 * GIB))
    again = run_benchmark(cells, settings, out, progress=False)
    assert out.read_text().count("\n") == lines  # nothing measured again
    assert {r.block for r in again} == {"b/part1of2", "b/part2of2"}
    fresh = run_benchmark(cells, settings, tmp_path / "c.jsonl", progress=False, resume=False)
    assert {r.block for r in fresh} == {"b"}  # a new run plans with today's memory


# --- the estimate against real workers ------------------------------------------------------


@pytest.fixture(scope="module")
def gemm_64mb(tmp_path_factory) -> str:
    """y = x @ W.T with W 8192 x 2048 fp32 (64 MiB of weights)."""
    w = np.random.default_rng(0).standard_normal((8192, 2048), dtype=np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2048])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8192])
    node = helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)
    graph = helper.make_graph([node], "gemm", [x], [y], [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("gemm") / "gemm.onnx"
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("engine", ENGINES3)
def test_the_estimate_bounds_a_real_worker_and_is_not_loose(engine, gemm_64mb):
    from benchmarks.worker_memory import worker_rss

    measured = worker_rss(gemm_64mb, engine)
    estimate = cell_memory(CellSpec(gemm_64mb, engine))
    # an upper bound, not a wild one (onnxruntime's worker on this file: USS 162 MB, estimate 262)
    assert measured <= estimate <= 4 * measured, (engine, measured / 2**20, estimate / 2**20)
    assert engine in ENGINE_MEMORY


# --- B inside a split block ------------------------------------------------------------------


def _rows(rng: np.random.Generator) -> pd.DataFrame:
    """Two sub-blocks of one block: the reference (anchor) and one variant file in each, on two
    engines, 8 rounds each, a drift per round common to the cells of that round; the reference's
    cells keep their ids in both sub-blocks, as the harness writes them. In part 1 the machine
    is faster and the reference runs 0.5 log units faster on deepsparse than in part 2."""
    base = {"ref": 0.0, "v1": -0.2, "v2": 0.1}  # true log throughputs of each file...
    engine_effect = {"deepsparse": 0.3, "openvino": 0.0}  # ... plus the engine's ...
    bias = {("v2", "deepsparse"): math.log(1.07)}  # ... plus B of v2 on deepsparse / openvino
    rows = []
    for part, variant in (("m/sync/part1of2", "v1"), ("m/sync/part2of2", "v2")):
        level = 2.0 if part.startswith("m/sync/part1") else 0.0  # part 1 ran on a faster machine
        for r in range(8):
            drift = level + rng.normal(0, 0.3)
            for f, engine in itertools.product(("ref", variant), engine_effect):
                log_x = 4.0 + base[f] + engine_effect[engine] + bias.get((f, engine), 0.0)
                if variant == "v1" and (f, engine) == ("ref", "deepsparse"):
                    log_x += 0.5  # the reference ran differently in part 1: no B may see it
                profile = "global" if f == "ref" else ("uniform" if f == "v1" else "vendor")
                cell = hashlib.sha256(f"{f}/{engine}".encode()).hexdigest()[:12]
                rows.append(TrialRow(
                    run_id="r", machine="m0", cell=cell, model="m", sparsity=0.8,
                    onnx_path=f"{f}.onnx", onnx_sha256=f, engine=engine, precision="f32",
                    scenario="sync", batch_size=1, threads=2, items=50, seconds=1.0, calls=50,
                    pruner="gmp", profile=profile, mask="unstructured", quant="none",
                    exporter="torch", trial=r, round=r, block=part,
                    throughput=float(np.exp(log_x + drift + rng.normal(0, 0.02))),
                ).to_dict())  # fmt: skip
    return pd.DataFrame(rows)


def test_b_of_a_split_block_pairs_the_variant_with_the_reference_of_its_sub_block():
    df = _rows(np.random.default_rng(3))
    ref = {"pruner": "gmp", "profile": "global", "mask": "unstructured", "quant": "none",
           "exporter": "torch"}  # fmt: skip
    channel = Channel("profile:vendor", {**ref, "profile": "vendor"}, ref)
    (row, _) = channel_bias(df, channel, "deepsparse", "openvino")
    part2 = df[df["block"] == "m/sync/part2of2"]
    log_x = part2.assign(lx=np.log(part2["throughput"])).pivot_table(
        index="round", columns=["onnx_path", "engine"], values="lx"
    )
    d = (
        log_x[("v2.onnx", "deepsparse")] - log_x[("v2.onnx", "openvino")]
        - log_x[("ref.onnx", "deepsparse")] + log_x[("ref.onnx", "openvino")]
    )  # fmt: skip
    t = scipy.stats.ttest_1samp(d, 0.0)
    assert row.method == "paired" and row.n_rounds == 8 and row.dof == 7
    assert row.log_estimate == pytest.approx(d.mean(), rel=1e-12)
    assert row.pvalue == pytest.approx(t.pvalue, rel=1e-9)
    ci = t.confidence_interval()
    assert (row.ci_low, row.ci_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert row.estimate == pytest.approx(1.07, abs=0.03)
    # a B that mixed in part 1's reference trials would be off by about half that 0.5
    logs = np.log(df["throughput"]).groupby([df["onnx_path"], df["engine"]]).mean()
    mixed = (
        logs[("v2.onnx", "deepsparse")] - logs[("v2.onnx", "openvino")]
        - logs[("ref.onnx", "deepsparse")] + logs[("ref.onnx", "openvino")]
    )  # fmt: skip
    assert abs(mixed - d.mean()) > 0.2


# --- the study's blocks ------------------------------------------------------------------------


def test_the_study_splits_an_architecture_so_every_channel_pairs_in_a_sub_block(tmp_path):
    from types import SimpleNamespace

    from study.compare import bench_cells
    from study.config import load_config
    from study.design import channels, variants

    cfg = load_config("seven_ci")
    records = [
        SimpleNamespace(model="vgg19", onnx_path=f"models/{v.name}.onnx", extra={}, **v.columns())
        for v in variants(cfg, "vgg19")
    ]
    cells, _ = bench_cells(cfg, records, tmp_path, {"avx512f": True}, "m1")
    anchors = {(c.quant, c.engine) for c in cells if c.anchor}
    assert anchors == {(q, e) for q in ("none", "torch") for e in ENGINES3}
    out, (plan,) = split_cells(cells, max_live_workers=12, budget_bytes=10**15, memory=lambda c: 1)
    others = Counter((c.onnx_path, c.engine) for c in out if not c.anchor)
    assert others == Counter((c.onnx_path, c.engine) for c in cells if not c.anchor)
    assert {(c.onnx_path, c.engine) for c in out if c.anchor} == {
        (c.onnx_path, c.engine) for c in cells if c.anchor
    }
    assert len(plan.parts) > 1 and all(sum(c.block == p for c in out) <= 12 for p in plan.parts)
    for part in plan.parts:  # an anchor's cells come together: all engines of its file
        mine = [c for c in out if c.block == part]
        assert len(mine) % 3 == 0 and len({c.onnx_path for c in mine}) * 3 == len(mine)
    fp32_parts = {c.block for c in out if c.quant == "none" and not c.anchor and c.pruner != "none"}
    int8_ref = {c.block for c in out if c.anchor and c.quant == "torch"}
    assert fp32_parts - int8_ref  # fp32 variants need not carry the int8 reference's cells
    for channel in channels(cfg, "vgg19"):  # both files of every channel in one sub-block

        def blocks(level):
            return {c.block for c in out if all(getattr(c, k) == v for k, v in level.items())}

        assert blocks(channel.level_a) & blocks(channel.level_b), channel.name
