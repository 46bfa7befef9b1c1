"""Replication tests on what the study reports: each run's own estimate, with its own SE.

For every unit (a cell; an engine ratio on one model file and settings; a channel's B per
architecture and pooled) and every run that measured it, the run's estimate is the one the study
would report from that run alone: :func:`study.stats.contrast` (round-paired inside each
replicate; across the run's replicates when it has several, ``basis == "replicate"``; from its
rounds alone when it has one, ``basis == "round"``) or :func:`study.stats.channel_bias` for B.
Two runs i, j of a unit are compared by

    t = (e_i - e_j) / sqrt(se_i^2 + se_j^2),
    dof = (se_i^2 + se_j^2)^2 / (se_i^4 / dof_i + se_j^4 / dof_j)     (Welch-Satterthwaite).

If each run's SE described everything that varies between runs, a share ``alpha`` of these tests
would reject; run-level variance that the SEs ignore (a run effect per cell, or a process effect
with one replicate per run) makes more of them reject.

Units match across runs on the cell fields, the model file's SHA-256 (``onnx_sha256``) and the
input shape (cell and ratio), or on the cell ids of B's four cells (which hash the files).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats

from study.stats._units import TEST_COLUMNS, unit_columns, with_input_shape
from study.stats.channels import channel_bias
from study.stats.paired import contrast

__all__ = ["ESTIMATE_COLUMNS", "paired_tests", "run_estimates"]

ESTIMATE_COLUMNS = ("run_id", "estimate", "se", "dof", "basis", "n_replicates")
_B_UNIT = [
    "channel", "numerator", "denominator", "machine", "model", "held", "scenario", "batch_size",
    "threads", "cells",
]  # fmt: skip


def _record(unit: dict, run: str, c) -> dict:
    values = (run, c.estimate, c.se, c.dof, c.level, c.n_replicates)
    return {**unit, **dict(zip(ESTIMATE_COLUMNS, values))}


def _cells(rows: pd.DataFrame) -> list[dict]:
    key = unit_columns()
    out = []
    for values, sub in rows.groupby([*key, "run_id"], sort=True, dropna=False):
        c = contrast(sub.assign(_unit="u"), {"u": 1.0}, key="_unit")
        out.append(_record(dict(zip(key, values[:-1])), values[-1], c))
    return out


def _ratios(rows: pd.DataFrame) -> list[dict]:
    rest = [c for c in unit_columns() if c != "engine"]
    out = []
    for values, sub in rows.groupby([*rest, "run_id"], sort=True, dropna=False):
        engines = sorted(sub.loc[sub["status"] == "ok", "engine"].unique())
        for ea, eb in itertools.combinations(engines, 2):
            pair = sub.loc[sub["engine"].isin([ea, eb])]
            c = contrast(pair, {ea: 1.0, eb: -1.0}, key="engine")
            unit = {**dict(zip(rest, values[:-1])), "engine_a": ea, "engine_b": eb}
            out.append(_record(unit, values[-1], c))
    return out


def _channels(rows: pd.DataFrame, channels: Sequence, pairs: Sequence | None) -> list[dict]:
    out = []
    engines = sorted(set(rows.loc[rows["status"] == "ok", "engine"]))
    pairs = list(pairs) if pairs is not None else list(itertools.combinations(engines, 2))
    for run, sub in rows.groupby("run_id", sort=True):
        for channel, models in channels:
            part = sub.loc[sub["model"].isin(list(models))]
            for num, den in pairs:
                if num not in engines or den not in engines:
                    continue
                for r in channel_bias(part, channel, num, den, per_architecture=("sparsity",)):
                    held = ", ".join(f"{k}={v}" for k, v in r.held.items())
                    unit = dict(channel=r.channel, numerator=num, denominator=den,
                                machine=r.machine, model=r.model, held=held, scenario=r.scenario,
                                batch_size=r.batch_size, threads=r.threads,
                                cells=_files(part, r.cells))  # fmt: skip
                    values = (run, r.log_estimate, r.se, r.dof, r.level, r.n_replicates)
                    out.append({**unit, **dict(zip(ESTIMATE_COLUMNS, values))})
    return out


def _files(rows: pd.DataFrame, cells: Sequence[str]) -> str:
    """What a B compares, the same in every run: its cells' engine, precision and file SHA-256.

    Not the cell ids: they hash the file's path, which differs between two runs of the same
    files in two folders (``python -m study.compare --reuse-models``).
    """
    sel = rows.loc[rows["cell"].isin(list(cells)), ["engine", "precision", "onnx_sha256"]]
    keys = {f"{e}:{p}:{h[:16]}" for e, p, h in sel.drop_duplicates().itertuples(index=False)}
    return "|".join(sorted(keys))


def run_estimates(
    df: pd.DataFrame,
    level: str,
    *,
    channels: Sequence | None = None,
    engine_pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Each run's own estimate of every unit at ``level``, with its SE, dof and basis.

    Args:
        df: TrialRow rows of several runs (ok and failure rows; failures mark lost replicates).
        level: ``"cell"``, ``"ratio"`` or ``"B"``.
        channels: for ``"B"``: ``(Channel, models)`` pairs.
        engine_pairs: for ``"B"``: (numerator, denominator) engines; default every pair of
            engines present, by name.

    Returns:
        The unit's columns, then ``run_id, estimate, se, dof, basis, n_replicates`` (log scale).

    Raises:
        ValueError: on an unknown level, or ``"B"`` without channels.
    """
    if level not in ("cell", "ratio", "B"):
        raise ValueError(f"`level` must be one of ['cell', 'ratio', 'B']; got {level!r}")
    rows = with_input_shape(df)
    if level == "cell":
        records = _cells(rows)
    elif level == "ratio":
        records = _ratios(rows)
    else:
        if not channels:
            raise ValueError("`channels` must name the (Channel, models) pairs for level 'B'")
        records = _channels(rows, channels, engine_pairs)
    return pd.DataFrame(records)


def _unit_keys(level: str) -> list[str]:
    if level == "cell":
        return unit_columns()
    if level == "ratio":
        return [c for c in unit_columns() if c != "engine"] + ["engine_a", "engine_b"]
    return list(_B_UNIT)


def paired_tests(
    df: pd.DataFrame,
    level: str,
    *,
    channels: Sequence | None = None,
    engine_pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """One test per unit and pair of runs on the runs' own estimates (module docstring).

    Args:
        df: TrialRow rows of two or more runs.
        level: ``"cell"``, ``"ratio"`` or ``"B"``.
        channels, engine_pairs: see :func:`run_estimates` (level ``"B"``).

    Returns:
        The unit's columns and ``run_a, run_b, log_diff, se, dof, t, p, basis``; a pair is left
        out when a run's SE or dof is not finite and > 0 (e.g. a run with one round).

    Example:
        >>> paired_tests(load_results("runs/a", "runs/b"), "ratio")  # doctest: +SKIP
    """
    keys = _unit_keys(level)
    estimates = run_estimates(df, level, channels=channels, engine_pairs=engine_pairs)
    columns = [*keys, *TEST_COLUMNS]
    if estimates.empty:
        return pd.DataFrame(columns=columns)
    se, dof = estimates["se"].to_numpy(float), estimates["dof"].to_numpy(float)
    usable = estimates.loc[np.isfinite(se) & (se > 0) & np.isfinite(dof) & (dof > 0)]
    rows = []
    for values, sub in usable.groupby(keys, sort=True, dropna=False):
        runs = sub.sort_values("run_id").to_dict(orient="records")
        for a, b in itertools.combinations(runs, 2):
            var = a["se"] ** 2 + b["se"] ** 2
            nu = var**2 / (a["se"] ** 4 / a["dof"] + b["se"] ** 4 / b["dof"])
            diff = a["estimate"] - b["estimate"]
            t = diff / math.sqrt(var)
            p = float(2 * scipy.stats.t.sf(abs(t), nu))
            basis = a["basis"] if a["basis"] == b["basis"] else f"{a['basis']}/{b['basis']}"
            test = (a["run_id"], b["run_id"], diff, math.sqrt(var), nu, t, p, basis)
            rows.append({**dict(zip(keys, values)), **dict(zip(TEST_COLUMNS, test))})
    return pd.DataFrame(rows, columns=columns)
