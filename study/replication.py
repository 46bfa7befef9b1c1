"""Check the harness's CIs against repeated runs: ``python -m study.replication RESULTS...``.

Give it results (JSONL files or run folders) that measured the same cells in two or more runs,
for example two ``python -m study.compare`` runs, or ``python -m study.bench`` run twice into
different files. For each cell, each engine ratio and (when a folder holds the study's
``config.yaml``) each channel's B per architecture and pooled, it compares every pair of runs'
own estimates, each with its own SE (``--method paired``, the default: the estimates the study
reports, round-paired inside each replicate and combined across a run's replicates; ``--method
welch``: unpaired Welch on all trials), and prints how often they disagree at ``--alpha`` (if the
CIs held across runs, that share would be ``alpha``) and by what factor the CIs would have to be
widened to cover the runs' differences. See :mod:`study.stats.replication` and
:mod:`study.stats.replication_paired` for the method.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from study.analysis.summary import ENGINE_PAIRS
from study.records.results import load_results, write_csv
from study.stats.defaults import ALPHA
from study.stats.replication import (
    METHODS,
    PAIRED_LEVELS,
    replication_summary,
    replication_tests,
)

__all__ = ["main", "replication_report"]


def _groups(tests: pd.DataFrame, level: str) -> list[tuple[str, pd.DataFrame]]:
    """All tests, then one group per engine (cells) or engine pair (ratios, B), then B's pools."""
    if tests.empty:
        return [("all", tests)]
    if level == "cell":
        by = tests.engine
    elif level == "ratio":
        by = tests.engine_a + "/" + tests.engine_b
    else:
        by = tests.numerator + "/" + tests.denominator
    groups = [("all", tests)] + [(name, sub) for name, sub in tests.groupby(by, sort=True)]
    if level == "B":
        groups.append(("pooled", tests.loc[tests.model == "pooled"]))
    return groups


def replication_report(
    df: pd.DataFrame,
    *,
    alpha: float = ALPHA,
    tests: dict[str, pd.DataFrame] | None = None,
    method: str = "paired",
    channels: Sequence | None = None,
) -> pd.DataFrame:
    """One row per level and engine (or engine pair): tests, share rejecting, its CI, inflation.

    ``tests``: :func:`replication_tests` of ``df`` per level, where the caller has them already.
    ``method``: ``"paired"`` (each run's own estimate, as the study reports it) or ``"welch"``.
    ``channels``: ``(Channel, models)`` pairs; with them (and method "paired") B is level 3.
    """
    if tests is None:
        levels = [lv for lv in PAIRED_LEVELS if lv != "B" or (channels and method == "paired")]
        tests = {lv: replication_tests(df, lv, method=method, channels=channels) for lv in levels}
    rows = []
    for level in [lv for lv in PAIRED_LEVELS if lv in tests]:
        for name, sub in _groups(tests[level], level):
            s = replication_summary(sub, level, alpha=alpha)
            rows.append({"level": level, "engines": name, **s.as_dict()})
    return pd.DataFrame(rows)


def _format(report: pd.DataFrame) -> str:
    out = report.copy()
    pct = lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%"  # noqa: E731
    out["rejected"] = [
        f"{pct(r)} [{pct(lo)}, {pct(hi)}]" if pd.notna(lo) else pct(r)
        for r, lo, hi in zip(out.rejected, out.rejected_low, out.rejected_high)
    ]
    out["inflation"] = out.inflation.map(lambda v: "" if pd.isna(v) else f"{v:.2f}x")
    out["median_dof"] = out.median_dof.map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    cols = ["level", "engines", "units", "runs", "tests", "rejected", "inflation", "median_dof"]
    return out[cols].to_string(index=False)


def _design_channels(paths: Sequence[str]) -> list | None:
    """The (Channel, models) pairs of the first results folder holding a ``config.yaml``."""
    from study.config import load_config  # noqa: PLC0415 (only when a folder has one)
    from study.design import channels  # noqa: PLC0415

    for path in paths:
        config = Path(path) / "config.yaml"
        if config.is_file():
            cfg = load_config(config, check_paths=False)
            seen: dict[str, tuple] = {}
            for model in cfg.models:
                for ch in channels(cfg, model):
                    seen.setdefault(ch.name, (ch, []))[1].append(model)
            return list(seen.values()) or None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m study.replication``: print how well per-run CIs predict another run."""
    p = argparse.ArgumentParser(
        prog="python -m study.replication", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("results", nargs="+", help="results JSONL files or folders holding them")
    p.add_argument("--alpha", type=float, default=0.05, help="level of each test (default 0.05)")
    p.add_argument(
        "--method",
        choices=METHODS,
        default="paired",
        help="paired: each run's own estimates as the study reports them (default); welch: "
        "unpaired Welch on all trials",
    )
    p.add_argument(
        "--exclude-run",
        action="append",
        default=[],
        metavar="RUN_ID",
        help="leave this run out (repeatable), e.g. to see a result without one disturbed run",
    )
    p.add_argument("--csv", help="also write the summary as CSV")
    p.add_argument("--tests-csv", help="also write every test (unit, runs, t, p) as CSV")
    args = p.parse_args(argv)
    try:
        df = load_results(*args.results)
        if df.empty:
            raise ValueError(f"no result rows in {args.results}")
        unknown = sorted(set(args.exclude_run) - set(df.run_id.dropna()))
        if unknown:
            raise ValueError(f"--exclude-run {unknown}: no such run_id in {args.results}")
        df = df[~df.run_id.isin(args.exclude_run)]
        runs = sorted(df.run_id.dropna().unique())
        if len(runs) < 2:
            raise ValueError(
                f"the results hold {len(runs)} run(s) ({runs}); a replication check needs the same "
                "cells measured in at least 2 runs"
            )
        channels = _design_channels(args.results) if args.method == "paired" else None
        levels = [lv for lv in PAIRED_LEVELS if lv != "B" or channels]
        tests = {
            lv: replication_tests(
                df, lv, method=args.method, channels=channels, engine_pairs=ENGINE_PAIRS
            )
            for lv in levels
        }
        report = replication_report(df, alpha=args.alpha, tests=tests)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if (report.tests == 0).all():
        print(
            f"error: no cell was measured in two of the {len(runs)} runs (they share no cell: "
            "same model file by SHA-256, engine and settings)",
            file=sys.stderr,
        )
        return 2
    how = (
        "each run's own estimate and SE (paired within replicates), Welch-Satterthwaite dof"
        if args.method == "paired"
        else "a Welch test on all trials"
    )
    print(
        f"{len(runs)} runs. 'rejected': share of pairs of runs whose difference ({how}) is "
        f"significant at alpha={args.alpha:g} (expected {100 * args.alpha:g}% if the CIs held "
        "across runs; bootstrap 95% CI over units). 'inflation': factor on the CI half-widths "
        f"that brings it down to {100 * args.alpha:g}%."
    )
    if args.method == "paired" and channels is None:
        print("B: no config.yaml in the results folders, so no channels to test.")
    print(_format(report))
    if args.csv:
        write_csv(report, args.csv)
    if args.tests_csv:
        write_csv(pd.concat([t.assign(level=lv) for lv, t in tests.items()]), args.tests_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
