"""Variance components and the replicate allocation: ``python -m study.variance RESULTS...``.

Kalibera & Jones's dimensioning experiment on results that hold replicates (and, for the run
level, several runs of one machine): per cell and per engine ratio, the variance of the per-round
log values between rounds (within a replicate), between replicates (within a run) and between
runs (:mod:`study.stats.components`: K&J's unbiased estimators on balanced data, REML otherwise).
With ``--budget`` it prints, per row, the replicates x rounds per replicate that give the
narrowest CI of that cell or ratio within the budget (:func:`study.stats.allocation.allocate`),
from ``--replicate-cost`` (process start, compile and warm-up of the block's workers) and the
round cost (``--round-cost``, else measured: the median time between successive rounds of a
block in the rows' timestamps).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from study.records.results import load_results, write_csv
from study.stats import ok_trials
from study.stats.allocation import allocate
from study.stats.components import METHODS
from study.stats.decompose import cell_components, contrast_components

__all__ = ["main", "ratio_components", "round_seconds"]

_RATIO_KEYS = ["machine", "model", "pruner", "profile", "mask", "quant", "exporter", "sparsity",
               "precision", "scenario", "batch_size", "threads", "block"]  # fmt: skip


def round_seconds(df: pd.DataFrame) -> float:
    """Median seconds between the ends of successive rounds of a block (one run and replicate).

    NaN when no block has two rounds with timestamps.
    """
    ok = ok_trials(df)
    if "timestamp" not in ok or ok.empty:
        return math.nan
    ok = ok.assign(_t=pd.to_datetime(ok["timestamp"], errors="coerce", utc=True))
    ends = ok.dropna(subset=["_t"]).groupby(["machine", "run_id", "replicate", "block", "round"])
    last = ends["_t"].max().sort_index()
    gaps = last.groupby(level=["machine", "run_id", "replicate", "block"]).diff().dropna()
    return float(np.median(gaps.dt.total_seconds())) if len(gaps) else math.nan


def ratio_components(df: pd.DataFrame, *, method: str = "auto") -> pd.DataFrame:
    """Variance components of every engine ratio (two engines on one model file, one block).

    Returns:
        One row per machine, model file, settings, block and engine pair (a < b by name): the
        key columns, ``engine_a, engine_b`` and the :func:`cell_components` columns.
    """
    ok = ok_trials(df)
    rows = []
    for values, sub in ok.groupby(_RATIO_KEYS, sort=True, dropna=False):
        for ea, eb in itertools.combinations(sorted(sub["engine"].unique()), 2):
            pair = sub.loc[sub["engine"].isin([ea, eb])]
            c = contrast_components(pair, {ea: 1.0, eb: -1.0}, key="engine", method=method)
            rows.append(
                dict(zip(_RATIO_KEYS, values)) | {"engine_a": ea, "engine_b": eb}
                | {f"var_{k}": v for k, v in c.as_dict().items()}
                | dict(method=c.method, balanced=c.balanced, n_runs=c.n_runs)
                | dict(n_replicates=c.n_replicates, n_rounds=c.n_rounds, note=c.note)
            )  # fmt: skip
    return pd.DataFrame(rows)


def _allocations(table: pd.DataFrame, budget, cost_rep, cost_round) -> pd.DataFrame:
    out = []
    for row in table.itertuples(index=False):
        try:
            a = allocate(row.var_round, row.var_replicate, cost_round=cost_round,
                         cost_replicate=cost_rep, budget=budget)  # fmt: skip
            out.append(
                f"{a.replicates} x {a.rounds} (K&J r {a.rounds_kj:g}; hw {a.half_width:.3g})"
            )
        except ValueError as exc:
            out.append(f"- ({exc})")
    return table.assign(allocation=out)


def _show(table: pd.DataFrame, name: str, cols: list[str]) -> None:
    if table.empty:
        print(f"{name}: none")
        return
    sd = table.assign(**{f"sd_{k}": np.sqrt(table[f"var_{k}"].clip(lower=0)) for k in
                         ("round", "replicate", "run")})  # fmt: skip
    shown = [*cols, "n_runs", "n_replicates", "n_rounds", "sd_round", "sd_replicate", "sd_run",
             "method"] + (["allocation"] if "allocation" in table else [])  # fmt: skip
    print(f"{name} (sd_*: standard deviations of the per-round log values at each level):")
    print(sd[shown].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m study.variance``: variance components per cell and engine ratio."""
    p = argparse.ArgumentParser(
        prog="python -m study.variance", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("results", nargs="+", help="results JSONL files or folders holding them")
    p.add_argument("--method", choices=METHODS, default="auto", help="kj, reml or auto (default)")
    p.add_argument("--budget", type=float, help="seconds for one block: print the allocation")
    p.add_argument("--replicate-cost", type=float, help="seconds a replicate costs besides rounds")
    p.add_argument("--round-cost", type=float, help="seconds a round costs (default: measured)")
    p.add_argument("--csv", help="also write the cell and ratio tables (one CSV, `kind` column)")
    args = p.parse_args(argv)
    try:
        df = load_results(*args.results)
        if df.empty:
            raise ValueError(f"no result rows in {args.results}")
        cells, ratios = (
            cell_components(df, method=args.method),
            ratio_components(df, method=args.method),
        )
        if args.budget is not None:
            cost_round = args.round_cost if args.round_cost is not None else round_seconds(df)
            if args.replicate_cost is None or not math.isfinite(cost_round):
                raise ValueError(
                    "--budget needs --replicate-cost (seconds) and a round cost (--round-cost, or "
                    f"timestamps to measure it; measured {cost_round!r})"
                )
            print(f"allocation for a budget of {args.budget:g} s: replicate {args.replicate_cost:g} s, "
                  f"round {cost_round:.3g} s")  # fmt: skip
            cells = _allocations(cells, args.budget, args.replicate_cost, cost_round)
            ratios = _allocations(ratios, args.budget, args.replicate_cost, cost_round)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _show(cells, "cells", ["machine", "engine", "model", "pruner", "profile", "mask"])
    _show(
        ratios, "engine ratios", ["machine", "engine_a", "engine_b", "model", "pruner", "profile"]
    )
    if args.csv:
        write_csv(pd.concat([cells.assign(kind="cell"), ratios.assign(kind="ratio")]), args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
