"""Replicates at the process level: each block measured k times by fresh worker processes.

Real spawned workers on the tiny ONNX model of test_engines (as in test_bench), k = 3 replicates of
three rounds each, two blocks: the processes, the interleaving, the seeded orders, a crash that
costs one replicate, the statistics' ``n_replicates``, and the refusal of bad settings.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

import study.presets
from study.bench import BenchSettings, CellSpec, main, round_order, run_benchmark
from study.bench.scheduling import interleave, load_order
from study.config import load_config
from study.engines import ENGINES
from study.records.results import append_rows, load_results
from study.records.schema import TrialRow
from study.stats import contrast
from tests.study._flaky_engine import FlakyEngine
from tests.study.test_engines import FixedEngine, tiny_onnx

K = 3
SETTINGS = BenchSettings(
    trial_seconds=0.05,
    max_seconds_per_cell=60,
    min_trials=3,
    max_trials=3,  # exactly three rounds per replicate
    warmup_max_seconds=0.2,
    warmup_window_seconds=0.02,
    replicates=K,
)
REGISTRY = {**ENGINES, "fixed": FixedEngine, "flaky": FlakyEngine}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("rep_models")
    return [tiny_onnx(folder / f"m{i}.onnx") for i in range(3)]


@pytest.fixture(scope="module")
def replicated(models, tmp_path_factory):
    """Block "a": three onnxruntime cells; block "b": two fixed-throughput cells; k = 3."""
    out = tmp_path_factory.mktemp("rep") / "bench.jsonl"
    cells = [CellSpec(m, "onnxruntime", threads=1, block="a") for m in models]
    cells += [CellSpec(m, "fixed", threads=1, block="b") for m in models[:2]]
    rows = run_benchmark(cells, SETTINGS, out, progress=False, engines=REGISTRY)
    return out, rows


def _bench(row: TrialRow) -> dict:
    return row.engine_settings["bench"]


def test_each_replicate_is_a_fresh_set_of_worker_processes(replicated):
    _, rows = replicated
    assert {r.status for r in rows} == {"ok"}
    pids: dict[tuple[str, int], set[int]] = {}
    for r in rows:
        pids.setdefault((r.block, r.replicate), set()).add(_bench(r)["worker_pid"])
    assert sorted(pids) == [(b, k) for b in "ab" for k in range(K)]
    for (block, _), found in pids.items():  # one process per cell of the replicate
        assert len(found) == (3 if block == "a" else 2)
    every = [p for found in pids.values() for p in found]
    assert len(set(every)) == len(every) == K * 5  # no process serves two replicates
    per_cell = {}
    for r in rows:  # within a replicate, one cell is one process across its rounds
        per_cell.setdefault((r.cell, r.replicate), set()).add(_bench(r)["worker_pid"])
    assert all(len(p) == 1 for p in per_cell.values())


def test_replicates_of_the_blocks_are_interleaved_in_time(replicated):
    _, rows = replicated
    spans: dict[tuple[str, int], list[str]] = {}
    for r in rows:
        spans.setdefault((r.block, r.replicate), []).append(r.timestamp)
    order = sorted(spans, key=lambda u: min(spans[u]))
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    for earlier, later in zip(order, order[1:]):  # one replicate at a time
        assert max(spans[earlier]) < min(spans[later])
    assert interleave({"a": [0, 1, 2], "b": [3]}) == [("a", 0), ("b", 3), ("a", 1), ("a", 2)]


def test_every_replicate_runs_the_settings_rounds(replicated):
    _, rows = replicated
    rounds: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        rounds.setdefault((r.cell, r.replicate), []).append(r.round)
    assert len(rounds) == 5 * K and all(v == [0, 1, 2] for v in rounds.values())
    assert {_bench(r)["replicates"] for r in rows} == {K}
    trials = [r.trial for r in rows if r.cell == rows[0].cell]
    assert trials == list(range(3 * K))  # trial ids stay unique over the replicates


def test_orders_are_seeded_per_replicate_differ_between_them_and_repeat(replicated):
    _, rows = replicated
    a = [r for r in rows if r.block == "a"]
    keys = sorted({r.cell for r in a})
    signatures = []
    for k in range(K):
        mine = sorted((r for r in a if r.replicate == k), key=lambda r: r.timestamp)
        for rnd in range(3):  # the rows follow the replicate's pure schedule
            order = [r.cell for r in mine if r.round == rnd]
            assert order == round_order(keys, seed=0, block="a", round=rnd, replicate=k)
        ranks = {r.cell: _bench(r)["load_rank"] for r in mine}
        loads = sorted(ranks, key=ranks.get)
        assert loads == load_order(keys, seed=0, block="a", replicate=k)
        orders = [tuple(r.cell for r in mine if r.round == rnd) for rnd in (0, 2)]
        signatures.append((*orders, tuple(loads)))
    # The replicates drew their own orders (3 cells: all three alike by chance has p = 6^-6).
    assert len(set(signatures)) > 1
    # Pure: the same (seed, block, replicate) repeats the orders; replicates and seeds differ.
    six = [f"k{i}" for i in range(6)]
    for fn, extra in ((round_order, {"round": 0}), (load_order, {})):
        draws = {tuple(fn(six, seed=0, block="a", replicate=k, **extra)) for k in range(K)}
        assert len(draws) == K
        assert fn(six[::-1], seed=0, block="a", replicate=1, **extra) == fn(
            six, seed=0, block="a", replicate=1, **extra
        )
        assert fn(six, seed=1, block="a", replicate=1, **extra) != fn(
            six, seed=0, block="a", replicate=1, **extra
        )
    with pytest.raises(ValueError, match=r"`replicate` must be an integer >= 0; got -1"):
        round_order(keys, seed=0, block="a", round=0, replicate=-1)


def test_the_contrast_rests_on_k_replicates_as_scipy_computes_it(replicated):
    out, _ = replicated
    df = load_results(out)
    a = df[df["block"] == "a"]
    c0, c1 = sorted(a["cell"].unique())[:2]
    result = contrast(df, {c0: 1, c1: -1})
    assert (result.n_replicates, result.level, result.dof) == (K, "replicate", K - 1)
    # Outside reference: each replicate's mean of the round-paired log ratios, then scipy's t.
    pivot = a.pivot_table(index=["replicate", "round"], columns="cell", values="throughput")
    d = np.log(pivot[c0]) - np.log(pivot[c1])
    means = d.groupby(level="replicate").mean().to_numpy()
    ref = stats.ttest_1samp(means, 0.0)
    low, high = ref.confidence_interval(0.95)
    assert result.estimate == pytest.approx(means.mean(), rel=1e-12)
    assert result.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_a_crashed_replicate_costs_only_its_own_rows(models, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAKY_FLAG", str(tmp_path / "crashed-once"))
    cells = [CellSpec(models[0], e, threads=1, block="f") for e in ("flaky", "onnxruntime")]
    rows = run_benchmark(cells, SETTINGS, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    flaky = [r for r in rows if r.engine == "flaky"]
    (failure,) = [r for r in flaky if r.status == "failed"]
    assert failure.replicate == 0 and failure.error == "worker process died with exit code 1"
    assert sorted({r.replicate for r in flaky if r.status == "ok"}) == [1, 2]
    assert all(len([r for r in flaky if r.replicate == k]) == 3 for k in (1, 2))
    ort = [r for r in rows if r.engine == "onnxruntime"]
    assert {r.status for r in ort} == {"ok"} and sorted({r.replicate for r in ort}) == [0, 1, 2]
    assert len([r for r in ort if r.replicate == 0]) == 3  # the other cell's replicate stands
    df = load_results(tmp_path / "b.jsonl")
    result = contrast(df, {flaky[-1].cell: 1, ort[0].cell: -1})
    assert result.n_replicates == 2 and result.dof == 1
    assert "rests on 2 of 3 replicates" in result.note
    again = run_benchmark(cells, SETTINGS, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    assert len(again) == len(rows)  # the crashed replicate is complete: not redone


def test_more_replicates_on_resume_adds_them_after_the_complete_ones(models, tmp_path):
    cells = [CellSpec(m, "fixed", threads=1, block="b") for m in models[:2]]
    one = dataclasses.replace(SETTINGS, replicates=1)
    first = run_benchmark(cells, one, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    rows = run_benchmark(cells, SETTINGS, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    assert sorted({(r.run_id, r.replicate) for r in rows}) == [
        (first[0].run_id, k) for k in range(K)
    ]
    kept = [(r.cell, r.trial, r.timestamp) for r in rows if r.replicate == 0]
    assert kept == [(r.cell, r.trial, r.timestamp) for r in first]  # kept, not measured again


def test_rows_of_abandoned_replicates_are_dropped_by_both_loaders(model_rows, tmp_path):
    from paper.load import load_results as paper_load

    append_rows(tmp_path / "bench.jsonl", model_rows)
    kept = load_results(tmp_path / "bench.jsonl")
    assert sorted(set(kept["replicate"])) == [1]
    assert sorted(set(paper_load(tmp_path).bench["replicate"])) == [1]
    everything = load_results(tmp_path / "bench.jsonl", abandoned=True)
    assert len(everything) == len(model_rows)


@pytest.fixture
def model_rows() -> list[TrialRow]:
    """Replicate 0 (two ok rows and its abandoned mark) and replicate 1 (one ok row) of one run."""

    def row(replicate: int, trial: int, status: str = "ok") -> TrialRow:
        return TrialRow(
            "run", "m0", "c1", trial, "tiny", "none", "torch", 0.0, "m.onnx", "", "onnxruntime",
            "f32", "sync", 1, 1, 10, 0.1, 100.0 if status == "ok" else math.nan, 10,
            status=status, block="b", round=trial if status == "ok" else -1, replicate=replicate,
        )  # fmt: skip

    return [row(0, 0), row(0, 1), row(0, -1, "abandoned"), row(1, 2)]


# --- bad settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3"])
def test_bad_replicates_are_refused_with_the_allowed_values(model, tmp_path, bad):
    message = rf"`replicates` must be an integer >= 1 \(1: .* or k >= 2 replicates\); got {bad!r}"
    settings = dataclasses.replace(SETTINGS, replicates=bad)
    with pytest.raises(ValueError, match=message):
        run_benchmark([CellSpec(model, "fixed")], settings, tmp_path, engines=REGISTRY)
    with pytest.raises(ValueError, match=message):
        load_config("smoke", {"replicates": bad})
    assert not (tmp_path / "bench.jsonl").exists()


@pytest.fixture(scope="module")
def model(models) -> str:
    return models[0]


def _preset(tmp_path, **bench) -> str:
    raw = yaml.safe_load((Path(study.presets.__file__).parent / "smoke.yaml").read_text())
    raw["bench"].update(bench)
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("key", ["target_cl", "seed", "replicate"])
def test_unknown_bench_keys_are_refused_naming_the_key_and_the_allowed_ones(tmp_path, key):
    with pytest.raises(
        ValueError,
        match=rf"unknown key\(s\) \['{key}'\] in `bench`; allowed: batch_size, .*replicates, "
        r"scenarios, target_ci, threads,",
    ):
        load_config(_preset(tmp_path, **{key: 0.05}))


def test_the_preset_and_the_flag_set_the_harness_replicates(tmp_path, capsys):
    from study.compare import _bench_settings
    from study.compare import main as compare_main

    cfg = load_config(_preset(tmp_path, replicates=2), {"replicates": 4})
    assert _bench_settings(cfg).replicates == 4 and _bench_settings(cfg).seed == cfg.seed
    assert _bench_settings(load_config(_preset(tmp_path))).replicates == 1  # the default
    with pytest.raises(SystemExit):
        compare_main(["--preset", "smoke", "--replicates", "0", "--out", str(tmp_path / "x")])
    assert "`replicates` must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bench_cli_refuses_bad_replicates(model, tmp_path, capsys):
    assert (
        main([model, "--engine", "onnxruntime", "--replicates", "-1", "--out", str(tmp_path)]) == 2
    )
    assert "`replicates` must be an integer >= 1" in capsys.readouterr().err


def test_quick_preset_measures_replicates():
    bench = load_config("quick", check_paths=False).bench
    assert bench["replicates"] >= 2 and bench["min_trials"] >= 2  # pairs need two rounds
