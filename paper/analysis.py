"""The statistics the paper needs, computed once from the results with ``study.stats``.

Figures, tables and the report all read one :class:`Analysis`, so each number is computed once and
the same number appears everywhere. The channels, the home-advantage test, the A/A facts and the
per-cell tables (cells, engine comparisons, pruning speed-ups) are the run's one analysis
(:func:`study.analysis.stats_file.run_analysis`): ``stats.json``'s when it is current, else
computed by the same function, so they are the numbers of ``summary.md``; where the data cannot
support an analysis (no config.yaml, no DeepSparse rows, no precision ablation, no sweep, ...),
the analysis is empty or ``None`` and ``reasons`` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from paper.load import Results
from study.analysis.int8 import Int8Analysis, analyse_int8
from study.analysis.stats_file import run_analysis
from study.analysis.summary import ENGINE_PAIRS, accuracy_table, engine_pairs, variant_label
from study.records.schema import ModelRecord
from study.stats import CONFIDENCE, MARGIN, RANDOM_EFFECTS_MIN_K, ChannelResult, contrast

__all__ = [
    "MAIN_PAIR",
    "NOT_TRAINED",
    "RANDOM_EFFECTS_MIN_K",
    "Analysis",
    "analyse",
    "first_speedup_sparsity",
]

MAIN_PAIR = ENGINE_PAIRS[0]  # the original study's comparison (DeepSparse ~12% faster)
NOT_TRAINED = "not trained"  # the label of a model below the preset's accuracy gate
_VARIANT = ["pruner", "profile", "mask", "quant", "exporter", "sparsity"]
_SETTING = ["scenario", "batch_size", "threads", "isa"]
_GROUP = ["machine", "model", *_VARIANT, *_SETTING]
# The precision ablation's ratios: (name, (engine, precision) of a, (engine, precision) of b).
_PRECISION_RATIOS = (
    ("openvino default / openvino f32", ("openvino", "default"), ("openvino", "f32")),
    ("openvino f32-sparse / openvino f32", ("openvino", "f32-sparse"), ("openvino", "f32")),
    ("deepsparse f32 / openvino f32", ("deepsparse", "f32"), ("openvino", "f32")),
    ("deepsparse f32 / openvino default", ("deepsparse", "f32"), ("openvino", "default")),
)


def _variant_key(row, machine: str = "") -> tuple:
    """(machine, model, variant columns) of a mapping, a pandas row or a ModelRecord."""
    if isinstance(row, pd.Series):  # not getattr: Series.mask is a method, not the column
        row = row.to_dict()
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return (
        machine,
        get("model"),
        *(get(c) for c in _VARIANT[:-1]),
        round(float(get("sparsity")), 4),
    )


@dataclass(frozen=True)
class Analysis:
    """Every statistic the paper reports, each empty or ``None`` where the data cannot support it."""

    ok: pd.DataFrame  # the trial rows with status "ok"
    # The per-cell tables of the run's analysis (study.analysis.summary.CellTables):
    cells: pd.DataFrame  # one row per cell (geometric mean, t 95% CI)
    engines: tuple[str, ...]  # engines with ok rows, sorted
    machines: tuple[str, ...]  # machines with ok rows, sorted
    comparisons: dict[tuple[str, str], pd.DataFrame]  # (a, b) -> a / b (engine_pairs), fp32
    speedup: pd.DataFrame | None  # pruned / dense (finite rows)
    precision: pd.DataFrame | None  # OpenVINO's precisions vs f32 and vs DeepSparse, per file
    channels: tuple[ChannelResult, ...]  # the run's analysis (stats.json): pooled rows Holm'd
    identity: dict[str, bool]  # architecture -> SparseML-pruned file content-identical to gmp's
    signed_zeros: dict[str, int]  # architecture -> zeros of opposite sign in SparseML's own file
    one_file: dict[str, bool]  # architecture -> gmp's file measured in the SparseML cells too
    int8: Int8Analysis | None  # the int8 arm (None: no int8 file measured)
    accuracy: pd.DataFrame | None  # study.analysis.summary.accuracy_table plus machine and sparsity
    margin: float = MARGIN  # the declared equivalence margin (config.yaml `analysis`)
    confidence: float = CONFIDENCE  # the declared CI level
    accuracy_gate: float | None = None  # config.yaml `train.accuracy_gate`
    not_trained: frozenset[tuple] = frozenset()  # variant keys of models below the gate
    order: dict[tuple, int] = field(default_factory=dict)  # variant key -> manifest position
    reasons: dict[str, str] = field(default_factory=dict)  # analysis name -> why it is absent
    home: tuple[ChannelResult, ...] = ()  # the run's analysis: the whole-toolchain tests
    apart: dict[str, dict[str, str]] = field(default_factory=dict)  # channel -> model -> why

    def trained(self, row, machine: str = "") -> bool:
        """False when the variant of ``row`` (a mapping or a record) is labelled "not trained"."""
        keys = {_variant_key(row, machine), _variant_key(row)}
        return not (keys & self.not_trained)

    def rank(self, row) -> int:
        """The variant's position in the manifest (the study's own order); unknown ones last."""
        return self.order.get(_variant_key(row), len(self.order))

    def label(self, row, machine: str = "") -> str:
        """``study.analysis.summary.variant_label`` of ``row``, with " (not trained)" below the gate."""
        name = variant_label(row.to_dict() if isinstance(row, pd.Series) else row)
        return name if self.trained(row, machine) else f"{name} ({NOT_TRAINED})"


def _finite(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose estimate is finite (a row where one side has no trials carries NaN)."""
    return frame[np.isfinite(frame["estimate"].astype(float))].reset_index(drop=True)


def _precision(ok: pd.DataFrame) -> pd.DataFrame | None:
    """OpenVINO's other precisions over its f32, and DeepSparse over each, per file: round-paired."""
    ov = ok[ok["engine"] == "openvino"]
    if (
        not (ov["precision"] == "f32").any()
        or ov["precision"].isin(["default", "f32-sparse"]).sum() == 0
    ):
        return None
    rows = []
    for key, group in ok.groupby(_GROUP, sort=True):
        cells = group.groupby(["engine", "precision"])["cell"].agg(lambda c: sorted(set(c))[0])
        for name, a, b in _PRECISION_RATIOS:
            if a not in cells.index or b not in cells.index:
                continue
            if a[1] == "f32" and b[1] == "f32" and not group["precision"].ne("f32").any():
                continue  # a file without an ablation cell: the engine comparison covers it
            c = contrast(group, {cells[a]: 1.0, cells[b]: -1.0})
            rows.append(
                dict(zip(_GROUP, key))
                | {"comparison": name, "estimate": math.exp(c.estimate)}
                | {"ci_low": math.exp(c.ci_low), "ci_high": math.exp(c.ci_high)}
                | {"pvalue": c.pvalue, "method": c.method, "n_rounds": c.n_rounds}
            )
    return pd.DataFrame(rows) if rows else None


def _accuracy(records: tuple[ModelRecord, ...], cfg) -> pd.DataFrame | None:
    """study.analysis.summary.accuracy_table (the same numbers as summary.md) with machine and sparsity."""
    if not records:
        return None
    table = accuracy_table(list(records), cfg)
    machines = [str(r.extra.get("machine", "")) for r in records]
    return table.assign(machine=machines, sparsity=[float(r.sparsity) for r in records])


def _not_trained(records: tuple[ModelRecord, ...]) -> frozenset[tuple]:
    out = set()
    for r in records:
        if r.trained is False:
            out.add(_variant_key(r, str(r.extra.get("machine", ""))))
    return frozenset(out)


def _channel_reasons(results: Results, found: tuple, engines: tuple[str, ...], reasons: dict):
    if results.study_config is None:
        reasons["channels"] = (
            f"the channel analysis needs the study configuration: {results.config_problem}"
        )
    elif not found:
        reasons["channels"] = (
            f"no channel could be computed: it needs ok rows of two engines of "
            f"{sorted({e for p in ENGINE_PAIRS for e in p})} (got {list(engines)}) and the "
            "variants of the configuration's factors"
        )


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
    cfg = results.study_config
    # The one analysis of the run: stats.json's when it is current, else computed the same way.
    run = run_analysis(results.root, bench, cfg, results.records)
    comparisons = {}
    for pair in engine_pairs(engines):
        frame = _finite(run.tables.comparisons[pair])
        if len(frame):
            comparisons[pair] = frame
    if not comparisons:
        reasons["engines"] = f"needs at least two engines measured on the same cells; got {engines}"
    speedup = None
    if (ok["pruner"] == "none").any() and (ok["pruner"] != "none").any():
        speedup = _finite(run.tables.speedup)
    else:
        reasons["speedup"] = "needs rows of dense (pruner 'none') and pruned models"
    precision = _precision(ok)
    if precision is None:
        reasons["precision"] = (
            "needs OpenVINO rows at precision 'f32' and 'default' or 'f32-sparse'"
        )
    int8 = analyse_int8(ok)
    if int8 is None:
        reasons["int8"] = "no int8 file (quant 'torch' or 'sparseml') was measured"
    _channel_reasons(results, run.channels, engines, reasons)
    if results.manifest.empty:
        reasons["accuracy"] = "no models/manifest.jsonl"
    return Analysis(
        ok=ok,
        cells=run.tables.cells,
        engines=engines,
        machines=tuple(sorted(ok["machine"].unique())),
        comparisons=comparisons,
        speedup=speedup,
        precision=precision,
        channels=run.channels,
        identity=run.identity,
        signed_zeros=run.signed_zeros,
        one_file=run.one_file,
        int8=int8,
        accuracy=_accuracy(results.records, cfg),
        margin=run.margin,
        confidence=run.confidence,
        accuracy_gate=run.accuracy_gate,
        not_trained=_not_trained(results.records),
        order={k: i for i, k in enumerate(dict.fromkeys(map(_variant_key, results.records)))},
        reasons=reasons,
        home=run.home,
        apart=run.apart,
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
    sweep = speedup[speedup["pruner"] == pruner]
    if "precision" in sweep:
        sweep = sweep[sweep["precision"] == "f32"]
    sweep = sweep.sort_values("sparsity")
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
