"""``python -m baselines.validate``: the evidence that ``gmp`` prunes exactly as SparseML 1.8 does.

For each case (a recipe and an optimizer setting) and each seed, one small CNN (conv + BatchNorm
blocks named like a ResNet, and a linear head) is built once and copied, then trained on
scikit-learn's digits (16x16, 3 channels) by the shared loop :func:`study.make.train.train` twice:
once with ``toolchain="gmp"``, once with ``toolchain="sparseml"``, with the same initial weights,
batch order, optimizer and recipe. Reported per case:

- the maximum over seeds, steps and layers of ``|zeros_gmp - zeros_sparseml|`` (must be 0);
- the minimum over seeds and layers of the IoU of the final zero masks (1.0 unless ties at the
  threshold are broken differently), and the largest absolute difference of final weights;
- the final validation accuracy of each toolchain with a 95% t interval over seeds;
- a TOST (:func:`study.stats.tost_one_sample`, margins -/+ 1 percentage point) on the paired
  accuracy differences, per case and pooled over all cases and seeds.

Writes ``validate.json`` and ``validate.md`` to ``--out`` (default ``runs/validate/``), prints the
Markdown table, and exits 1 when any zero-count difference is non-zero or an equivalence test fails
(with a single seed, ``--quick``, the TOST is undefined and reported as untested; ``--quick`` also
trains on the first 512 digits only). Options: ``--seeds N`` (seeds 0..N-1, default 3),
``--cases NAME ...`` (default all of :data:`CASES`), ``--out DIR``, ``--quick``, ``--no-progress``.

Known SparseML 1.8 limitation met here: its N:M mask creator fails on 4-D (conv) weights (it
reshapes the mask to the permuted ``[O, kH, kW, I]`` shape and never permutes back), so the 2:4
case prunes only the linear head.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.stats
import torch
from torch import nn
from torch.utils.data import Subset
from tqdm.auto import tqdm

from study.make.train import TrainConfig

__all__ = ["CASES", "Case", "CaseSummary", "SeedRun", "main", "run_case", "small_cnn", "summarize"]

MARGIN = 0.01  # equivalence margin on accuracy: 1 percentage point
QUICK_TRAIN_IMAGES = 512  # --quick trains on this many digits (8 steps per epoch instead of 23)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn1(self.conv1(x)))


def small_cnn(seed: int, channels: int = 3, classes: int = 10) -> nn.Module:
    """A small CNN with ResNet-style names (``layerN.0.conv1.weight``, ``fc.weight``).

    Args:
        seed: Seed of the initial weights.
        channels: Input channels.
        classes: Output classes.

    Returns:
        The model: four conv + BatchNorm + ReLU blocks (16, 32, 32, 64 channels), global average
        pooling and a linear head.

    Example:
        >>> small_cnn(0)(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 10])
    """
    torch.manual_seed(seed)
    widths = [(channels, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2)]
    model = nn.Sequential()
    for i, (cin, cout, stride) in enumerate(widths, start=1):
        model.add_module(f"layer{i}", nn.Sequential(_Block(cin, cout, stride)))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(64, classes))
    return model


def _gmp_recipe(epochs: int, modifier: str = "GMPruningModifier", **fields) -> str:
    args = {
        "params": "__ALL_PRUNABLE__",
        "init_sparsity": 0.05,
        "final_sparsity": 0.85,
        "start_epoch": 0.0,
        "end_epoch": 3.0,
        "update_frequency": 0.5,
        **fields,
    }
    lines = [
        "modifiers:",
        "  - !EpochRangeModifier",
        "    start_epoch: 0.0",
        f"    end_epoch: {float(epochs)}",
        f"  - !{modifier}",
    ]
    lines += [f"    {key}: {value}" for key, value in args.items()]
    return "\n".join(lines) + "\n"


_SEED_STUDY = """
num_epochs: 6
pruning_end_epoch: 4.0
training_modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: eval(num_epochs)
  - !SetLearningRateModifier
    start_epoch: 0.0
    learning_rate: 0.05
  - !LearningRateFunctionModifier
    start_epoch: eval(pruning_end_epoch)
    end_epoch: eval(num_epochs)
    lr_func: linear
    init_lr: 0.01
    final_lr: 0.0001
pruning_modifiers:
"""
for _params, _target in [("layer1", 0.5), ("layer2", 0.7), ("layer3", 0.85), ("layer4", 0.9)]:
    _SEED_STUDY += f"""  - !GMPruningModifier
    params: ['re:{_params}\\.\\d+\\.conv\\d\\.weight']
    init_sparsity: 0.05
    final_sparsity: {_target}
    start_epoch: 1.0
    end_epoch: eval(pruning_end_epoch)
    update_frequency: 1.0
"""
_SEED_STUDY += """  - !GMPruningModifier
    params: ['fc.weight']
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 1.0
    end_epoch: eval(pruning_end_epoch)
    update_frequency: 1.0
"""


@dataclass(frozen=True)
class Case:
    """One validation case: a recipe and the optimizer it is trained with."""

    # Short name used on the command line and in the tables.
    name: str
    # One line saying what the case exercises.
    description: str
    # SparseML recipe text, run unchanged by both toolchains.
    recipe: str
    # Optimizer settings (epochs come from the recipe; the seed is set per run).
    config: TrainConfig


def _cases() -> dict[str, Case]:
    plain = TrainConfig(lr=0.1, batch_size=64, optimizer="sgd")
    momentum = TrainConfig(lr=0.05, batch_size=64, momentum=0.9, weight_decay=5e-4, nesterov=True)
    # SparseML 1.8's N:M mask creator reshapes conv masks to the permuted [O, kH, kW, I] shape
    # and fails on set_param_masks, so the 2:4 case prunes the linear head only.
    prunable_24 = "['fc.weight']"
    per_layer = (
        "{0.9: ['layer3.0.conv1.weight', 'layer4.0.conv1.weight'], "
        "0.6: ['layer1.0.conv1.weight', 'layer2.0.conv1.weight', 'fc.weight']}"
    )
    cases = [
        Case("layerwise_cubic", "GMPruningModifier, all prunable, cubic", _gmp_recipe(5), plain),
        Case(
            "global",
            "GlobalMagnitudePruningModifier, one threshold",
            _gmp_recipe(
                5,
                "GlobalMagnitudePruningModifier",
                start_epoch=0.5,
                end_epoch=3.5,
                update_frequency=0.25,
            ),
            plain,
        ),
        Case(
            "per_layer",
            "dict final_sparsity (per-layer targets)",
            _gmp_recipe(5, params="[]", final_sparsity=per_layer),
            plain,
        ),
        Case(
            "linear",
            "inter_func: linear, update every step",
            _gmp_recipe(5, inter_func="linear", update_frequency=-1),
            plain,
        ),
        Case(
            "block4",
            "mask_type: block4",
            _gmp_recipe(5, mask_type="block4", final_sparsity=0.75),
            plain,
        ),
        Case(
            "nm_2_4",
            "mask_type: '2:4' (50%) on the linear head",
            _gmp_recipe(
                5, mask_type="'2:4'", final_sparsity=0.5, init_sparsity=0.5, params=prunable_24
            ),
            plain,
        ),
        Case(
            "momentum_wd", "SGD momentum 0.9, Nesterov, weight decay 5e-4", _gmp_recipe(5), momentum
        ),
        Case(
            "seed_study",
            "one GMPruningModifier per layer group (0.5-0.9), freq 1.0, LR modifiers, fine-tuning",
            _SEED_STUDY,
            replace(momentum, nesterov=False),
        ),
    ]
    return {case.name: case for case in cases}


# Case name -> Case, in the order they run.
CASES: dict[str, Case] = _cases()


@dataclass(frozen=True)
class SeedRun:
    """Both toolchains on one case and one seed."""

    # Case name.
    case: str
    # Seed of the initial weights and the batch order.
    seed: int
    # Optimizer steps taken (same for both toolchains).
    steps: int
    # max over steps and layers of |zeros_gmp - zeros_sparseml|.
    max_zero_diff: int
    # Minimum over layers of the IoU of the final zero masks.
    min_iou: float
    # Largest |w_gmp - w_sparseml| over all final parameters and buffers.
    max_weight_diff: float
    # Final validation accuracy with gmp, in [0, 1].
    acc_gmp: float
    # Final validation accuracy with SparseML, in [0, 1].
    acc_sparseml: float
    # Final total sparsity of the prunable weights, gmp / SparseML.
    sparsity_gmp: float
    sparsity_sparseml: float
    # Training seconds, gmp / SparseML (noisy on a shared machine).
    seconds_gmp: float
    seconds_sparseml: float


@dataclass(frozen=True)
class CaseSummary:
    """One case over all seeds."""

    # Case name and description.
    case: str
    description: str
    # Seeds run.
    seeds: tuple[int, ...]
    # Maximum zero-count difference over seeds (must be 0).
    max_zero_diff: int
    # Minimum final mask IoU over seeds and layers.
    min_iou: float
    # Largest final weight difference over seeds.
    max_weight_diff: float
    # Mean final accuracy and its 95% t interval over seeds, per toolchain (NaN bounds for 1 seed).
    acc_gmp: tuple[float, float, float]
    acc_sparseml: tuple[float, float, float]
    # TOST on the paired differences acc_gmp - acc_sparseml (fields of study.stats.TostResult).
    tost: dict = field(default_factory=dict)


def _zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    from gmp.params import ALL_PRUNABLE, select_params

    return {
        name: getattr(module, attr).detach() == 0
        for name, module, attr in select_params(model, ALL_PRUNABLE)
    }


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def run_case(case: Case, seed: int, data: tuple, progress: bool = False) -> SeedRun:
    """Train one case with both toolchains from the same initial weights and compare.

    Args:
        case: The case.
        seed: Seed of the initial weights, the batch order and torch's RNG.
        data: ``(train_loader, val_loader)`` from :func:`study.make.data.loaders`.
        progress: Show the training loop's progress bars.

    Returns:
        A :class:`SeedRun`.

    Example:
        >>> run_case(CASES["linear"], 0, loaders(*digits(16)))  # doctest: +SKIP
    """
    from study.make.train import train

    train_loader, val_loader = data
    config = replace(case.config, seed=seed)
    model = small_cnn(seed)
    runs = {
        tc: train(copy.deepcopy(model), case.recipe, train_loader, val_loader, tc, config, progress)
        for tc in ("gmp", "sparseml")
    }
    a, b = runs["gmp"], runs["sparseml"]
    if len(a.steps) != len(b.steps):
        raise RuntimeError(
            f"case {case.name!r}: gmp ran {len(a.steps)} steps, SparseML {len(b.steps)}"
        )
    diff = max(
        (
            abs(sa.zeros[k] - sb.zeros[k])
            for sa, sb in zip(a.steps, b.steps)
            for k in sa.zeros | sb.zeros
        ),
        default=0,
    )
    if any(set(sa.zeros) != set(sb.zeros) for sa, sb in zip(a.steps, b.steps)):
        raise RuntimeError(f"case {case.name!r}: the toolchains logged different layers")
    masks_a, masks_b = _zero_masks(a.model), _zero_masks(b.model)
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    return SeedRun(
        case=case.name,
        seed=seed,
        steps=len(a.steps),
        max_zero_diff=int(diff),
        min_iou=min(_iou(masks_a[k], masks_b[k]) for k in masks_a),
        max_weight_diff=max(
            float((state_a[k].double() - state_b[k].double()).abs().max()) for k in state_a
        ),
        acc_gmp=a.epochs[-1].val_accuracy,
        acc_sparseml=b.epochs[-1].val_accuracy,
        sparsity_gmp=a.report.sparsity,
        sparsity_sparseml=b.report.sparsity,
        seconds_gmp=a.seconds,
        seconds_sparseml=b.seconds,
    )


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    sem = float(scipy.stats.sem(x))
    if sem == 0.0:
        return mean, mean, mean
    low, high = scipy.stats.t.interval(0.95, x.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def _tost(diffs: list[float]) -> dict:
    from study.stats import tost_one_sample

    result = tost_one_sample(diffs, -MARGIN, MARGIN)
    return asdict(result)


def summarize(case: Case, runs: list[SeedRun]) -> CaseSummary:
    """Aggregate one case's seed runs: worst zero difference and IoU, accuracy CIs, TOST.

    Args:
        case: The case.
        runs: Its :class:`SeedRun` records (one per seed).

    Returns:
        A :class:`CaseSummary`.

    Example:
        >>> summarize(case, [run_case(case, s, data) for s in range(3)])  # doctest: +SKIP
    """
    return CaseSummary(
        case=case.name,
        description=case.description,
        seeds=tuple(r.seed for r in runs),
        max_zero_diff=max(r.max_zero_diff for r in runs),
        min_iou=min(r.min_iou for r in runs),
        max_weight_diff=max(r.max_weight_diff for r in runs),
        acc_gmp=_mean_ci([r.acc_gmp for r in runs]),
        acc_sparseml=_mean_ci([r.acc_sparseml for r in runs]),
        tost=_tost([r.acc_gmp - r.acc_sparseml for r in runs]),
    )


def _verdict(tost: dict, n: int) -> str:
    """ "yes", "NO", or "untested" when one paired run leaves the variance undefined."""
    if n < 2:
        return "untested (1 seed)"
    return "yes" if tost["equivalent"] else "NO"


def _fmt_ci(ci: tuple[float, float, float]) -> str:
    """Mean and 95% interval, the interval clipped to [0, 1] (accuracy cannot leave it)."""
    mean, low, high = ci
    if math.isnan(low):
        return f"{mean:.1%}"
    low, high = max(low, 0.0), min(high, 1.0)
    return f"{mean:.1%} [{low:.1%}, {high:.1%}]"


def to_markdown(summaries: list[CaseSummary], pooled: dict) -> str:
    """The summary table in Markdown."""
    lines = [
        "| case | seeds | max zero diff | min mask IoU | max weight diff | acc gmp (95% CI) | "
        "acc SparseML (95% CI) | diff | TOST p | equivalent |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |",
    ]
    for s in summaries:
        lines.append(
            f"| {s.case} | {len(s.seeds)} | {s.max_zero_diff} | {s.min_iou:.4f} | {s.max_weight_diff:.2e} | "
            f"{_fmt_ci(s.acc_gmp)} | {_fmt_ci(s.acc_sparseml)} | {s.tost['estimate']:+.2%} | "
            f"{s.tost['pvalue']:.3g} | {_verdict(s.tost, len(s.seeds))} |"
        )
    lines.append(
        f"\nPooled over {pooled['n']} paired runs: accuracy difference {pooled['estimate']:+.3%}, "
        f"90% CI [{pooled['ci90_low']:+.3%}, {pooled['ci90_high']:+.3%}], TOST p = {pooled['pvalue']:.3g} "
        f"(margin -/+ {MARGIN:.0%}): equivalent: {_verdict(pooled, pooled['n'])}."
    )
    return "\n".join(lines) + "\n"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m baselines.validate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1); default 3")
    parser.add_argument(
        "--cases", nargs="+", default=None, help=f"cases to run (default all): {', '.join(CASES)}"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/validate"), help="output folder")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"one seed and the first {QUICK_TRAIN_IMAGES} training images (tests, smoke runs)",
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases or []) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {sorted(CASES)}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1; got {args.seeds}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the validation, write JSON and Markdown, print the table; 0 when all checks pass.

    Args:
        argv: Command-line arguments (None: ``sys.argv[1:]``).

    Returns:
        0 if every zero-count difference is 0 and every equivalence test passes, else 1.

    Example:
        >>> main(["--cases", "linear", "--quick", "--out", "/tmp/validate"])  # doctest: +SKIP
        0
    """
    import study  # noqa: F401  (sets NM_DISABLE_ANALYTICS before SparseML is imported)
    from study.make.data import digits, loaders
    from study.records.logs import configure_logging

    args = _parse(argv)
    configure_logging(-1)
    seeds = [0] if args.quick else list(range(args.seeds))
    cases = [CASES[name] for name in (args.cases or CASES)]
    train_ds, val_ds = digits(image_size=16, channels=3, seed=0)
    if args.quick:
        train_ds = Subset(train_ds, range(QUICK_TRAIN_IMAGES))
    data = loaders(train_ds, val_ds, batch_size=64, seed=0)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is as fast and less noisy on shared CPUs
    runs: dict[str, list[SeedRun]] = {case.name: [] for case in cases}
    try:
        with tqdm(total=len(cases) * len(seeds), desc="validate", disable=not args.progress) as bar:
            for case in cases:
                for seed in seeds:
                    bar.set_postfix(case=case.name, seed=seed)
                    runs[case.name].append(run_case(case, seed, data))
                    bar.update(1)
    finally:
        torch.set_num_threads(threads)
    summaries = [summarize(case, runs[case.name]) for case in cases]
    diffs = [r.acc_gmp - r.acc_sparseml for rs in runs.values() for r in rs]
    pooled = {"n": len(diffs), **_tost(diffs)}
    verdicts = [_verdict(s.tost, len(s.seeds)) for s in summaries] + [_verdict(pooled, len(diffs))]
    passed = all(s.max_zero_diff == 0 for s in summaries) and "NO" not in verdicts
    markdown = to_markdown(summaries, pooled)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "passed": passed,
        "seconds": time.perf_counter() - start,
        "margin": MARGIN,
        "torch": torch.__version__,
        "pooled": pooled,
        "cases": [asdict(s) for s in summaries],
        "runs": [asdict(r) for rs in runs.values() for r in rs],
        "recipes": {case.name: case.recipe for case in cases},
        "configs": {case.name: asdict(case.config) for case in cases},
    }
    (args.out / "validate.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "validate.md").write_text(markdown)
    print(markdown)
    print(
        f"{'PASS' if passed else 'FAIL'} ({report['seconds']:.0f} s); wrote {args.out}/validate.json and validate.md"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
