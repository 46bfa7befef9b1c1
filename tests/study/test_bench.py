"""The harness: isolation of crashing engines, failure rows, resume, stopping, summary and CLI.

Runs spawn real worker processes on a tiny ONNX model; the fake engines (in test_engines, whose
imports are light, because each spawned worker imports the module that defines its class) are
registered only for these tests, through ``run_benchmark(engines=...)``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.bench import BenchSettings, CellSpec, cell_key, main, run_benchmark, summarize
from study.engines import ENGINES
from study.hardware import capture_hardware
from study.results import append_rows, read_rows
from study.schema import TrialRow
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
def mixed_run(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "bench.jsonl"
    engines = ("onnxruntime", "crash", "raise", "wrong", "torch", "ghost")
    cells = [CellSpec(model, e, threads=1) for e in engines]
    cells.append(CellSpec(model, "torch", scenario="async", threads=1))
    rows = run_benchmark(cells, FAST, out, progress=False, engines=REGISTRY)
    return out, cells, rows


def _by_engine(rows):
    return {e: [r for r in rows if r.engine == e] for e in {r.engine for r in rows}}


def test_crashing_worker_gets_a_failure_row(mixed_run):
    rows = _by_engine(mixed_run[2])
    (crash,) = rows["crash"]
    assert crash.status == "failed" and crash.trial == -1 and np.isnan(crash.throughput)
    assert crash.error == "worker process died with exit code 1"


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
    assert all(r.schema_version == 2 for r in ort)
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


def test_resume_redoes_nothing_finished(mixed_run):
    out, cells, rows = mixed_run
    before = len(read_rows(out))
    again = run_benchmark(cells, FAST, out, progress=False, engines=REGISTRY)
    assert len(read_rows(out)) == before and len(again) == len(rows)


def test_partial_cell_continues_with_its_trials_counted(model, tmp_path):
    spec = CellSpec(model, "fixed", threads=1)
    from study.manifest import sha256_file

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
            engine_settings={"bench": {"cell_seconds": 0.1}},
        )
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
    # Identical throughputs: the CI is zero, so the rule stops at min_trials = 3, i.e. one new trial.
    assert [r.trial for r in rows] == [0, 1, 2] and [r.run_id == "old" for r in rows] == [
        True,
        True,
        False,
    ]


def test_workers_load_in_parallel_while_nothing_is_timed(tmp_path, monkeypatch):
    # 4 cells, 2 interleaved, 2 loads at once: the first window loads 2 together; when a cell
    # finishes, its successor loads together with the next cell (load-ahead). Each load waits for
    # a peer, so sequential loading would fail the cells.
    log = tmp_path / "events.log"
    log.touch()
    monkeypatch.setenv("RENDEZVOUS_LOG", str(log))
    monkeypatch.setenv("RENDEZVOUS_PEERS", "2")
    cells = [
        CellSpec(tiny_onnx(tmp_path / f"m{i}.onnx"), "rendezvous", threads=1) for i in range(4)
    ]
    settings = dataclasses.replace(FAST, max_live_workers=2, parallel_loads=2)
    rows = run_benchmark(cells, settings, tmp_path / "b.jsonl", progress=False, engines=REGISTRY)
    assert [r.error for r in rows if r.status != "ok"] == []
    assert {r.onnx_path for r in rows} == {c.onnx_path for c in cells}
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
        )
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
    assert cell_key(spec, "a") != cell_key(CellSpec(model, "openvino"), "a")


def test_cli_missing_file(capsys, tmp_path):
    assert (
        main(
            [
                str(tmp_path / "nope.onnx"),
                "--engine",
                "onnxruntime",
                "--out",
                str(tmp_path / "b.jsonl"),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def test_cli_batch_size_on_fixed_batch_model(model, capsys, tmp_path):
    assert main([model, "--batch-size", "4", "--out", str(tmp_path / "b.jsonl")]) == 2
    assert "`batch_size` must be 1 for tiny.onnx" in capsys.readouterr().err


def test_cli_unknown_engine_lists_choices(model, capsys):
    with pytest.raises(SystemExit) as exc:
        main([model, "--engine", "tensorrt"])
    assert exc.value.code == 2 and "invalid choice: 'tensorrt'" in capsys.readouterr().err


def test_cli_runs_and_prints_table(model, capsys, tmp_path):
    args = [
        model,
        "--engine",
        "onnxruntime",
        "--threads",
        "1",
        "--trial-seconds",
        "0.05",
        "--max-seconds",
        "0.3",
    ]
    args += [
        "--warmup-max-seconds",
        "0.1",
        "--out",
        str(tmp_path / "b.jsonl"),
        "--csv",
        str(tmp_path / "s.csv"),
        "--noise-floor",
        "0.2",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "items/s ± 95% CI" in out and "onnxruntime" in out and "ok (0.0e+00)" in out
    assert "machine noise floor" in captured.err and "over 4 trials of 0.05 s" in captured.err
    env = json.loads((tmp_path / "environment.json").read_text())
    (floor,) = next(iter(env.values()))["noise_floors"]
    assert floor["trials"] == 4 and floor["threads"] == 1 and floor["cv"] >= 0
    # Run again: every cell is finished, so nothing is measured and the probe is not repeated,
    # but the recorded one is kept.
    assert main(args) == 0
    env = json.loads((tmp_path / "environment.json").read_text())
    assert len(next(iter(env.values()))["noise_floors"]) == 1
    assert pd.read_csv(tmp_path / "s.csv")["engine"].tolist() == ["onnxruntime"]


class _ScriptedSteal:
    """Stands in for study.noise.StealMeter in the parent: each stop() returns the next value."""

    values: list[float | None] = []

    def start(self):
        return self

    def stop(self):
        return _ScriptedSteal.values.pop(0) if _ScriptedSteal.values else 0.0


def test_trial_with_steal_above_the_limit_is_kept_as_rejected_and_repeated(
    model, tmp_path, monkeypatch
):
    monkeypatch.setattr("study.bench.StealMeter", _ScriptedSteal)
    _ScriptedSteal.values = [0.0, 0.5, 0.05, None]  # 0.05 is not above the limit; None = unknown
    settings = dataclasses.replace(FAST, max_cpu_steal=0.05, max_trials=10, max_seconds_per_cell=60)
    out = tmp_path / "b.jsonl"
    rows = run_benchmark(
        [CellSpec(model, "fixed", threads=1)], settings, out, progress=False, engines=REGISTRY
    )
    # Identical throughputs stop the cell at min_trials = 3 kept trials; the rejected one is extra.
    assert [(r.trial, r.status) for r in rows] == [
        (0, "ok"),
        (1, "rejected"),
        (2, "ok"),
        (3, "ok"),
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
    monkeypatch.setattr("study.bench.StealMeter", _ScriptedSteal)
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
    assert [r.status for r in rows] == ["rejected"] * 4
    table = summarize(rows).iloc[0]
    assert table["trials"] == 0 and table["rejected"] == 4


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
