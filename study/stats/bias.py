"""The toolchain-bias ratio B: does an engine gain more on its own toolchain's models?"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import scipy.stats

from study.stats._frame import (
    check_confidence,
    check_frame,
    failed_trials,
    failure_note,
    group_index,
    ok_trials,
    unique_keys,
)
from study.stats.equivalence import TostResult, tost
from study.stats.meta import random_effects, welch_contrast

__all__ = ["BiasResult", "toolchain_bias", "bias_table"]

_FACTORS = {"pruner": "exporter", "exporter": "pruner"}  # factor -> the factor held fixed
_SETTING = ["sparsity", "scenario", "batch_size", "threads"]


@dataclass(frozen=True)
class BiasResult:
    """B = (numerator / denominator throughput on level_a) / (the same on level_b)."""

    machine: str  # machine id; each machine is analysed on its own
    model: str  # architecture, or "pooled" for the random-effects pooled row
    factor: str  # "pruner" or "exporter": what differs between level_a and level_b
    level_a: str  # e.g. "sparseml" (the numerator engine's own toolchain)
    level_b: str  # e.g. "gmp" (the independent re-implementation)
    numerator: str  # engine in the numerator of each ratio, e.g. "deepsparse"
    denominator: str  # engine in the denominator, e.g. "openvino"
    sparsity: float  # target sparsity of the compared variants
    estimate: float  # B = exp(log B); 1 means no bias
    ci_low: float  # lower CI bound of B (t interval on log B); NaN when undefined
    ci_high: float  # upper CI bound of B
    pvalue: float  # two-sided t test of B = 1
    tost: TostResult  # equivalence test of log B in [log(1 - margin), log(1 + margin)]
    margin: float  # equivalence margin: B in [1 - margin, 1 + margin]
    equivalent: bool  # tost.equivalent: "no bias larger than margin" at level 1 - confidence
    n_trials: int  # ok trials used (all four cells, all architectures for the pooled row)
    cells: tuple[str, ...]  # cell ids used
    held: str = ""  # level of the factor held fixed (the exporter for factor="pruner")
    precision: str = "f32"  # precision of every cell
    scenario: str = ""  # benchmark scenario of every cell
    batch_size: int = 0  # batch size of every cell
    threads: int = 0  # threads of every cell
    log_estimate: float = math.nan  # log B
    se: float = math.nan  # standard error of log B (HKSJ for the pooled row)
    dof: float = math.nan  # Welch-Satterthwaite dof, or k - 1 for the pooled row
    confidence: float = 0.95  # two-sided level of the CI; the TOST level is 1 - confidence
    k: int = 1  # architectures pooled (1 for a per-architecture row)
    tau2: float = math.nan  # DerSimonian-Laird between-architecture variance (pooled row)
    note: str = ""  # why something is NaN or skipped, or how the pooled row was formed


def _check_args(factor, level_a, level_b, numerator, denominator, margin, confidence) -> None:
    if factor not in _FACTORS:
        raise ValueError(f"`factor` must be one of {sorted(_FACTORS)}; got {factor!r}")
    if level_a == level_b:
        raise ValueError(f"`level_b` must differ from `level_a`; got {level_b!r} for both")
    if numerator == denominator:
        raise ValueError(f"`denominator` must differ from `numerator`; got {denominator!r}")
    if not (isinstance(margin, (int, float)) and 0.0 < margin < 1.0):
        raise ValueError(f"`margin` must be in (0, 1); got {margin!r}")
    if check_confidence(confidence) <= 0.5:
        raise ValueError(f"`confidence` must be in (0.5, 1); got {confidence!r}")


def _t_summary(log_b: float, se: float, dof: float, confidence: float):
    """(B, ci_low, ci_high, p of B = 1) from a t-distributed log B."""
    with np.errstate(divide="ignore", invalid="ignore"):
        half = float(scipy.stats.t.ppf(0.5 + confidence / 2.0, dof)) * se
        pvalue = float(2.0 * scipy.stats.t.sf(abs(np.divide(log_b, se)), dof))
    return math.exp(log_b), math.exp(log_b - half), math.exp(log_b + half), pvalue


def _architecture(ok_by, failed_by, key, cells, base, margins, confidence) -> BiasResult:
    """One per-architecture B from its four independent cells (``key + (engine, level)``)."""
    samples, ids, missing = [], [], []
    empty = pd.DataFrame({"throughput": [], "cell": []})
    for engine, level in cells:
        part = ok_by.get((*key, engine, level), empty)
        if part.empty:
            lost = failed_by.get((*key, engine, level), empty)
            missing.append(failure_note(lost, f"{engine}/{level}"))
        samples.append(np.log(part["throughput"].to_numpy(dtype=float)))
        ids.extend(sorted(part["cell"].unique()))
    n_trials = int(sum(s.size for s in samples))
    if missing:
        nan = math.nan
        nothing = tost(nan, nan, nan, *margins, alpha=1.0 - confidence)
        return BiasResult(
            **base,
            estimate=nan,
            ci_low=nan,
            ci_high=nan,
            pvalue=nan,
            tost=nothing,
            equivalent=False,
            n_trials=n_trials,
            cells=tuple(ids),
            note="; ".join(missing),
        )
    c = welch_contrast(samples, [1.0, -1.0, -1.0, 1.0])
    b, low, high, pvalue = _t_summary(c.estimate, c.se, c.dof, confidence)
    test = tost(c.estimate, c.se, c.dof, *margins, alpha=1.0 - confidence)
    note = "" if math.isfinite(c.se) else "a cell has a single trial: variance undefined"
    return BiasResult(
        **base,
        estimate=b,
        ci_low=low,
        ci_high=high,
        pvalue=pvalue,
        tost=test,
        equivalent=test.equivalent,
        n_trials=n_trials,
        cells=tuple(ids),
        log_estimate=c.estimate,
        se=c.se,
        dof=c.dof,
        note=note,
    )


def _pooled(results: list[BiasResult], margins, confidence, hksj_floor) -> BiasResult:
    """Random-effects pool of the per-architecture log B of one machine and setting."""
    usable = [r for r in results if math.isfinite(r.se) and r.se > 0 and math.isfinite(r.dof)]
    skipped = [r.model for r in results if r not in usable]
    note = f"pooled {len(usable)} of {len(results)} architectures"
    note += f"; skipped {', '.join(skipped)} (see their notes)" if skipped else ""
    cells = tuple(sorted({c for r in results for c in r.cells}))
    n_trials = sum(r.n_trials for r in usable)
    if len(usable) == 1:
        only = usable[0]
        return replace(only, model="pooled", note=f"{note}; k=1: pooled = {only.model}")
    first = results[0]
    if not usable:
        nan = math.nan
        return replace(
            first,
            model="pooled",
            estimate=nan,
            ci_low=nan,
            ci_high=nan,
            pvalue=nan,
            tost=tost(nan, nan, nan, *margins, alpha=1.0 - confidence),
            equivalent=False,
            n_trials=0,
            cells=cells,
            log_estimate=nan,
            se=nan,
            dof=nan,
            k=0,
            note=note,
        )
    meta = random_effects(
        [r.log_estimate for r in usable],
        [r.se**2 for r in usable],
        confidence=confidence,
        hksj_floor=hksj_floor,
    )
    test = tost(meta.estimate, meta.se, meta.dof, *margins, alpha=1.0 - confidence)
    return replace(
        first,
        model="pooled",
        estimate=math.exp(meta.estimate),
        ci_low=math.exp(meta.ci_low),
        ci_high=math.exp(meta.ci_high),
        pvalue=meta.pvalue,
        tost=test,
        equivalent=test.equivalent,
        n_trials=n_trials,
        cells=tuple(sorted({c for r in usable for c in r.cells})),
        log_estimate=meta.estimate,
        se=meta.se,
        dof=meta.dof,
        k=meta.k,
        tau2=meta.tau2,
        note=note,
    )


def toolchain_bias(
    df: pd.DataFrame,
    *,
    numerator: str = "deepsparse",
    denominator: str = "openvino",
    factor: str = "pruner",
    level_a: str = "sparseml",
    level_b: str = "gmp",
    margin: float = 0.05,
    confidence: float = 0.95,
    precision: str = "f32",
    hksj_floor: bool = True,
) -> list[BiasResult]:
    """Toolchain-bias ratio B per machine and architecture, and pooled across architectures.

    For one machine, architecture and setting, with ``N`` the numerator engine's and ``D`` the
    denominator engine's trial throughputs on the variants made with ``level_a`` and ``level_b``:

        log B = (mean log N_a - mean log D_a) - (mean log N_b - mean log D_b)

    over four independent cells; ``SE = sqrt(sum_i s_i^2 / n_i)`` (s_i of log throughput),
    Welch-Satterthwaite dof (:func:`study.stats.meta.welch_contrast`), CI
    ``exp(log B -/+ t_{1-alpha/2}(dof) SE)`` and a t test of ``log B = 0``. Equivalence is TOST
    (:func:`study.stats.tost`) with the asymmetric log margins ``log(1 - margin)`` and
    ``log(1 + margin)`` (so B in [0.95, 1.05] for margin 0.05) at level ``alpha = 1 -
    confidence`` (the 90% interval inside the margins for confidence 0.95).

    Pooled row (``model == "pooled"``) per machine and setting: random-effects meta-analysis of
    the per-architecture log B (:func:`study.stats.meta.random_effects`: DerSimonian-Laird
    tau^2, HKSJ variance, t(k - 1)); with k = 1 it is that architecture's result. "No bias
    larger than margin" is supported exactly when the pooled row's ``equivalent`` is True.

    The held factor (``exporter`` when ``factor == "pruner"``, else ``pruner``), sparsity,
    scenario, batch size and threads must match across the four cells; each combination gives
    its own rows. Missing or failed cells give a row with NaN statistics and a ``note``;
    a single trial in a cell gives NaN CI/p/TOST (``equivalent=False``). Trials of several cells
    with the same settings (e.g. ONNX files from different seeds) are pooled into one sample.

    Args:
        df: TrialRow rows from any number of machines.
        numerator: engine in the numerator, e.g. ``"deepsparse"``.
        denominator: engine in the denominator, e.g. ``"openvino"``.
        factor: ``"pruner"`` or ``"exporter"``.
        level_a: level of ``factor`` on top of B (``"sparseml"``).
        level_b: level below (``"gmp"`` for the pruner, ``"torch"`` for the exporter).
        margin: equivalence margin in (0, 1).
        confidence: two-sided CI level in (0.5, 1); TOST at ``1 - confidence``.
        precision: precision of every cell used.
        hksj_floor: floor the HKSJ factor at 1 (see :func:`study.stats.meta.random_effects`).

    Returns:
        Per machine and setting: one :class:`BiasResult` per architecture, then the pooled one.

    Raises:
        ValueError: on an invalid argument, a missing column or a throughput <= 0.

    Example:
        >>> rows = toolchain_bias(trials)  # doctest: +SKIP
        >>> [(r.model, round(r.estimate, 3), r.equivalent) for r in rows]  # doctest: +SKIP
    """
    check_frame(df)
    _check_args(factor, level_a, level_b, numerator, denominator, margin, confidence)
    held = _FACTORS[factor]
    subset = df.loc[
        df["engine"].isin([numerator, denominator])
        & df[factor].isin([level_a, level_b])
        & (df["precision"] == precision)
    ]
    ok, failed = ok_trials(subset), failed_trials(subset)
    margins = (math.log(1.0 - margin), math.log(1.0 + margin))
    cells = [
        (numerator, level_a),
        (denominator, level_a),
        (numerator, level_b),
        (denominator, level_b),
    ]
    group = ["machine", held, *_SETTING]
    by_cell = [*group, "model", "engine", factor]
    ok_by, failed_by = group_index(ok, by_cell), group_index(failed, by_cell)
    models: dict[tuple, set] = {}
    for key in [*ok_by, *failed_by]:
        models.setdefault(key[: len(group)], set()).add(key[len(group)])
    out: list[BiasResult] = []
    for key in unique_keys([ok, failed], group):
        setting = dict(zip(group, key))
        per_model = []
        for model in sorted(models[key]):
            base = dict(
                machine=setting["machine"],
                model=model,
                factor=factor,
                level_a=level_a,
                level_b=level_b,
                numerator=numerator,
                denominator=denominator,
                sparsity=float(setting["sparsity"]),
                margin=float(margin),
                held=setting[held],
                precision=precision,
                scenario=setting["scenario"],
                batch_size=int(setting["batch_size"]),
                threads=int(setting["threads"]),
                confidence=float(confidence),
            )
            arch = (*key, model)
            per_model.append(
                _architecture(ok_by, failed_by, arch, cells, base, margins, confidence)
            )
        out.extend(per_model)
        out.append(_pooled(per_model, margins, confidence, hksj_floor))
    return out


def bias_table(results: list[BiasResult]) -> pd.DataFrame:
    """One tidy row per :class:`BiasResult`, the TOST fields flattened.

    The TOST fields become ``tost_pvalue, tost_p_lower, tost_p_upper`` and
    ``tost_ci90_low, tost_ci90_high``, the latter on the B scale (``exp`` of the log-scale
    ``1 - 2 alpha`` interval), so they compare directly with ``1 -/+ margin``.

    Args:
        results: output of :func:`toolchain_bias` (any number of calls concatenated).

    Returns:
        DataFrame with every BiasResult field except ``tost``, plus the flattened TOST columns.

    Raises:
        ValueError: if an element is not a BiasResult.

    Example:
        >>> bias_table(toolchain_bias(trials)).query("model == 'pooled'")  # doctest: +SKIP
    """
    rows = []
    for i, r in enumerate(results):
        if not isinstance(r, BiasResult):
            raise ValueError(f"`results[{i}]` must be a BiasResult; got {type(r)!r}")
        row = asdict(r)
        t = row.pop("tost")
        row.update(
            tost_pvalue=t["pvalue"],
            tost_p_lower=t["p_lower"],
            tost_p_upper=t["p_upper"],
            tost_ci90_low=math.exp(t["ci90_low"]) if math.isfinite(t["ci90_low"]) else math.nan,
            tost_ci90_high=math.exp(t["ci90_high"]) if math.isfinite(t["ci90_high"]) else math.nan,
        )
        rows.append(row)
    columns = [f for f in BiasResult.__dataclass_fields__ if f != "tost"]
    extra = ["tost_pvalue", "tost_p_lower", "tost_p_upper", "tost_ci90_low", "tost_ci90_high"]
    return pd.DataFrame(rows, columns=[*columns, *extra])
