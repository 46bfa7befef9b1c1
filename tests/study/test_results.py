"""Results storage: atomic appends, crash-truncated lines, merging machines, CSV, old schemas, resume."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.bench.progress import cell_progress, finished_cells, stop_reason
from study.records.results import (
    append_rows,
    load_environment,
    load_results,
    read_rows,
    write_csv,
    write_environment,
)
from study.records.schema import TrialRow
from study.stats import ci_half_width

RULE = {"target_ci": 0.01, "min_trials": 3, "max_trials": 5, "max_seconds_per_cell": 30.0}


def row(
    machine: str = "m0", cell: str = "c0", trial: int = 0, throughput: float = 100.0, **kw
) -> TrialRow:
    base = dict(
        run_id="r0",
        machine=machine,
        cell=cell,
        trial=trial,
        model="tiny",
        pruner="none",
        exporter="torch",
    )
    base.update(
        sparsity=0.0, onnx_path="tiny.onnx", onnx_sha256="ab", engine="onnxruntime", precision="f32"
    )
    base.update(
        scenario="sync",
        batch_size=1,
        threads=2,
        items=0 if math.isnan(throughput) else int(throughput),
        seconds=1.0,
        throughput=throughput,
    )
    base.update(
        calls=0 if math.isnan(throughput) else int(throughput),
        engine_settings={"bench": {"cell_seconds": 1.0 * (trial + 1)}},
        block="b0",
        round=trial,
    )
    base.update(kw)
    return TrialRow(**base)


def test_roundtrip_keeps_every_field(tmp_path):
    rows = [
        row(trial=0, output_ok=True, output_max_abs_diff=1e-7),
        row(trial=1, status="failed", throughput=math.nan),
    ]
    append_rows(tmp_path / "b.jsonl", rows)
    back = read_rows(tmp_path / "b.jsonl")
    assert back[0] == rows[0].to_dict()
    assert math.isnan(back[1]["throughput"]) and back[1]["status"] == "failed"


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "b.jsonl"
    append_rows(path, [row(trial=0), row(trial=1)])
    with open(path, "ab") as f:  # a crash in the middle of a write
        f.write(json.dumps(row(trial=2).to_dict()).encode()[:57])
    with pytest.warns(UserWarning, match=r"b.jsonl:3: skipping an incomplete row"):
        assert [r["trial"] for r in read_rows(path)] == [0, 1]


def test_append_after_a_crash_keeps_the_new_row(tmp_path):
    path = tmp_path / "b.jsonl"
    append_rows(path, [row(trial=0)])
    with open(path, "ab") as f:
        f.write(b'{"run_id": "r0", "mach')
    append_rows(path, [row(trial=1)])
    with pytest.warns(UserWarning, match="incomplete row"):
        assert [r["trial"] for r in read_rows(path)] == [0, 1]


def test_load_results_merges_machines_and_dedupes(tmp_path):
    append_rows(tmp_path / "a" / "bench.jsonl", [row("ma", trial=0), row("ma", trial=1)])
    append_rows(tmp_path / "b" / "bench.jsonl", [row("mb", trial=0)])
    df = load_results(
        tmp_path / "a", tmp_path / "b" / "bench.jsonl", tmp_path / "a" / "bench.jsonl"
    )
    assert sorted(df["machine"]) == ["ma", "ma", "mb"]
    assert set(TrialRow.__dataclass_fields__) <= set(df.columns)


def test_load_results_rejects_missing_paths(tmp_path):
    with pytest.raises(
        ValueError, match=r"`paths` must be results files or folders; .*nope.* does not exist"
    ):
        load_results(tmp_path / "nope")


def test_write_csv_is_tidy(tmp_path):
    append_rows(tmp_path / "b.jsonl", [row(trial=0), row(trial=1, throughput=50.0)])
    write_csv(load_results(tmp_path / "b.jsonl"), tmp_path / "b.csv")
    csv = pd.read_csv(tmp_path / "b.csv")
    assert csv["throughput"].tolist() == [100.0, 50.0]
    assert json.loads(csv["engine_settings"][1]) == {"bench": {"cell_seconds": 2.0}}


def test_environment_merges_machines(tmp_path):
    write_environment(tmp_path, "ma", {"cpu_model": "A"})
    write_environment(tmp_path, "mb", {"cpu_model": "B"})
    write_environment(tmp_path, "ma", {"cpu_model": "A2"})
    assert load_environment(tmp_path / "bench.jsonl") == {
        "ma": {"cpu_model": "A2"},
        "mb": {"cpu_model": "B"},
    }
    assert not list(tmp_path.glob(".*.tmp"))


def test_ci_half_width_matches_scipy_interval():
    x = np.random.default_rng(0).normal(100, 3, size=7)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert ci_half_width(x) == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert math.isnan(ci_half_width([1.0]))


def test_rows_of_older_schemas_load_as_version_3(tmp_path):
    old = row(trial=3).to_dict()
    for key in ("profile", "mask", "quant", "block", "round", "cpu_steal"):
        del old[key]
    old.update(schema_version=1, pruner="gmp")
    append_rows(tmp_path / "b.jsonl", [row(trial=0)])
    with open(tmp_path / "b.jsonl", "a") as f:
        f.write(json.dumps(old) + "\n")
    df = load_results(tmp_path / "b.jsonl")
    v1 = df.iloc[1]
    assert (v1.profile, v1["mask"], v1.quant) == ("uniform", "unstructured", "none")
    assert (v1.block, v1["round"]) == ("cell:c0", 3)  # its own block: it pairs with nothing
    assert (df.iloc[0].block, df.iloc[0]["round"]) == ("b0", 0)  # version 3 rows stay as written


def test_stop_reason_applies_the_block_rule_to_stored_progress(tmp_path):
    rows = [row(cell=c, trial=t, throughput=tp + t / 10) for c, tp in (("a", 100), ("b", 50)) for t in range(3)]  # fmt: skip
    append_rows(tmp_path / "b.jsonl", rows)
    progress = cell_progress(load_results(tmp_path / "b.jsonl"), "m0", "b0")
    assert stop_reason(progress, **RULE) == "ci"
    assert stop_reason(progress, **{**RULE, "target_ci": 1e-6}) is None
    assert stop_reason(progress, **{**RULE, "target_ci": 1e-6, "max_trials": 3}) == "max_trials"


def test_finished_cells_for_resume(tmp_path):
    rows = [row(cell="done", trial=t, throughput=100.0, block="quiet") for t in range(3)]
    rows += [row(cell="partial", trial=t, throughput=100.0 + 20 * t) for t in range(3)]
    rows += [row(cell="peer", trial=t, throughput=100.0) for t in range(3)]
    rows += [row(cell="crashed", trial=-1, throughput=math.nan, status="failed", error="died")]
    rows += [row(machine="other", cell="elsewhere", trial=0)]
    append_rows(tmp_path / "b.jsonl", rows)
    df = load_results(tmp_path / "b.jsonl")
    # Block b0 is not finished (the partial cell's CI is wide), so neither is its quiet peer.
    assert finished_cells(df, "m0", **RULE) == {"done", "crashed"}
    partial = cell_progress(df, "m0")["partial"]
    assert partial.throughputs == (100.0, 120.0, 140.0) and partial.rounds == (0, 1, 2)
    assert partial.next_trial == 3 and partial.seconds_spent == 3.0 and partial.last_round == 2
    assert partial.by_round == {0: 100.0, 1: 120.0, 2: 140.0}


def test_progress_of_one_block_leaves_the_cells_other_blocks_out(tmp_path):
    rows = [row(trial=t, block="x") for t in range(2)] + [row(trial=2, round=0, block="y")]
    append_rows(tmp_path / "b.jsonl", rows)
    df = load_results(tmp_path / "b.jsonl")
    assert cell_progress(df, "m0", "x")["c0"].rounds == (0, 1)
    assert cell_progress(df, "m0", "y")["c0"].rounds == (0,)
    assert cell_progress(df, "m0")["c0"].next_trial == 3


def test_progress_counts_rejected_trials_but_not_their_throughput(tmp_path):
    def stolen(trial, round, seconds, rejected_seconds):
        bench = {"cell_seconds": seconds, "rejected_seconds": rejected_seconds}
        return row(
            cell="c", trial=trial, round=round, throughput=100.0 + trial,
            engine_settings={"bench": bench},
        )  # fmt: skip

    rows = [
        stolen(0, 0, 1.0, 0.0),
        dataclasses.replace(stolen(1, 1, 2.0, 1.0), status="rejected", error="steal"),
        stolen(2, 1, 3.0, 1.0),
        dataclasses.replace(stolen(3, 2, 4.0, 2.0), status="rejected", error="steal"),
    ]
    append_rows(tmp_path / "b.jsonl", rows)
    df = load_results(tmp_path / "b.jsonl")
    p = cell_progress(df, "m0")["c"]
    assert p.throughputs == (100.0, 102.0) and p.rounds == (0, 1)  # rejected ones left out
    assert p.next_trial == 4 and p.rejected == 2 and p.last_round == 2
    assert p.seconds_spent == 4.0 and p.rejected_seconds == 2.0
    rule = {**RULE, "min_trials": 2, "target_ci": 1e-6}
    # 4 s spent, 2 of them on rejected trials: below a 3-s cap, at a 2-s cap.
    assert finished_cells(df, "m0", **{**rule, "max_seconds_per_cell": 3.0}) == set()
    assert finished_cells(df, "m0", **{**rule, "max_seconds_per_cell": 2.0}) == {"c"}
    assert finished_cells(df, "m0", **{**RULE, "max_trials": 2}) == {"c"}  # 2 rejections
