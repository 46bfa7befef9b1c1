"""The harness: blocked rounds, isolation of crashing engines, failure rows, resume, stopping, CLI.

Runs spawn real worker processes on a tiny ONNX model; the fake engines (in test_engines, whose
imports are light, because each spawned worker imports the module that defines its class) are
registered only for these tests, through ``run_benchmark(engines=...)``.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.bench import (
    BenchSettings,
    CellSpec,
    CellTally,
    block_stop_reason,
    cell_key,
    main,
    round_order,
    run_benchmark,
    summarize,
)
from study.bench.hardware import capture_hardware
from study.bench.stopping import drift_corrected_half_widths
from study.bench.workers import warn_if_low_memory
from study.engines import ENGINES
from study.records.manifest import sha256_file
from study.records.results import append_rows, load_results, read_rows
from study.records.schema import SCHEMA_VERSION, TrialRow
from tests.study.test_engines import (
    CrashEngine,
    FixedEngine,
    GhostEngine,
    RaiseEngine,
    RendezvousEngine,
    WrongEngine,
    tiny_onnx,
)

FAST = BenchSettings(
    trial_seconds=0.05,
    max_seconds_per_cell=0.5,
    min_trials=3,
    max_trials=4,
    warmup_max_seconds=0.2,
    warmup_window_seconds=0.02,
)
# Exactly `rounds` rounds: the CI rule may only stop a block once max_trials is reached anyway.
ROUNDS = dataclasses.replace(FAST, min_trials=4, max_trials=4, max_seconds_per_cell=60)


REGISTRY = {
    **ENGINES,
    "ghost": GhostEngine,
    "crash": CrashEngine,
    "raise": RaiseEngine,
    "wrong": WrongEngine,
    "fixed": FixedEngine,
    "rendezvous": RendezvousEngine,
}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return tiny_onnx(tmp_path_factory.mktemp("bench") / "tiny.onnx")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    """Three copies of the tiny model (three files, so three cells on one engine)."""
    folder = tmp_path_factory.mktemp("models")
    return [tiny_onnx(folder / f"m{i}.onnx") for i in range(3)]


@pytest.fixture(scope="module")
def mixed_run(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "bench.jsonl"
    engines = ("onnxruntime", "crash", "raise", "wrong", "torch", "ghost")
    cells = [CellSpec(model, e, threads=1) for e in engines]
    cells.append(CellSpec(model, "torch", scenario="async", threads=1))
    rows = run_benchmark(cells, FAST, out, progress=False, engines=REGISTRY)
    return out, cells, rows


@pytest.fixture(scope="module")
def block_run(models, tmp_path_factory):
    """Three real onnxruntime cells in one block, four rounds of 0.05-s trials."""
    out = tmp_path_factory.mktemp("block") / "bench.jsonl"
    cells = [CellSpec(m, "onnxruntime", threads=1, block="b") for m in models]
    rows = run_benchmark(cells, ROUNDS, out, progress=False, engines=REGISTRY)
    return cells, rows


def _by_engine(rows):
    return {e: [r for r in rows if r.engine == e] for e in {r.engine for r in rows}}


def _orders(rows) -> dict[int, list[str]]:
    """round -> the cells in the order their trials ended (by timestamp)."""
    ok = sorted((r for r in rows if r.status == "ok"), key=lambda r: r.timestamp)
    orders: dict[int, list[str]] = {}
    for r in ok:
        orders.setdefault(r.round, []).append(r.cell)
    return orders


# --- the blocked design ---------------------------------------------------------------------------


def test_rounds_of_a_block_are_in_lockstep(block_run):
    _, rows = block_run
    ends: dict[int, list[str]] = {}
    for r in rows:
        ends.setdefault(r.round, []).append(r.timestamp)
    assert sorted(ends) == [0, 1, 2, 3]
    for r in range(3):  # every round-r trial ends before any round-(r+1) trial ends
        assert max(ends[r]) < min(ends[r + 1]), r
    rounds = {c: sorted(r.round for r in rows if r.cell == c) for c in {r.cell for r in rows}}
    assert len(rounds) == 3 and all(v == [0, 1, 2, 3] for v in rounds.values())


def test_odd_rounds_run_the_previous_order_reversed(block_run):
    _, rows = block_run
    orders = _orders(rows)
    assert orders[1] == orders[0][::-1] and orders[3] == orders[2][::-1]
    keys = sorted({r.cell for r in rows})
    for r, order in orders.items():  # the rows follow the pure schedule
        assert order == round_order(keys, seed=ROUNDS.seed, block="b", round=r)


def test_round_order_is_a_seeded_permutation_reversed_in_odd_rounds():
    keys = [f"k{i}" for i in range(6)]
    for p in range(5):
        even = round_order(keys, seed=3, block="resnet50", round=2 * p)
        assert sorted(even) == keys
        assert round_order(keys[::-1], seed=3, block="resnet50", round=2 * p + 1) == even[::-1]
        assert round_order(keys, seed=3, block="resnet50", round=2 * p) == even  # deterministic
    pairs = {tuple(round_order(keys, seed=3, block="resnet50", round=2 * p)) for p in range(5)}
    assert len(pairs) > 1  # each pair of rounds draws its own permutation
    other = {tuple(round_order(keys, seed=4, block="resnet50", round=2 * p)) for p in range(5)}
    assert other != pairs
    with pytest.raises(ValueError, match=r"`round` must be an integer >= 0; got -1"):
        round_order(keys, seed=0, block="b", round=-1)


def test_block_larger_than_max_live_workers_is_refused(models, tmp_path):
    cells = [CellSpec(m, "fixed", threads=1, block="big") for m in models]
    settings = dataclasses.replace(FAST, max_live_workers=2)
    with pytest.raises(
        ValueError,
        match=r"block 'big' has 3 cells and an estimated .* GiB, more than `max_live_workers`=2 "
        r".*no anchor \(reference\) cells .*raise max_live_workers or split the block",
    ):
        run_benchmark(cells, settings, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    assert not (tmp_path / "b.jsonl").exists()


def test_low_memory_before_loading_a_block_is_a_warning(monkeypatch, caplog):
    from collections import namedtuple

    memory = namedtuple("svmem", "available")
    monkeypatch.setattr("psutil.virtual_memory", lambda: memory(available=0.5 * 2**30))
    with caplog.at_level("WARNING", logger="study.bench.workers"):
        # an engine not calibrated, a file that does not exist: 400 MiB each
        warn_if_low_memory([CellSpec("none.onnx", "fixed")], "small")  # 0.39 GiB: no warning
        warn_if_low_memory([CellSpec("none.onnx", "fixed", threads=t) for t in (1, 2)], "big")
    (record,) = caplog.records
    assert "block 'big': loading 2 workers with 0.5 GiB of memory available" in record.getMessage()
    assert "estimated need is 0.8 GiB" in record.getMessage()


def test_one_cell_in_two_blocks_is_refused(model, tmp_path):
    cells = [CellSpec(model, "fixed", block="a"), CellSpec(model, "fixed", block="b")]
    with pytest.raises(ValueError, match=r"is in blocks 'a' and 'b'; a cell is measured in one"):
        run_benchmark(cells, FAST, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)


def test_blocks_run_one_after_another_and_load_in_parallel(tmp_path, monkeypatch):
    # Two blocks of 2 cells, 2 loads at once: each block's workers load together (the first
    # block's loads each wait for a peer, so sequential loading would fail them), nothing is
    # timed while any worker loads, and the second block starts after the first is done.
    log = tmp_path / "events.log"
    log.touch()
    monkeypatch.setenv("RENDEZVOUS_LOG", str(log))
    monkeypatch.setenv("RENDEZVOUS_PEERS", "2")
    cells = [
        CellSpec(tiny_onnx(tmp_path / f"m{i}.onnx"), "rendezvous", threads=1, block="ab"[i // 2])
        for i in range(4)
    ]
    settings = dataclasses.replace(FAST, max_live_workers=2, parallel_loads=2)
    rows = run_benchmark(cells, settings, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    assert [r.error for r in rows if r.status != "ok"] == []
    assert {r.onnx_path for r in rows} == {c.onnx_path for c in cells}
    first, second = ([r.timestamp for r in rows if r.block == b] for b in "ab")
    assert max(first) < min(second)
    events: dict[str, dict[str, list[float]]] = {}
    for line in log.read_text().splitlines():
        pid, event, t = line.split()
        events.setdefault(pid, {}).setdefault(event, []).append(float(t))
    loads = [(e["load_start"][0], e["load_end"][0]) for e in events.values()]
    windows = [
        w for e in events.values() for w in zip(e.get("window_start", []), e.get("window_end", []))
    ]
    assert len(loads) == 4 and len(windows) >= 4 * FAST.min_trials
    for ws, we in windows:  # no timed window overlaps any load
        assert all(we <= ls or le <= ws for ls, le in loads), (ws, we)


# --- failures -------------------------------------------------------------------------------------


def test_crashing_worker_gets_a_failure_row(mixed_run):
    rows = _by_engine(mixed_run[2])
    (crash,) = rows["crash"]
    assert crash.status == "failed" and crash.trial == -1 and np.isnan(crash.throughput)
    assert crash.round == -1 and crash.error == (
        "worker process died with exit code 1; its stderr ended: Assertion at ./src/kernel.hpp:43"
    )


def test_failing_cell_leaves_the_block_and_the_rest_completes(mixed_run):
    rows = _by_engine(mixed_run[2])
    assert [r.status for r in rows["crash"]] == ["failed"]
    rounds = {e: [r.round for r in rows[e]] for e in ("onnxruntime", "wrong")}
    assert rounds["onnxruntime"] == rounds["wrong"] == list(range(len(rounds["wrong"])))
    assert 3 <= len(rounds["wrong"]) <= 4


def test_engine_error_is_recorded_with_its_reason(mixed_run):
    (row,) = _by_engine(mixed_run[2])["raise"]
    assert row.status == "failed" and "RuntimeError: engine exploded while compiling" in row.error


def test_missing_torch_module_is_a_clear_failure(mixed_run):
    (row,) = [r for r in _by_engine(mixed_run[2])["torch"] if r.scenario == "sync"]
    assert row.status == "failed" and "torch.save(model)" in row.error and "tiny.pt" in row.error


def test_unsupported_scenario_and_missing_engine_are_failures(mixed_run):
    rows = [r for r in mixed_run[2] if r.scenario == "async" or r.engine == "ghost"]
    errors = sorted(r.error for r in rows)
    assert (
        errors[0]
        == "engine 'ghost' needs the Python package 'no_such_engine_package_xyz', which is not installed"
    )
    assert errors[1] == "engine 'torch' supports scenario ['sync']; got 'async'"


def test_other_cells_complete_around_failures(mixed_run):
    ort = _by_engine(mixed_run[2])["onnxruntime"]
    assert [r.trial for r in ort] == list(range(len(ort))) and 3 <= len(ort) <= 4
    assert all(r.status == "ok" and r.throughput > 0 and r.items == r.calls for r in ort)
    assert all(r.output_max_abs_diff == 0.0 and r.output_ok for r in ort)  # the reference itself
    assert all(0.0 <= r.cpu_steal <= 1.0 for r in ort)  # Linux reports steal (0 off a hypervisor)
    assert all(r.schema_version == SCHEMA_VERSION == 4 for r in ort)
    assert ort[0].engine_settings["bench"]["warmup"]["windows"] >= 1


def test_wrong_output_is_flagged(mixed_run):
    table = summarize(mixed_run[2]).set_index("engine")
    assert table.loc["wrong", "output_max_abs_diff"] == pytest.approx(1.0, rel=1e-6)
    assert table.loc["wrong", "flag"] == "WRONG OUTPUT" and table.loc["onnxruntime", "flag"] == ""


def test_rows_are_on_disk_with_environment(mixed_run):
    out, _, rows = mixed_run
    assert len(read_rows(out)) == len(rows)
    env = json.loads((out.parent / "environment.json").read_text())
    assert (
        rows[0].machine in env and env[rows[0].machine]["cpu_model"] == capture_hardware().cpu_model
    )


# --- rows and cell ids ----------------------------------------------------------------------------


def test_rows_carry_the_variant_and_the_design(model, tmp_path):
    spec = CellSpec(
        model, "fixed", threads=1, profile="vendor", mask="block4", quant="torch", block="b1"
    )
    rows = run_benchmark([spec], FAST, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    assert {(r.profile, r.mask, r.quant, r.block) for r in rows} == {
        ("vendor", "block4", "torch", "b1")
    }
    assert [r.round for r in rows] == [0, 1, 2]  # equal throughputs: the CI stops at min_trials
    assert [r["round"] for r in read_rows(tmp_path / "b.jsonl")] == [0, 1, 2]


def test_the_row_completing_the_last_round_records_why_the_block_stopped(model, tmp_path):
    rows = run_benchmark(
        [CellSpec(model, "fixed", threads=1)], FAST, tmp_path / "b.jsonl", progress=False,
        engines=REGISTRY,
    )  # fmt: skip
    assert [r.engine_settings["bench"]["stop"] for r in rows] == [None, None, "ci"]


def test_cell_key_depends_on_the_variant_but_not_on_the_block(model):
    base = CellSpec(model, "onnxruntime", threads=1, profile="uniform", mask="unstructured")
    key = cell_key(base, "a")
    assert cell_key(dataclasses.replace(base, profile="vendor"), "a") != key
    assert cell_key(dataclasses.replace(base, mask="block4"), "a") != key
    assert cell_key(dataclasses.replace(base, quant="torch"), "a") != key
    assert cell_key(dataclasses.replace(base, block="resnet50"), "a") == key


def test_unknown_variant_column_is_rejected(model, tmp_path):
    with pytest.raises(ValueError, match=r"`profile` must be one of \['dense', .*got 'ramp'"):
        run_benchmark([CellSpec(model, "fixed", profile="ramp")], FAST, tmp_path, engines=REGISTRY)


# --- resume ---------------------------------------------------------------------------------------


def test_resume_redoes_nothing_finished(mixed_run):
    out, cells, rows = mixed_run
    before = len(read_rows(out))
    again = run_benchmark(cells, FAST, out, progress=False, engines=REGISTRY)
    assert len(read_rows(out)) == before and len(again) == len(rows)


def test_resume_redoes_an_interrupted_replicate_whole_in_new_processes(models, tmp_path):
    # A run interrupted in its third round (the first 7 of its 12 rows on disk) is resumed: its
    # replicate 0 is marked abandoned, not continued, and replicate 1 measures the block afresh.
    cells = [CellSpec(m, "onnxruntime", threads=1, block="b") for m in models]
    whole = run_benchmark(cells, ROUNDS, tmp_path / "whole.jsonl", progress=False, engines=REGISTRY)
    assert len(whole) == 12 and {r.replicate for r in whole} == {0}
    append_rows(tmp_path / "cut.jsonl", whole[:7])
    resumed = run_benchmark(cells, ROUNDS, tmp_path / "cut.jsonl", progress=False, engines=REGISTRY)
    assert {r.replicate for r in resumed} == {1}  # the partial replicate's rows are left out
    assert sorted((r.cell, r.round) for r in resumed) == sorted((r.cell, r.round) for r in whole)
    assert {r.run_id for r in resumed} == {whole[0].run_id}  # the run goes on, in a new replicate
    old_pids = {r.engine_settings["bench"]["worker_pid"] for r in whole}
    new_pids = {r.engine_settings["bench"]["worker_pid"] for r in resumed}
    assert len(old_pids) == len(new_pids) == 3 and not old_pids & new_pids
    for cell in {r.cell for r in whole}:  # trial indices go on after those of the cut rows
        n = sum(r.cell == cell for r in whole[:7])
        assert [r.trial for r in resumed if r.cell == cell] == list(range(n, n + 4))
    on_disk = read_rows(tmp_path / "cut.jsonl")
    marks = [r for r in on_disk if r["status"] == "abandoned"]
    assert sorted(r["cell"] for r in marks) == sorted(c for c in {r.cell for r in whole})
    assert all(r["replicate"] == 0 and r["trial"] == -1 for r in marks)
    assert "replicate 0 of block 'b'" in marks[0]["error"] and "replicate 1" in marks[0]["error"]
    loaded = load_results(tmp_path / "cut.jsonl")
    assert set(loaded["replicate"]) == {1} and len(loaded) == 12
    assert len(load_results(tmp_path / "cut.jsonl", abandoned=True)) == 7 + 3 + 12
    again = run_benchmark(cells, ROUNDS, tmp_path / "cut.jsonl", progress=False, engines=REGISTRY)
    assert len(read_rows(tmp_path / "cut.jsonl")) == len(on_disk) and len(again) == 12


def test_partial_replicate_of_earlier_rows_is_abandoned_and_trials_keep_counting(model, tmp_path):
    spec = CellSpec(model, "fixed", threads=1)
    key = cell_key(spec, sha256_file(model))
    machine = capture_hardware().machine
    old = [
        TrialRow(
            "old",
            machine,
            key,
            t,
            "tiny",
            "none",
            "unknown",
            0.0,
            model,
            "",
            "fixed",
            "f32",
            "sync",
            1,
            1,
            100,
            0.1,
            1000.0,
            100,
            round=t,
            engine_settings={"bench": {"cell_seconds": 0.1}},
        )  # fmt: skip
        for t in range(2)
    ]
    append_rows(tmp_path / "b.jsonl", old)
    settings = BenchSettings(
        trial_seconds=0.05,
        min_trials=3,
        max_trials=10,
        warmup_max_seconds=0.1,
        warmup_window_seconds=0.02,
    )
    rows = run_benchmark([spec], settings, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    # Two rounds are fewer than min_trials: that replicate was interrupted. Identical throughputs
    # stop the new one at min_trials = 3 rounds.
    assert [(r.run_id, r.replicate, r.trial, r.round) for r in rows] == [
        ("old", 1, 2, 0),
        ("old", 1, 3, 1),
        ("old", 1, 4, 2),
    ]
    (mark,) = [r for r in read_rows(tmp_path / "b.jsonl") if r["status"] == "abandoned"]
    assert (mark["run_id"], mark["replicate"], mark["cell"]) == ("old", 0, key)


def test_no_resume_starts_a_new_run(model, tmp_path):
    spec = CellSpec(model, "fixed", threads=1)
    out = tmp_path / "b.jsonl"
    first = run_benchmark([spec], FAST, out, progress=False, engines=REGISTRY)
    again = run_benchmark([spec], FAST, out, progress=False, resume=False, engines=REGISTRY)
    assert [(r.replicate, r.round) for r in again] == [(0, 0), (0, 1), (0, 2)]
    assert len({r.run_id for r in again} | {r.run_id for r in first}) == 2
    assert [r["round"] for r in read_rows(out)] == [0, 1, 2, 0, 1, 2]


# --- the stopping rule (pure) ---------------------------------------------------------------------

RULE = {"target_ci": 0.01, "min_trials": 3, "max_trials": 5, "max_seconds_per_cell": 30.0}


def _tally(values, seconds=1.0, **kw) -> CellTally:
    return CellTally(dict(enumerate(values)), seconds, **kw)


def test_stop_reason_ci_after_min_trials():
    quiet = {"a": _tally([100.0, 100.2, 99.9]), "b": _tally([50.0, 50.1, 49.9])}
    assert block_stop_reason(quiet, **RULE) == "ci"
    two = {k: CellTally(dict(list(t.by_round.items())[:2])) for k, t in quiet.items()}
    assert block_stop_reason(two, **RULE) is None  # fewer than min_trials rounds


def test_stop_reason_max_trials():
    noisy = {"a": _tally([100.0, 120.0, 80.0, 90.0, 110.0])}
    assert block_stop_reason(noisy, **RULE) == "max_trials"
    assert block_stop_reason({"a": _tally([100.0, 120.0, 80.0, 90.0])}, **RULE) is None


def test_stop_reason_max_seconds_counts_the_live_cells_together():
    noisy = [100.0, 120.0, 80.0]
    # 25 s + 36 s >= 2 cells x 30 s; a failed cell's seconds and budget do not count.
    cells = {"a": _tally(noisy, 25.0), "b": _tally(noisy[::-1], 36.0)}
    assert block_stop_reason(cells, **RULE) == "max_seconds"
    cells["c"] = CellTally({}, 0.0, failed=True)
    assert block_stop_reason(cells, **RULE) == "max_seconds"
    cells["b"] = _tally(noisy[::-1], 34.0)
    assert block_stop_reason(cells, **RULE) is None


def test_stop_reason_rejected_and_failed():
    # max_trials rejections take a cell out; with no live cell left the block stops.
    assert block_stop_reason({"a": CellTally({}, 0.0, rejected=5)}, **RULE) == "rejected"
    out = {"a": CellTally({}, 0.0, rejected=5), "b": CellTally({}, 0.0, failed=True)}
    assert block_stop_reason(out, **RULE) == "rejected"
    assert block_stop_reason({"b": CellTally({}, 0.0, failed=True)}, **RULE) == "failed"
    live = {"a": CellTally({}, 0.0, rejected=4)}  # one rejection short: still measured
    assert block_stop_reason(live, **RULE) is None
    with pytest.raises(ValueError, match="`cells` must hold at least one cell"):
        block_stop_reason({}, **RULE)


def test_common_drift_does_not_stop_the_drift_corrected_ci_from_being_met():
    rng = np.random.default_rng(0)
    drift = np.exp(rng.normal(0.0, 0.10, size=6))  # +-10% per round, the same for every cell
    noise = np.exp(rng.normal(0.0, 0.001, size=(3, 6)))  # 0.1% of each cell's own
    x = {c: [m * d * e for d, e in zip(drift, noise[i])] for i, (c, m) in enumerate(
        {"a": 100.0, "b": 50.0, "c": 30.0}.items())}  # fmt: skip
    rule = {**RULE, "max_trials": 50}
    assert block_stop_reason({c: _tally(v) for c, v in x.items()}, **rule) == "ci"
    for values in x.values():  # each cell on its own: the drift makes its plain CI ~+-10%
        assert block_stop_reason({"alone": _tally(values)}, **rule) is None


def test_drift_corrected_half_width_by_hand():
    x = {"a": {0: 100.0, 1: 110.0, 2: 95.0}, "b": {0: 50.0, 1: 54.0, 2: 48.0}, "c": {1: 20.0}}
    logs = {c: {r: math.log(v) for r, v in d.items()} for c, d in x.items()}
    means = {r: np.mean([logs[c][r] for c in logs if r in logs[c]]) for r in range(3)}
    d = [logs["a"][r] - means[r] for r in range(3)]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(d), scale=stats.sem(d))
    widths = drift_corrected_half_widths(x)
    assert widths["a"] == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert math.isnan(widths["c"])  # one usable round
    # One cell: the plain CI of its log throughputs.
    lo, hi = stats.t.interval(0.95, 2, loc=0, scale=stats.sem(np.log([100.0, 110.0, 95.0])))
    assert drift_corrected_half_widths({"a": x["a"]})["a"] == pytest.approx((hi - lo) / 2)
    with pytest.raises(ValueError, match=r"finite and > 0; got 0.0 in round 1 of cell 'z'"):
        drift_corrected_half_widths({"z": {0: 1.0, 1: 0.0}})


# --- CPU steal ------------------------------------------------------------------------------------


class _ScriptedSteal:
    """Stands in for study.bench.noise.StealMeter in the parent: each stop() returns the next value."""

    values: list[float | None] = []

    def start(self):
        return self

    def stop(self):
        return _ScriptedSteal.values.pop(0) if _ScriptedSteal.values else 0.0


def test_rejected_trial_is_timed_again_at_the_end_of_its_round(models, tmp_path, monkeypatch):
    monkeypatch.setattr("study.bench.run.StealMeter", _ScriptedSteal)
    _ScriptedSteal.values = [0.5]  # the first trial of round 0 is stolen from; then none
    cells = [CellSpec(m, "fixed", threads=1, block="b") for m in models]
    settings = dataclasses.replace(ROUNDS, max_cpu_steal=0.1, min_trials=2, max_trials=2)
    rows = run_benchmark(cells, settings, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    first = [(r.cell, r.trial, r.round, r.status) for r in rows if r.round == 0]
    stolen = first[0][0]
    assert first[0] == (stolen, 0, 0, "rejected") and first[-1] == (stolen, 1, 0, "ok")
    assert len(first) == 4 and {c for c, *_ in first[1:3]} == {c.cell for c in rows} - {stolen}
    assert [(r.trial, r.round) for r in rows if r.cell == stolen] == [(0, 0), (1, 0), (2, 1)]


def test_trial_with_steal_above_the_limit_is_kept_as_rejected_and_repeated(
    model, tmp_path, monkeypatch
):
    monkeypatch.setattr("study.bench.run.StealMeter", _ScriptedSteal)
    _ScriptedSteal.values = [0.0, 0.5, 0.05, None]  # 0.05 is not above the limit; None = unknown
    settings = dataclasses.replace(FAST, max_cpu_steal=0.05, max_trials=10, max_seconds_per_cell=60)
    out = tmp_path / "b.jsonl"
    rows = run_benchmark(
        [CellSpec(model, "fixed", threads=1)], settings, out, progress=False, engines=REGISTRY
    )
    # Identical throughputs stop the block at min_trials = 3 rounds; the rejected trial is extra,
    # timed again in its round.
    assert [(r.trial, r.round, r.status) for r in rows] == [
        (0, 0, "ok"),
        (1, 1, "rejected"),
        (2, 1, "ok"),
        (3, 2, "ok"),
    ]
    assert rows[1].error == "CPU steal 50.0% > max_cpu_steal 5.0%: trial repeated"
    assert rows[1].cpu_steal == 0.5 and rows[2].cpu_steal == 0.05 and rows[3].cpu_steal is None
    table = summarize(rows).iloc[0]
    assert table["trials"] == 3 and table["rejected"] == 1 and table["status"] == "ok"
    assert table["cpu_steal"] == pytest.approx(0.025)  # mean over the kept trials that report it
    # The rejected trial is on disk, and a resumed run redoes nothing.
    assert [r["status"] for r in read_rows(out)] == ["ok", "rejected", "ok", "ok"]
    again = run_benchmark(
        [CellSpec(model, "fixed", threads=1)], settings, out, progress=False, engines=REGISTRY
    )
    assert len(read_rows(out)) == 4 and len(again) == 4


def test_a_cell_that_is_always_stolen_from_stops_after_max_trials_rejections(
    model, tmp_path, monkeypatch
):
    monkeypatch.setattr("study.bench.run.StealMeter", _ScriptedSteal)
    _ScriptedSteal.values = [0.9] * 100
    settings = dataclasses.replace(FAST, max_cpu_steal=0.1, max_trials=4, max_seconds_per_cell=0.1)
    rows = run_benchmark(
        [CellSpec(model, "fixed", threads=1)],
        settings,
        tmp_path / "b.jsonl",
        progress=False,
        engines=REGISTRY,
    )
    # Rejected trials do not count against the 0.1-s cap: the rejection limit (max_trials) stops it.
    assert [(r.status, r.round) for r in rows] == [("rejected", 0)] * 4
    assert rows[-1].engine_settings["bench"]["stop"] == "rejected"
    table = summarize(rows).iloc[0]
    assert table["trials"] == 0 and table["rejected"] == 4


# --- summary, input checks, CLI -------------------------------------------------------------------


def test_summary_ci_matches_scipy():
    tps = [100.0, 102.0, 98.0, 101.0]
    rows = [
        TrialRow(
            "r",
            "m",
            "c",
            i,
            "x",
            "none",
            "torch",
            0.0,
            "x.onnx",
            "",
            "onnxruntime",
            "f32",
            "sync",
            1,
            2,
            int(t),
            1.0,
            t,
            int(t),
            1.0,
            1.0,
            1.0,
            1.0,
            output_ok=True,
            round=i,
        )  # fmt: skip
        for i, t in enumerate(tps)
    ]
    s = summarize(rows).iloc[0]
    lo, hi = stats.t.interval(0.95, len(tps) - 1, loc=np.mean(tps), scale=stats.sem(tps))
    assert s["throughput"] == pytest.approx(100.25) and s["ci"] == pytest.approx((hi - lo) / 2)
    assert s["trials"] == 4 and s["calls"] == 401
    assert np.isnan(s["cpu_steal"])  # not recorded on these rows
    # Schema-1 rows carry no cpu_steal at all: they still summarise, with NaN steal.
    frame = pd.DataFrame([r.to_dict() for r in rows]).drop(columns="cpu_steal")
    assert np.isnan(summarize(frame).iloc[0]["cpu_steal"])
    steals = [0.0, 0.1, 0.2, 0.3]
    rows = [dataclasses.replace(r, cpu_steal=st) for r, st in zip(rows, steals)]
    assert summarize(rows).iloc[0]["cpu_steal"] == pytest.approx(0.15)


def test_unknown_engine_is_rejected_before_running(model, tmp_path):
    with pytest.raises(
        ValueError, match=r"`engine` must be one of \[.*'onnxruntime'.*got 'tensorrt'"
    ):
        run_benchmark([CellSpec(model, "tensorrt")], FAST, tmp_path / "b.jsonl", progress=False)


def test_bad_settings_are_rejected(model, tmp_path):
    with pytest.raises(ValueError, match=r"`min_trials` must be in \[1, max_trials=2\]; got 3"):
        run_benchmark(
            [CellSpec(model, "onnxruntime")],
            BenchSettings(min_trials=3, max_trials=2),
            tmp_path / "b.jsonl",
        )
    with pytest.raises(ValueError, match=r"`parallel_loads` must be an integer >= 1; got 0"):
        run_benchmark([CellSpec(model, "onnxruntime")], BenchSettings(parallel_loads=0), tmp_path)


def test_cellspec_defaults(model):
    spec = CellSpec(model, "onnxruntime")
    import psutil

    assert spec.model == "tiny" and spec.threads == psutil.cpu_count(logical=False)
    assert (spec.profile, spec.mask, spec.quant, spec.block) == ("unknown", "unknown", "none", "")
    assert cell_key(spec, "a") != cell_key(CellSpec(model, "openvino"), "a")


def test_cli_missing_file(capsys, tmp_path):
    args = [str(tmp_path / "nope.onnx"), "--engine", "onnxruntime", "--out", str(tmp_path / "b")]
    assert main(args) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_batch_size_on_fixed_batch_model(model, capsys, tmp_path):
    assert main([model, "--batch-size", "4", "--out", str(tmp_path / "b.jsonl")]) == 2
    assert "`batch_size` must be 1 for tiny.onnx" in capsys.readouterr().err


def test_cli_unknown_engine_lists_choices(model, capsys):
    with pytest.raises(SystemExit) as exc:
        main([model, "--engine", "tensorrt"])
    assert exc.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_cli_runs_and_prints_table(model, capsys, tmp_path):
    args = [model, "--engine", "onnxruntime", "--threads", "1", "--trial-seconds", "0.05"]
    args += ["--max-seconds", "0.3", "--warmup-max-seconds", "0.1"]
    args += ["--out", str(tmp_path / "b.jsonl"), "--csv", str(tmp_path / "s.csv")]
    args += ["--noise-floor", "0.2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "items/s ± 95% CI" in out and "onnxruntime" in out and "ok (0.0e+00)" in out
    assert "machine noise floor" in captured.err and "over 4 trials of 0.05 s" in captured.err
    env = json.loads((tmp_path / "environment.json").read_text())
    (floor,) = next(iter(env.values()))["noise_floors"]
    assert floor["trials"] == 4 and floor["threads"] == 1 and floor["cv"] >= 0
    assert {r["block"] for r in read_rows(tmp_path / "b.jsonl")} == {"tiny"}  # one block: the file
    # Run again: every cell is finished, so nothing is measured and the probe is not repeated,
    # but the recorded one is kept.
    assert main(args) == 0
    env = json.loads((tmp_path / "environment.json").read_text())
    assert len(next(iter(env.values()))["noise_floors"]) == 1
    assert pd.read_csv(tmp_path / "s.csv")["engine"].tolist() == ["onnxruntime"]


def test_noise_floor_shorter_than_three_trials_is_rejected(model, tmp_path):
    with pytest.raises(ValueError, match=r"`noise_floor_seconds` must be 0 or at least 3 trials"):
        run_benchmark(
            [CellSpec(model, "fixed")],
            dataclasses.replace(FAST, noise_floor_seconds=0.1),
            tmp_path / "b.jsonl",
            engines=REGISTRY,
        )


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2])
def test_max_cpu_steal_outside_0_1_is_rejected(model, tmp_path, bad):
    with pytest.raises(ValueError, match=r"`max_cpu_steal` must be None or in \(0, 1\); got"):
        run_benchmark(
            [CellSpec(model, "fixed")],
            dataclasses.replace(FAST, max_cpu_steal=bad),
            tmp_path / "b.jsonl",
            engines=REGISTRY,
        )
