"""The statistics the paper needs, computed once from the results with ``study.stats``.

Figures, tables and the report all read one :class:`Analysis`, so each number is computed once and
the same number appears everywhere. Where the data cannot support an analysis (no DeepSparse rows,
no precision ablation, no sweep, ...), the analysis is ``None`` and ``reasons`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from paper.load import Results
from study.stats import (
    BiasResult,
    cell_table,
    engine_comparison,
    pruning_speedup,
    throughput_ratio,
    toolchain_bias,
)

__all__ = ["Analysis", "MAIN_PAIR", "analyse", "first_speedup_sparsity"]

MAIN_PAIR = ("deepsparse", "openvino")  # the original study's comparison (DeepSparse ~12% faster)
_GROUP = ["machine", "model", "pruner", "exporter", "sparsity", "scenario", "batch_size", "threads"]


@dataclass(frozen=True)
class Analysis:
    """Every statistic the paper reports, each ``None`` where the data cannot support it."""

    ok: pd.DataFrame  # the trial rows with status "ok"
    cells: pd.DataFrame  # study.stats.cell_table: one row per cell
    engines: tuple[str, ...]  # engines with ok rows, sorted
    machines: tuple[str, ...]  # machines with ok rows, sorted
    comparisons: dict[tuple[str, str], pd.DataFrame]  # (a, b) -> engine_comparison(a / b)
    speedup: pd.DataFrame | None  # study.stats.pruning_speedup
    bias: dict[str, list[BiasResult]]  # factor ("pruner"/"exporter") -> toolchain_bias results
    precision: pd.DataFrame | None  # OpenVINO default vs f32 and vs DeepSparse, per group
    reasons: dict[str, str] = field(default_factory=dict)  # analysis name -> why it is absent


def _engine_pairs(engines: tuple[str, ...]) -> list[tuple[str, str]]:
    """All engine pairs; the original study's pair oriented as DeepSparse / OpenVINO."""
    pairs = []
    for a, b in combinations(engines, 2):
        pairs.append((b, a) if (b, a) == MAIN_PAIR else (a, b))
    return pairs


def _has_levels(ok: pd.DataFrame, column: str, levels: tuple[str, ...]) -> bool:
    return all((ok[column] == level).any() for level in levels)


def _bias(ok: pd.DataFrame, reasons: dict[str, str]) -> dict[str, list[BiasResult]]:
    out: dict[str, list[BiasResult]] = {}
    num, den = MAIN_PAIR
    if not _has_levels(ok, "engine", MAIN_PAIR):
        reason = f"needs throughput rows of both {num} and {den}"
        reasons["bias_pruner"] = reasons["bias_exporter"] = reason
        return out
    if _has_levels(ok, "pruner", ("sparseml", "gmp")):
        out["pruner"] = toolchain_bias(ok, numerator=num, denominator=den, factor="pruner")
    else:
        reasons["bias_pruner"] = "needs rows of both gmp- and SparseML-pruned models"
    sparseml = ok[ok["pruner"] == "sparseml"]
    if _has_levels(sparseml, "exporter", ("sparseml", "torch")):
        out["exporter"] = toolchain_bias(
            ok,
            numerator=num,
            denominator=den,
            factor="exporter",
            level_a="sparseml",
            level_b="torch",
        )
    else:
        reasons["bias_exporter"] = "needs a pruned model exported by both torch and SparseML"
    return out


def _ratio_row(keys: dict, name: str, a: np.ndarray, b: np.ndarray) -> dict:
    r = throughput_ratio(a, b)
    return keys | {
        "comparison": name,
        "estimate": r.estimate,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "welch_p": r.welch_p,
        "n_a": r.n_a,
        "n_b": r.n_b,
    }


def _precision(ok: pd.DataFrame) -> pd.DataFrame | None:
    """OpenVINO default/f32, DeepSparse/OpenVINO f32 and DeepSparse/OpenVINO default per group."""
    ov = ok[ok["engine"] == "openvino"]
    if not (ov["precision"] == "default").any() or not (ov["precision"] == "f32").any():
        return None
    rows = []
    for key, group in ok.groupby(_GROUP, sort=True):
        keys = dict(zip(_GROUP, key))

        def trials(engine: str, precision: str, group: pd.DataFrame = group) -> np.ndarray:
            sel = group[(group["engine"] == engine) & (group["precision"] == precision)]
            return sel["throughput"].to_numpy(dtype=float)

        ov_f32, ov_default = trials("openvino", "f32"), trials("openvino", "default")
        ds = trials("deepsparse", "f32")
        if len(ov_f32) >= 2 and len(ov_default) >= 2:
            rows.append(_ratio_row(keys, "openvino default / openvino f32", ov_default, ov_f32))
        if len(ds) >= 2 and len(ov_f32) >= 2:
            rows.append(_ratio_row(keys, "deepsparse f32 / openvino f32", ds, ov_f32))
        if len(ds) >= 2 and len(ov_default) >= 2:
            rows.append(_ratio_row(keys, "deepsparse f32 / openvino default", ds, ov_default))
    return pd.DataFrame(rows) if rows else None


def analyse(results: Results) -> Analysis:
    """Compute every statistic the paper reports.

    Args:
        results: the loaded results folder.

    Returns:
        The :class:`Analysis`.

    Example:
        >>> analysis = analyse(load_results("results/quick"))  # doctest: +SKIP
        >>> analysis.engines  # doctest: +SKIP
        ('deepsparse', 'onnxruntime', 'openvino')
    """
    bench = results.bench
    ok = bench[(bench["status"] == "ok") & np.isfinite(bench["throughput"].astype(float))]
    ok = ok.reset_index(drop=True)
    reasons: dict[str, str] = {}
    engines = tuple(sorted(ok["engine"].unique()))
    comparisons = {}
    for a, b in _engine_pairs(engines):
        frame = engine_comparison(ok, a, b)
        frame = frame[np.isfinite(frame["estimate"].astype(float))].reset_index(drop=True)
        if len(frame):  # rows where one engine has no trials carry NaN statistics: left out
            comparisons[(a, b)] = frame
    if not comparisons:
        reasons["engines"] = f"needs at least two engines measured on the same cells; got {engines}"
    speedup = None
    if (ok["pruner"] == "none").any() and (ok["pruner"] != "none").any():
        speedup = pruning_speedup(ok)
        speedup = speedup[np.isfinite(speedup["estimate"].astype(float))].reset_index(drop=True)
    else:
        reasons["speedup"] = "needs rows of dense (pruner 'none') and pruned models"
    precision = _precision(ok)
    if precision is None:
        reasons["precision"] = "needs OpenVINO rows at both precision 'f32' and 'default'"
    return Analysis(
        ok=ok,
        cells=cell_table(ok),
        engines=engines,
        machines=tuple(sorted(ok["machine"].unique())),
        comparisons=comparisons,
        speedup=speedup,
        bias=_bias(ok, reasons),
        precision=precision,
        reasons=reasons,
    )


def first_speedup_sparsity(speedup: pd.DataFrame, pruner: str = "oneshot") -> pd.DataFrame:
    """The first sweep level whose speed-up CI lies wholly above 1, per machine, engine and model.

    Args:
        speedup: ``study.stats.pruning_speedup`` output.
        pruner: the sweep's pruner.

    Returns:
        Columns machine, engine, model, exporter, first_sparsity (NaN when no level qualifies),
        estimate, ci_low, ci_high (at that level), max_sparsity (the highest level measured).

    Example:
        >>> s = pd.DataFrame({"machine": "m", "engine": "e", "model": "r", "exporter": "torch",
        ...     "pruner": "oneshot", "sparsity": [0.5, 0.9], "estimate": [1.0, 1.5],
        ...     "ci_low": [0.9, 1.2], "ci_high": [1.1, 1.8]})
        >>> float(first_speedup_sparsity(s)["first_sparsity"].iloc[0])
        0.9
    """
    sweep = speedup[speedup["pruner"] == pruner].sort_values("sparsity")
    rows = []
    keys = ["machine", "engine", "model", "exporter"]
    for key, group in sweep.groupby(keys, sort=True):
        above = group[group["ci_low"] > 1.0]
        row = dict(zip(keys, key)) | {"max_sparsity": group["sparsity"].max()}
        if len(above):
            first = above.iloc[0]
            row |= {"first_sparsity": first["sparsity"], "estimate": first["estimate"]}
            row |= {"ci_low": first["ci_low"], "ci_high": first["ci_high"]}
        else:
            row |= {"first_sparsity": np.nan, "estimate": np.nan, "ci_low": np.nan}
            row |= {"ci_high": np.nan}
        rows.append(row)
    columns = keys + ["first_sparsity", "estimate", "ci_low", "ci_high", "max_sparsity"]
    return pd.DataFrame(rows, columns=columns)
