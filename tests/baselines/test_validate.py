"""Tests of ``python -m baselines.validate``: the real path on one case, and its pass/fail rule."""

from __future__ import annotations

import json

import pytest
import torch

from baselines import validate
from baselines.validate import CASES, SeedRun, main


def test_one_case_one_seed_has_zero_difference(tmp_path):
    code = main(["--cases", "linear", "--quick", "--no-progress", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "validate.json").read_text())
    (run,) = report["runs"]
    assert code == 0 and report["passed"]
    assert run["max_zero_diff"] == 0
    assert run["min_iou"] == 1.0
    # --quick: 512 training digits in batches of 64 -> 8 steps per epoch, 5 epochs.
    assert run["steps"] == 40
    assert run["sparsity_gmp"] == run["sparsity_sparseml"] > 0.8
    assert "| linear | 1 | 0 | 1.0000 |" in (tmp_path / "validate.md").read_text()


def _fake_run(zero_diff: int, acc_diffs: list[float]):
    runs = iter(acc_diffs)

    def run_case(case, seed, data, progress=False):
        diff = next(runs)
        return SeedRun(
            case.name, seed, 10, zero_diff, 1.0, 0.0, 0.9 + diff, 0.9, 0.8, 0.8, 1.0, 1.0
        )

    return run_case


@pytest.mark.parametrize(
    ("zero_diff", "acc_diffs", "expected"),
    [
        (0, [0.0, 0.0, 0.0], 0),  # identical runs: zero variance, equivalence holds exactly
        (1, [0.0, 0.0, 0.0], 1),  # one step's zero count differs
        (0, [0.05, 0.04, 0.06], 1),  # accuracy 5 points apart: TOST cannot reject
    ],
)
def test_exit_code_follows_zero_counts_and_equivalence(
    monkeypatch, tmp_path, zero_diff, acc_diffs, expected
):
    monkeypatch.setattr(validate, "run_case", _fake_run(zero_diff, acc_diffs))
    argv = ["--cases", "global", "--seeds", "3", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == expected


def test_iou_of_zero_masks():
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert validate._iou(a, b) == pytest.approx(1 / 3)
    assert validate._iou(a, a) == 1.0
    assert validate._iou(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) == 1.0


def test_mean_ci_is_the_t_interval():
    # t(0.975, 2) = 4.302653 (R: qt(0.975, 2)); mean 0.9, sd 0.1, n 3.
    mean, low, high = validate._mean_ci([0.8, 0.9, 1.0])
    half = 4.302653 * 0.1 / 3**0.5
    assert (mean, low, high) == pytest.approx((0.9, 0.9 - half, 0.9 + half), abs=1e-6)


def test_every_case_recipe_is_read_the_same_by_both_toolchains():
    from sparseml.pytorch.optim import ScheduledModifierManager

    from gmp.recipe import load_recipe

    for case in CASES.values():
        assert (
            load_recipe(case.recipe).epochs
            == ScheduledModifierManager.from_yaml(case.recipe).max_epochs
        )


def test_unknown_case_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["--cases", "nope"])
    assert "unknown cases ['nope']" in capsys.readouterr().err
