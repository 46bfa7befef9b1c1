"""Results storage: atomic appends, crash-truncated lines, merging machines, CSV, stopping rule."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.results import (
    append_rows,
    cell_progress,
    ci_half_width,
    finished_cells,
    load_environment,
    load_results,
    read_rows,
    stop_reason,
    write_csv,
    write_environment,
)
from study.schema import TrialRow

RULE = {"target_ci": 0.01, "min_trials": 3, "max_trials": 5, "max_seconds": 30.0}


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


def test_stop_reason_rules():
    assert stop_reason([100.0, 100.0], 1.0, **RULE) is None  # fewer than min_trials
    assert stop_reason([100.0, 100.2, 99.9], 3.0, **RULE) == "ci"
    assert stop_reason([100.0, 120.0, 80.0], 3.0, **RULE) is None
    assert stop_reason([100.0, 120.0, 80.0, 90.0, 110.0], 5.0, **RULE) == "max_trials"
    assert stop_reason([100.0, 120.0, 80.0], 31.0, **RULE) == "max_seconds"
    # Time spent on trials rejected for CPU steal does not count against the cap ...
    stolen = {"rejected": 1, "rejected_seconds": 5.0}
    assert stop_reason([100.0, 120.0, 80.0], 31.0, **stolen, **RULE) is None
    # ... but max_trials rejections stop a cell, even one without a kept trial.
    assert stop_reason([], 0.0, rejected=5, **RULE) == "rejected"


def test_finished_cells_for_resume(tmp_path):
    rows = [row(cell="done", trial=t, throughput=100.0) for t in range(3)]
    rows += [row(cell="partial", trial=t, throughput=100.0 + 20 * t) for t in range(3)]
    rows += [row(cell="crashed", trial=-1, throughput=math.nan, status="failed", error="died")]
    rows += [row(machine="other", cell="elsewhere", trial=0)]
    append_rows(tmp_path / "b.jsonl", rows)
    df = load_results(tmp_path / "b.jsonl")
    assert finished_cells(df, "m0", **RULE) == {"done", "crashed"}
    partial = cell_progress(df, "m0")["partial"]
    assert (
        partial.throughputs == (100.0, 120.0, 140.0)
        and partial.next_trial == 3
        and partial.seconds_spent == 3.0
    )


def test_progress_counts_rejected_trials_but_not_their_throughput(tmp_path):
    def stolen(trial, seconds, rejected_seconds):
        bench = {"cell_seconds": seconds, "rejected_seconds": rejected_seconds}
        return row(
            cell="c", trial=trial, throughput=100.0 + trial, engine_settings={"bench": bench}
        )

    rows = [
        stolen(0, 1.0, 0.0),
        dataclasses.replace(stolen(1, 2.0, 1.0), status="rejected", error="steal"),
        stolen(2, 3.0, 1.0),
        dataclasses.replace(stolen(3, 4.0, 2.0), status="rejected", error="steal"),
    ]
    append_rows(tmp_path / "b.jsonl", rows)
    df = load_results(tmp_path / "b.jsonl")
    p = cell_progress(df, "m0")["c"]
    assert p.throughputs == (100.0, 102.0)  # the rejected trials' throughputs are left out
    assert p.next_trial == 4 and p.rejected == 2
    assert p.seconds_spent == 4.0 and p.rejected_seconds == 2.0
    rule = {**RULE, "min_trials": 2}
    assert finished_cells(df, "m0", **{**rule, "max_seconds": 3.0}) == set()  # 4 - 2 s < 3 s
    assert finished_cells(df, "m0", **{**rule, "max_seconds": 2.0}) == {"c"}
    assert finished_cells(df, "m0", **{**RULE, "max_trials": 2}) == {"c"}  # 2 rejections
