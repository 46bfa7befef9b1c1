"""The fidelity check: its CIs against scipy, its refusals, and one real run of both sides."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from benchmarks.fidelity import (
    ENGINES,
    FidelitySettings,
    Process,
    benchmark_app_properties,
    check_settings,
    compare,
    export_model,
    fidelity_ratio,
    main,
    run_fidelity,
    schedule,
    settings_differ,
)

# benchmark_app 2026.4.1's step 8 (excerpt), captured on small_cnn with -hint latency.
BENCHMARK_APP_STEP_8 = """[Step 7/11] Loading the model to the device
[ INFO ] Compile model took 51.01 ms
[Step 8/11] Querying optimal runtime parameters
[ INFO ] Model:
[ INFO ]   NETWORK_NAME: onnx_Frontend_IR
[ INFO ]   NUM_STREAMS: 1
[ INFO ]   INFERENCE_NUM_THREADS: 2
[ INFO ]   INFERENCE_PRECISION_HINT: <Type: 'float32'>
[ INFO ]   ENABLE_CPU_PINNING: True
[Step 9/11] Creating infer requests and preparing input tensors
[ INFO ]   NOT_A_PROPERTY: 1
"""


def _processes(rng, n, bias, process_sd):
    """Per-process throughputs around 100 items/s: harness = native * bias, log-normal noise."""
    native = 100.0 * np.exp(rng.normal(0.0, process_sd, n))
    harness = 100.0 * bias * np.exp(rng.normal(0.0, process_sd, n))
    return harness, native


def test_ratio_and_ci_are_welch_on_log_throughput():
    harness, native = _processes(np.random.default_rng(1), 5, 1.08, 0.05)
    r = fidelity_ratio(harness, native)
    ref = stats.ttest_ind(np.log(harness), np.log(native), equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert r.ratio == pytest.approx(math.exp(np.log(harness).mean() - np.log(native).mean()))
    assert (r.ci_low, r.ci_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert r.dof == pytest.approx(ref.df)
    assert r.pvalue == pytest.approx(ref.pvalue)
    assert r.cv_harness == pytest.approx(np.std(harness, ddof=1) / np.mean(harness))
    assert r.cv_native == pytest.approx(np.std(native, ddof=1) / np.mean(native))
    assert (r.n_harness, r.n_native) == (5, 5)


def test_paired_ci_is_a_t_interval_on_the_pairs_log_ratios():
    harness, native = _processes(np.random.default_rng(2), 6, 0.95, 0.08)
    r = fidelity_ratio(harness, native, list(zip(harness, native)))
    logs = np.log(harness / native)
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert r.paired_ratio == pytest.approx(math.exp(logs.mean()))
    assert (r.paired_low, r.paired_high) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert r.n_pairs == 6


def test_swapping_the_sides_inverts_the_ratio_and_its_ci():
    harness, native = _processes(np.random.default_rng(3), 4, 1.2, 0.1)
    a, b = fidelity_ratio(harness, native), fidelity_ratio(native, harness)
    assert a.ratio * b.ratio == pytest.approx(1.0)
    assert (a.ci_low * b.ci_high, a.ci_high * b.ci_low) == pytest.approx((1.0, 1.0))


def test_ci_from_processes_covers_the_true_ratio_at_the_nominal_rate():
    """Process-level variance only: the Welch CI on 5 + 5 processes covers the bias ~95% of times."""
    rng = np.random.default_rng(4)
    covered = []
    for _ in range(800):
        harness, native = _processes(rng, 5, 1.1, 0.07)
        r = fidelity_ratio(harness, native)
        covered.append(r.ci_low <= 1.1 <= r.ci_high)
    assert abs(np.mean(covered) - 0.95) < 0.025


def test_a_bias_larger_than_process_variance_is_detected():
    harness, native = _processes(np.random.default_rng(5), 5, 1.12, 0.02)
    r = fidelity_ratio(harness, native)
    assert r.ci_low > 1.0 and r.pvalue < 0.01


def test_compare_pairs_processes_by_index_and_drops_failures():
    def proc(side, pair, rate, error=""):
        return Process("openvino", side, pair, 0, rate, 1.0, "cmd", error)

    ps = [proc("harness", 0, 100.0), proc("native", 0, 90.0), proc("harness", 1, 104.0),
          proc("native", 1, math.nan, "benchmark_app exited 1"), proc("harness", 2, 98.0),
          proc("native", 2, 93.0)]  # fmt: skip
    r = compare(ps)["openvino"]
    assert (r["n_harness"], r["n_native"], r["n_pairs"]) == (3, 2, 2)
    logs = np.log([100.0 / 90.0, 98.0 / 93.0])
    assert r["paired_ratio"] == pytest.approx(math.exp(logs.mean()))


def test_one_process_on_a_side_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"`native` must hold at least 2 process throughputs"):
        fidelity_ratio([100.0, 101.0], [99.0])
    with pytest.raises(ValueError, match=r"`processes` must be an integer >= 2 per side.*got 1"):
        check_settings(FidelitySettings(processes=1))
    ps = [Process("deepsparse", "harness", i, 0, 100.0 + i, 1.0, "") for i in range(2)]
    ps.append(Process("deepsparse", "native", 0, 0, 90.0, 1.0, ""))
    assert "at least 2 process throughputs" in compare(ps)["deepsparse"]["error"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("processes", 2.5, r"`processes` must be an integer >= 2"),
        ("seconds", 1, r"`seconds` must be an integer >= 2; got 1"),
        ("threads", 0, r"`threads` must be an integer >= 1; got 0"),
        ("engines", ("onnxruntime",), r"`engines` must be a non-empty subset of \['deepsparse'"),
        ("engines", (), r"`engines` must be a non-empty subset"),
        ("scenario", "async", r"`scenario` must be 'sync'.*got 'async'"),
        ("warmup_max_seconds", 0.0, r"`warmup_max_seconds` must be > 0; got 0.0"),
    ],
)
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        check_settings(FidelitySettings(**{field: value}))


def test_cli_refuses_one_process_per_side(capsys):
    assert main(["--processes", "1", "--onnx", "missing.onnx"]) == 2
    assert "`processes` must be an integer >= 2 per side" in capsys.readouterr().err


def test_schedule_interleaves_one_process_of_each_side_per_pair_and_engine():
    order = schedule(ENGINES, 4, seed=7)
    assert order == schedule(ENGINES, 4, seed=7)
    assert len(order) == 4 * len(ENGINES) * 2
    for i in range(4):
        mine = [(e, side) for p, e, side in order if p == i]
        assert sorted(mine) == sorted((e, s) for e in ENGINES for s in ("harness", "native"))
        assert [p for p, _, _ in order[: (i + 1) * 4]] == sorted(
            p for p, _, _ in order[: (i + 1) * 4]
        )
    for engine in ENGINES:  # each side goes first in half of the pairs (ABBA...)
        firsts = [side for k, (_, e, side) in enumerate(order) if e == engine and k % 2 == 0]
        assert firsts.count("harness") == firsts.count("native") == 2


@pytest.mark.slow
def test_a_real_run_gives_a_ratio_and_ci_per_engine(tmp_path):
    """small_cnn (32 px), 2 processes per side and engine, 2-s processes, the harness's warm-up capped."""
    onnx = export_model("small_cnn", 0.0, 1, tmp_path)
    s = FidelitySettings(processes=2, seconds=2, threads=2, warmup_max_seconds=1.0)
    record = run_fidelity([onnx], s, tmp_path, log=lambda _: None)
    json.dumps(record)  # the record is what the CLI writes
    model = record["models"][onnx.name]
    assert len(model["processes"]) == 2 * 2 * len(ENGINES)
    for engine in ENGINES:
        r = model["results"][engine]
        assert r["n_harness"] == r["n_native"] == 2, r
        assert r["ci_low"] < r["ratio"] < r["ci_high"] and r["ratio"] > 0
        assert math.isfinite(r["dof"]) and r["dof"] >= 1
    assert "| small_cnn-s0-b1.onnx | deepsparse |" in record["table"]


def test_benchmark_app_properties_are_read_from_its_step_8_only():
    assert benchmark_app_properties(BENCHMARK_APP_STEP_8) == {
        "NETWORK_NAME": "onnx_Frontend_IR",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": "2",
        "INFERENCE_PRECISION_HINT": "<Type: 'float32'>",
        "ENABLE_CPU_PINNING": "True",
    }
    assert benchmark_app_properties("no step 8 here") == {}


def test_settings_differ_names_only_shared_keys_whose_values_differ():
    def proc(side, settings):
        return Process("openvino", side, 0, 0, 1.0, 1.0, "", settings=settings)

    ps = [proc("harness", {"NUM_STREAMS": 1, "ENABLE_CPU_PINNING": True, "precision": "f32"}),
          proc("native", {"NUM_STREAMS": "1", "ENABLE_CPU_PINNING": "False", "PERF_COUNT": "NO"})]  # fmt: skip
    assert settings_differ(ps) == {"ENABLE_CPU_PINNING": {"harness": ["True"], "native": ["False"]}}
