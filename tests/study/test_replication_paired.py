"""study.stats.replication_paired and python -m study.replication --method paired: each run's own
estimate (cell, engine ratio, channel B) against the other runs', with both runs' SEs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from study.replication import replication_report
from study.stats import contrast
from study.stats.replication import replication_summary, replication_tests
from study.stats.replication_paired import run_estimates
from tests.study._nested import nested_trials
from tests.study.test_channels import PROFILE, channel_trials


def _units(n_units: int, **kw) -> pd.DataFrame:
    """Cells c0.. as distinct units (each its own model), measured in every run."""
    df = nested_trials(np.full(n_units, 4.6), sd_drift=0.01, **kw)
    return df.assign(model=df["cell"])


def test_each_run_is_estimated_across_its_replicates():
    df = _units(2, runs=2, replicates=3, rounds=4, sd_process=0.02, seed=51)
    est = run_estimates(df, "cell").set_index(["model", "run_id"])
    for (model, run), row in est.iterrows():
        sub = df[(df["model"] == model) & (df["run_id"] == run)]
        c = contrast(sub, {model: 1.0})
        assert (row["estimate"], row["se"], row["dof"]) == pytest.approx((c.estimate, c.se, 2.0))
        assert (row["basis"], row["n_replicates"]) == ("replicate", 3)


def test_the_difference_uses_both_ses_and_welch_satterthwaite_dof():
    df = _units(1, runs=2, replicates=4, rounds=3, sd_process=0.02, seed=52)
    df = df[~((df["run_id"] == "run1") & (df["replicate"] == 3))]  # run1: 3 replicates
    (row,) = replication_tests(df, "cell", method="paired").itertuples()
    a, b = (contrast(df[df["run_id"] == r], {"c0": 1.0}) for r in ("run0", "run1"))
    se = math.sqrt(a.se**2 + b.se**2)
    dof = se**4 / (a.se**4 / 3 + b.se**4 / 2)
    assert (row.log_diff, row.se, row.dof) == pytest.approx((a.estimate - b.estimate, se, dof))
    assert (
        row.p == pytest.approx(2 * scipy.stats.t.sf(abs(row.t), dof)) and row.basis == "replicate"
    )


def test_exchangeable_runs_disagree_about_alpha_and_run_variance_shows():
    # 16 units x 4 runs (6 pairs each), 3 replicates of 3 rounds per run. Without a run effect
    # each run's replicate SE covers everything that varies between runs: about 5% of the 96
    # tests reject (binomial SD 2.2 points; Welch-Satterthwaite dof make it slightly
    # conservative). With a run effect per cell (sd 0.04, twice the process sd) that no
    # replicate sees, most pairs disagree.
    kw = dict(runs=4, replicates=3, rounds=3, sd_process=0.02)
    honest = replication_tests(_units(16, **kw, seed=53), "cell", method="paired")
    s = replication_summary(honest, "cell")
    assert (s.units, s.runs, s.tests) == (16, 4, 96)
    assert s.rejected <= 0.10 and s.rejected_low <= 0.05 <= s.rejected_high, s
    assert scipy.stats.kstest(honest.p, "uniform").pvalue > 0.01
    shifted = replication_tests(_units(16, **kw, sd_run=0.04, seed=53), "cell", method="paired")
    r = replication_summary(shifted, "cell")
    assert r.rejected > 0.3 and r.rejected_low > 0.05 and r.inflation > 1.5, r


def test_b_is_compared_per_architecture_and_pooled():
    models = ("resnet50", "vgg19")
    frames = []
    for run in range(3):
        for k in range(2):
            rows = channel_trials(models=models, seed=60 + 2 * run + k, n_rounds=4)
            frames.append(pd.DataFrame(rows).assign(run_id=f"run{run}", replicate=k))
    df = pd.concat(frames, ignore_index=True)
    tests = replication_tests(df, "B", method="paired", channels=[(PROFILE, models)],
                              engine_pairs=[("deepsparse", "openvino")])  # fmt: skip
    assert sorted(set(tests.model)) == ["pooled", "resnet50", "vgg19"]
    assert len(tests) == 3 * 3 and set(tests.basis) == {"replicate"}
    est = run_estimates(df, "B", channels=[(PROFILE, models)],
                        engine_pairs=[("deepsparse", "openvino")])  # fmt: skip
    arch = est[est["model"] != "pooled"]
    assert len(arch) == 6 and (arch["dof"] == 1).all() and (arch["n_replicates"] == 2).all()
    report = replication_report(df, tests={"B": tests})
    assert list(report.level) == ["B"] * 3
    assert list(report.engines) == ["all", "deepsparse/openvino", "pooled"]
    assert list(report.tests) == [9, 9, 3]
    with pytest.raises(ValueError, match="method='paired'"):
        replication_tests(df, "B")
    with pytest.raises(ValueError, match="channels"):
        replication_tests(df, "B", method="paired")


def test_b_matches_the_same_files_in_two_folders():
    """A second run of the same files (--reuse-models) has other paths, so other cell ids: its
    B's are still the same units (they matched none before)."""
    models = ("resnet50",)
    frames = []
    for run in range(2):
        for k in range(2):
            rows = channel_trials(models=models, seed=70 + 2 * run + k, n_rounds=4)
            frame = pd.DataFrame(rows).assign(run_id=f"run{run}", replicate=k)
            frames.append(frame.assign(cell=frame["cell"] + f"-folder{run}"))
    df = pd.concat(frames, ignore_index=True)
    tests = replication_tests(df, "B", method="paired", channels=[(PROFILE, models)],
                              engine_pairs=[("deepsparse", "openvino")])  # fmt: skip
    assert sorted(tests.model) == ["pooled", "resnet50"]
    assert tests["cells"].str.contains("deepsparse:").all()


def test_cli_takes_the_channels_from_the_run_folders_config(tmp_path):
    import yaml

    from study.design import channels
    from study.replication import _design_channels
    from tests.paper.fixture import study_config

    cfg = study_config()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    found = _design_channels([str(tmp_path / "missing.jsonl"), str(folder)])
    expected = {ch.name for m in cfg.models for ch in channels(cfg, m)}
    assert {ch.name for ch, _ in found} == expected and all(models for _, models in found)
    assert _design_channels([str(folder / "bench.jsonl")]) is None
