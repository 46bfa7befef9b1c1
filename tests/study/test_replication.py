"""study.stats.replication and python -m study.replication: Welch tests between repeated runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from study.replication import main, replication_report
from study.stats.replication import replication_summary, replication_tests, unit_columns
from tests.study._synth import synth_trials

MODELS = tuple(f"m{i}" for i in range(40))


def runs(n_runs=4, *, drift=None, n_trials=3, sigma=0.05, models=MODELS, **kw) -> pd.DataFrame:
    """``n_runs`` repeats of the same cells; ``drift(run, cell)`` multiplies a run's throughput.

    Each repeat writes its model files under its own folder (same bytes, so same SHA-256).
    """
    frames = []
    for r in range(n_runs):
        effect = (lambda c, r=r: drift(r, c)) if drift is not None else None
        df = synth_trials(
            models=models, pruners=("none",), n_trials=n_trials, sigma=sigma, effect=effect,
            seed=100 + r, **kw,
        )  # fmt: skip
        df["run_id"] = f"run{r}"
        df["onnx_path"] = f"runs/r{r}/" + df.onnx_path
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def test_honest_cis_reject_at_alpha_even_with_three_trials():
    # No run effect: every difference between runs is trial noise, which the per-run CIs describe.
    # Three trials per run make the t distribution matter (a normal approximation rejects ~13%).
    df = runs()
    for level, units in (("cell", 120), ("ratio", 120)):
        tests = replication_tests(df, level)
        assert len(tests) == units * 6  # 4 runs: 6 pairs per unit
        s = replication_summary(tests, level)
        assert (s.units, s.runs, s.tests) == (units, 4, units * 6)
        assert 0.025 <= s.rejected <= 0.08, (level, s)
        assert s.rejected_low <= 0.05 <= s.rejected_high
        assert s.inflation < 1.15
        assert scipy.stats.kstest(tests.p, "uniform").pvalue > 0.01


def test_drift_common_to_all_engines_cancels_in_ratios():
    shift = np.exp(np.random.default_rng(7).normal(0.0, 0.15, size=4))
    df = runs(drift=lambda r, c: shift[r], n_trials=5)
    cell = replication_summary(replication_tests(df, "cell"), "cell")
    ratio = replication_summary(replication_tests(df, "ratio"), "ratio")
    assert cell.rejected > 0.5 and cell.inflation > 2
    assert ratio.rejected <= 0.08 and ratio.inflation < 1.15


def test_engine_specific_drift_shows_in_ratios():
    rng = np.random.default_rng(8)
    shift = {(r, e): math.exp(rng.normal(0.0, 0.15)) for r in range(4) for e in ("onnxruntime", "openvino", "deepsparse")}  # fmt: skip
    df = runs(drift=lambda r, c: shift[r, c["engine"]], n_trials=5)
    ratio = replication_summary(replication_tests(df, "ratio"), "ratio")
    assert ratio.rejected > 0.5 and ratio.inflation > 2


def test_cell_test_is_welchs_t_on_log_throughput():
    df = runs(n_runs=2, models=("m0",), engines=("openvino",), n_trials=5)
    (row,) = replication_tests(df, "cell").itertuples()
    a = np.log(df[df.run_id == "run0"].throughput)
    b = np.log(df[df.run_id == "run1"].throughput)
    ref = scipy.stats.ttest_ind(a, b, equal_var=False)
    assert (row.run_a, row.run_b) == ("run0", "run1")
    assert row.log_diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert row.t == pytest.approx(ref.statistic, rel=1e-10)
    assert row.dof == pytest.approx(ref.df, rel=1e-10)
    assert row.p == pytest.approx(ref.pvalue, rel=1e-9)


def test_ratio_test_is_the_four_sample_welch_contrast():
    df = runs(n_runs=2, models=("m0",), engines=("deepsparse", "openvino"), n_trials=(lambda c: 4 if c["engine"] == "openvino" else 6))  # fmt: skip
    (row,) = replication_tests(df, "ratio").itertuples()
    assert (row.engine_a, row.engine_b) == ("deepsparse", "openvino")
    x = {
        (e, r): np.log(df[(df.engine == e) & (df.run_id == r)].throughput.to_numpy())
        for e in ("deepsparse", "openvino")
        for r in ("run0", "run1")
    }
    d = x["deepsparse", "run0"].mean() - x["openvino", "run0"].mean()
    d -= x["deepsparse", "run1"].mean() - x["openvino", "run1"].mean()
    parts = [v.var(ddof=1) / v.size for v in x.values()]
    se = math.sqrt(sum(parts))
    dof = sum(parts) ** 2 / sum(p**2 / (v.size - 1) for p, v in zip(parts, x.values()))
    assert row.log_diff == pytest.approx(d, rel=1e-12)
    assert row.se == pytest.approx(se, rel=1e-12)
    assert row.dof == pytest.approx(dof, rel=1e-12)
    assert row.p == pytest.approx(2 * scipy.stats.t.sf(abs(d / se), dof), rel=1e-9)


def test_inflation_is_the_smallest_factor_leaving_alpha_rejecting():
    rng = np.random.default_rng(9)
    shift = {(r, e): math.exp(rng.normal(0.0, 0.05)) for r in range(4) for e in ("onnxruntime", "openvino", "deepsparse")}  # fmt: skip
    tests = replication_tests(runs(drift=lambda r, c: shift[r, c["engine"]]), "ratio")
    s = replication_summary(tests, "ratio")
    assert s.inflation > 1.2

    def share(k: float) -> float:
        return float(np.mean(2 * scipy.stats.t.sf(np.abs(tests.t) / k, tests.dof) < 0.05))

    assert share(1.0) == pytest.approx(s.rejected)
    assert share(s.inflation * 1.0001) <= 0.05 < share(s.inflation * 0.999)


def test_units_are_matched_by_file_content_not_path():
    df = runs(n_runs=2, models=("m0",), engines=("openvino",))
    assert df.onnx_path.nunique() == 2 and "onnx_path" not in unit_columns()
    assert len(replication_tests(df, "cell")) == 1
    other = df.copy()
    other.loc[other.run_id == "run1", "onnx_sha256"] = "0" * 64  # a different model file
    assert replication_tests(other, "cell").empty
    s = replication_summary(replication_tests(other, "cell"), "cell")
    assert s.tests == 0 and math.isnan(s.rejected) and "two runs" in s.note


def test_cells_with_other_input_shapes_are_other_units():
    df = runs(n_runs=2, models=("m0",), engines=("openvino",))
    other = df.copy()
    other["engine_settings"] = [{"bench": {"input_shape": [3, 64, 64]}}] * len(other)
    other["throughput"] *= 4  # the same file on other inputs: a different cell, another speed
    tests = replication_tests(pd.concat([df, other]), "cell")
    assert sorted(tests.input_shape) == ["", "3x64x64"]
    assert (tests.p > 0.05).all()  # each compared with itself, not mixed with the other


def test_runs_without_variance_and_rejected_trials_are_left_out():
    df = runs(n_runs=3, models=("m0",), engines=("openvino",), n_trials=4)
    df = df[(df.run_id != "run2") | (df.trial == 0)]  # run2 has one trial: no variance
    df.loc[df.index[0], "status"] = "rejected"  # a trial rejected for CPU steal is not data
    tests = replication_tests(df, "cell")
    assert list(zip(tests.run_a, tests.run_b)) == [("run0", "run1")]
    ok = df[(df.status == "ok") & (df.run_id != "run2")]
    a, b = (np.log(ok[ok.run_id == r].throughput) for r in ("run0", "run1"))
    assert len(a) == 3
    assert tests.p.iloc[0] == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_bad_arguments_name_the_value():
    df = runs(n_runs=2, models=("m0",))
    with pytest.raises(ValueError, match="'bogus'"):
        replication_tests(df, "bogus")
    with pytest.raises(ValueError, match="alpha.*0.7"):
        replication_summary(replication_tests(df, "cell"), "cell", alpha=0.7)
    with pytest.raises(ValueError, match="TrialRow"):
        replication_tests(pd.DataFrame({"x": [1]}), "cell")


def test_report_has_all_and_per_engine_rows():
    report = replication_report(runs(n_runs=2, models=MODELS[:5]))
    assert list(report.level) == ["cell"] * 4 + ["ratio"] * 4
    assert list(report.engines) == [
        "all", "deepsparse", "onnxruntime", "openvino",
        "all", "deepsparse/onnxruntime", "deepsparse/openvino", "onnxruntime/openvino",
    ]  # fmt: skip
    assert list(report.tests) == [15, 5, 5, 5, 15, 5, 5, 5]


def _write(df: pd.DataFrame, path) -> str:
    df.to_json(path, orient="records", lines=True)
    return str(path)


def test_cli_prints_the_report_and_writes_csvs(tmp_path, capsys):
    df = runs(n_runs=2, models=MODELS[:5])
    a = _write(df[df.run_id == "run0"], tmp_path / "a.jsonl")
    b = _write(df[df.run_id == "run1"], tmp_path / "b.jsonl")
    out = tmp_path / "report.csv"
    tests_csv = tmp_path / "tests.csv"
    assert main([a, b, "--csv", str(out), "--tests-csv", str(tests_csv)]) == 0
    text = capsys.readouterr().out
    assert "2 runs" in text and "deepsparse/openvino" in text
    assert pd.read_csv(out).tests.tolist() == [15, 5, 5, 5, 15, 5, 5, 5]
    assert len(pd.read_csv(tests_csv)) == 30


def test_cli_explains_what_is_missing(tmp_path, capsys):
    df = runs(n_runs=2, models=MODELS[:2])
    one = _write(df[df.run_id == "run0"], tmp_path / "one.jsonl")
    assert main([one]) == 2
    assert "1 run(s)" in capsys.readouterr().err
    other = df[df.run_id == "run1"].assign(onnx_sha256="f" * 64)
    assert main([one, _write(other, tmp_path / "other.jsonl")]) == 2
    assert "share no cell" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_cli_leaves_out_excluded_runs(tmp_path, capsys):
    path = _write(runs(n_runs=3, models=MODELS[:5]), tmp_path / "r.jsonl")
    assert main([path, "--exclude-run", "run2", "--csv", str(tmp_path / "s.csv")]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "s.csv").tests.tolist() == [15, 5, 5, 5, 15, 5, 5, 5]
    assert main([path, "--exclude-run", "run9"]) == 2
    assert "run9" in capsys.readouterr().err
