"""Channels: does a choice of the toolchain (pruner, exporter, profile, mask, quantizer) change
the engine comparison? One ratio B per channel, engine pair, machine and architecture, pooled.

A :class:`Channel` names two variants of a model file by their column values (``level_a``,
``level_b``). For engines N (numerator) and D (denominator):

    log B = (log N_a - log D_a) - (log N_b - log D_b)

estimated by :func:`study.stats.paired.contrast` with weights +1, -1, -1, +1 over the four cells:
round by round inside each replicate when the four cells were measured in one block (common drift
cancels), else the unpaired Welch-Satterthwaite contrast; with several replicates or runs, the
replicates' estimates are combined with the degrees of freedom of the top replicated level
(``level``, ``n_replicates``, ``n_runs``). B = 1: the channel does not change the engine
comparison.

Each row carries the two-sided test of B = 1, TOST at +-margin, the one-sided test of
H0: B >= 1 + margin and the minimum detectable effect. Across the channels and engine pairs a
headline claims, :func:`study.stats.multiplicity.holm_family` adjusts the tests of B = 1; the
claim "no channel biases by more than the margin" is an intersection-union test that needs no
adjustment (see :mod:`study.stats.multiplicity`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from study.stats._frame import (
    check_confidence,
    check_frame,
    failed_trials,
    failure_note,
    group_index,
    ok_trials,
    t_interval,
    unique_keys,
)
from study.stats.defaults import CONFIDENCE, MARGIN
from study.stats.equivalence import TostResult, tost
from study.stats.meta import RANDOM_EFFECTS_MIN_K, pool_estimates
from study.stats.paired import contrast
from study.stats.power import minimum_detectable_effect

__all__ = [
    "CHANNEL_COLUMNS",
    "Channel",
    "ChannelResult",
    "VARIANT_COLUMNS",
    "apart_note",
    "channel_bias",
    "channel_table",
]

# The columns that describe a model file; a channel's levels are values of some of them, the rest
# are held fixed (each combination of their values gets its own rows).
VARIANT_COLUMNS: tuple[str, ...] = ("pruner", "profile", "mask", "quant", "exporter", "sparsity")
# What a channel's levels may set: a model file's columns, and the ISA level the engines were capped
# to (the ``isa`` factor: B of the same file at a capped level against native). A channel that
# does not set ``isa`` gets one row per ISA level (ChannelResult.isa).
CHANNEL_COLUMNS: tuple[str, ...] = (*VARIANT_COLUMNS, "isa")
_SETTING = ["scenario", "batch_size", "threads"]
# The four cells of B and their weights: numerator/denominator engine on level a/b.
_SLOTS = {"N_a": 1.0, "D_a": -1.0, "N_b": -1.0, "D_b": 1.0}


@dataclass(frozen=True)
class Channel:
    """Two variants of a model file, selected by column values, whose engine ratios are compared."""

    name: str  # e.g. "profile-vendor"
    level_a: Mapping[str, Any]  # column -> value of variant a, e.g. {"profile": "vendor", ...}
    level_b: Mapping[str, Any]  # the same columns for variant b (the reference)
    description: str = ""  # one line for tables and reports

    def __post_init__(self) -> None:
        _check_channel(self)
        object.__setattr__(self, "level_a", dict(self.level_a))
        object.__setattr__(self, "level_b", dict(self.level_b))


def _check_channel(channel: Channel) -> None:
    if not isinstance(channel.name, str) or not channel.name:
        raise ValueError(f"`name` must be a non-empty string; got {channel.name!r}")
    for label in ("level_a", "level_b"):
        level = getattr(channel, label)
        if not isinstance(level, Mapping) or not level:
            raise ValueError(
                f"`{label}` must be a non-empty mapping column -> value; got {level!r}"
            )
        bad = [k for k in level if k not in CHANNEL_COLUMNS]
        if bad:
            raise ValueError(f"`{label}` keys must be in {list(CHANNEL_COLUMNS)}; got {bad}")
    if set(channel.level_a) != set(channel.level_b):
        raise ValueError(
            f"`level_a` and `level_b` must set the same columns; got {sorted(channel.level_a)} "
            f"and {sorted(channel.level_b)}"
        )
    if dict(channel.level_a) == dict(channel.level_b):
        raise ValueError(f"`level_b` must differ from `level_a`; got {dict(channel.level_b)!r}")


@dataclass(frozen=True)
class ChannelResult:
    """B = (N / D throughput on variant a) / (N / D on variant b) for one channel and setting."""

    channel: str  # Channel.name
    level_a: dict  # the columns and values that select variant a
    level_b: dict  # ... and variant b
    numerator: str  # engine N, e.g. "deepsparse"
    denominator: str  # engine D, e.g. "openvino"
    machine: str  # machine id; each machine is analysed on its own
    model: str  # architecture, or "pooled" for the pool over architectures
    estimate: float  # B = exp(log B); 1 means the channel does not change N / D
    ci_low: float  # lower CI bound of B (t interval on log B); NaN when undefined
    ci_high: float  # upper CI bound of B
    pvalue: float  # two-sided t test of B = 1
    tost: TostResult  # TOST of log B in [log(1 - margin), log(1 + margin)] at 1 - confidence
    equivalent: bool  # tost.equivalent: B within +-margin shown
    gap_pvalue: float  # one-sided p of H0: B >= 1 + margin (equals tost.p_upper)
    gap_ruled_out: bool  # gap_pvalue < 1 - confidence: this channel cannot explain a gap of
    #                      `margin` or more in favour of the numerator engine
    mde: float  # minimum detectable effect, exp(mde_log) - 1 (80% power, two-sided alpha)
    method: str  # "paired", "unpaired", "mixed" (a pool of both) or "" (a cell is missing)
    n_rounds: int  # complete rounds used (paired; summed for the pool)
    n_trials: int  # ok trials used
    cells: tuple[str, ...]  # cell ids used
    held: dict = field(default_factory=dict)  # variant columns not set by the levels, e.g. sparsity
    precision: str = "f32"  # precision of every cell
    scenario: str = ""  # benchmark scenario of every cell
    batch_size: int = 0  # batch size of every cell
    threads: int = 0  # threads of every cell
    isa: str = "native"  # ISA level of every cell ("" when the channel's levels set the ISA)
    margin: float = MARGIN  # equivalence margin: B in [1 - margin, 1 + margin]
    confidence: float = CONFIDENCE  # two-sided CI level; the one-sided tests run at 1 - confidence
    log_estimate: float = math.nan  # log B
    se: float = math.nan  # standard error of log B
    dof: float = math.nan  # t dof: R - 1, Welch-Satterthwaite, or the pool's (see `pool`)
    mde_log: float = math.nan  # (t_{1-alpha/2}(dof) + t_{0.80}(dof)) * se
    autocorr: float = math.nan  # lag-1 autocorrelation of the per-round values (paired rows)
    k: int = 1  # architectures pooled (1 on an architecture row)
    pool: str = ""  # "" (an architecture), "equal", "random", "single" (k = 1) or "none" (k = 0)
    tau2: float = math.nan  # DerSimonian-Laird tau^2 (random-effects pool only)
    q: float = math.nan  # Cochran's Q of the pooled architectures (heterogeneity)
    q_pvalue: float = math.nan  # P(chi2(k - 1) >= Q)
    p_holm: float = math.nan  # Holm-adjusted pvalue within a family (see holm_family)
    note: str = ""  # why something is NaN, what was pooled, A/A files
    n_replicates: int = 1  # replicates the estimate rests on (the fewest of a pool's architectures)
    n_runs: int = 1  # runs the estimate rests on (the fewest of a pool's architectures)
    level: str = "round"  # where the dof come from: "round", "trial", "replicate", "run",
    #                       "machine" (see study.stats.paired.contrast); "mixed" in a pool of several


def _summary(log_b: float, se: float, dof: float, margin: float, confidence: float) -> dict:
    """The B-scale statistics, the tests and the MDE of a t-distributed log B."""
    alpha = 1.0 - confidence
    test = tost(log_b, se, dof, math.log(1.0 - margin), math.log(1.0 + margin), alpha=alpha)
    t = t_interval(log_b, se, dof, confidence)
    mde_log = minimum_detectable_effect(se, dof, alpha=alpha)
    return dict(
        estimate=math.exp(log_b),
        ci_low=math.exp(t["ci_low"]),
        ci_high=math.exp(t["ci_high"]),
        pvalue=t["pvalue"],
        tost=test,
        equivalent=test.equivalent,
        gap_pvalue=test.p_upper,
        gap_ruled_out=bool(test.p_upper < alpha),
        mde=math.expm1(mde_log),
        log_estimate=float(log_b),
        se=float(se),
        dof=float(dof),
        mde_log=mde_log,
    )


def _describe(level: Mapping[str, Any], other: Mapping[str, Any] | None = None) -> str:
    """``"k=v, ..."`` of a level (only the columns where it differs from ``other``, if given)."""
    keys = [k for k in level if other is None or level[k] != other.get(k)]
    return ", ".join(f"{k}={level[k]}" for k in keys)


def _matches(df: pd.DataFrame, level: Mapping[str, Any]) -> pd.Series:
    keep = pd.Series(True, index=df.index)
    for column, value in level.items():
        if isinstance(value, float):
            numbers = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
            keep &= np.isclose(numbers, value, rtol=0.0, atol=1e-9)
        else:
            keep &= df[column] == value
    return keep


def _architecture(
    ok: pd.DataFrame, failed: pd.DataFrame, base: dict, labels: dict
) -> ChannelResult:
    """B of one architecture from its four slots (rows carry the ``_slot`` label)."""
    margin, confidence = base["margin"], base["confidence"]
    missing = [
        failure_note(failed.loc[failed["_slot"] == s], labels[s])
        for s in _SLOTS
        if not (ok["_slot"] == s).any()
    ]
    if missing:
        nan = math.nan
        cells = tuple(sorted(ok["cell"].astype(str).unique()))
        stats = _summary(nan, nan, nan, margin, confidence)
        return ChannelResult(
            **base, **stats, method="", n_rounds=0, n_trials=len(ok), cells=cells,
            note="; ".join(missing), n_replicates=0, n_runs=0, level="",
        )  # fmt: skip
    # failure rows too: a replicate where a cell crashed counts as one the estimate lacks
    c = contrast(pd.concat([ok, failed]), _SLOTS, confidence=confidence, key="_slot")
    notes = [c.note] if c.note else []
    if "onnx_sha256" in ok.columns:
        files = {s: set(ok.loc[ok["_slot"].str.endswith(s), "onnx_sha256"]) for s in ("_a", "_b")}
        if files["_a"] == files["_b"]:
            notes.insert(0, "A/A: variants a and b are the same file(s) (onnx_sha256)")
    return ChannelResult(
        **base,
        **_summary(c.estimate, c.se, c.dof, margin, confidence),
        method=c.method,
        n_rounds=c.n_rounds,
        n_trials=c.n_trials,
        cells=c.cells,
        autocorr=c.autocorr,
        note="; ".join(notes),
        n_replicates=c.n_replicates,
        n_runs=c.n_runs,
        level=c.level,
    )


def _pooled(results: list[ChannelResult], hksj_floor: bool) -> ChannelResult:
    """The pool of one machine and setting's architectures (see :func:`channel_bias`)."""
    first = results[0]
    margin, confidence = first.margin, first.confidence
    finite = [math.isfinite(r.se) and r.se > 0 and math.isfinite(r.dof) for r in results]
    usable = [r for r, ok in zip(results, finite) if ok]
    skipped = [r.model for r, ok in zip(results, finite) if not ok]
    note = f"pooled {len(usable)} of {len(results)} architectures"
    note += f"; skipped {', '.join(skipped)} (see their notes)" if skipped else ""
    k = len(usable)
    reset = dict(model="pooled", autocorr=math.nan, p_holm=math.nan, k=k)
    if k == 1:
        only = usable[0]
        return replace(only, **reset, pool="single", note=f"{note}; k=1: pooled = {only.model}")
    methods = sorted({r.method for r in usable})
    levels = sorted({r.level for r in usable})
    common = dict(
        **reset,
        method=methods[0] if len(methods) == 1 else ("mixed" if methods else ""),
        level=levels[0] if len(levels) == 1 else ("mixed" if levels else first.level),
        n_replicates=min((r.n_replicates for r in usable), default=first.n_replicates),
        n_runs=min((r.n_runs for r in usable), default=first.n_runs),
        n_rounds=sum(r.n_rounds for r in usable),
        n_trials=sum(r.n_trials for r in usable),
        cells=tuple(sorted({c for r in usable for c in r.cells})),
    )
    if k == 0:
        nan = math.nan
        stats = _summary(nan, nan, nan, margin, confidence)
        cells = tuple(sorted({c for r in results for c in r.cells}))
        return replace(first, **{**common, "cells": cells}, **stats, pool="none", note=note)
    pool = pool_estimates(
        [r.log_estimate for r in usable],
        [r.se**2 for r in usable],
        [r.dof for r in usable],
        confidence=confidence,
        hksj_floor=hksj_floor,
    )
    if pool.kind == "equal":
        note += f"; equal-weight pool (k < {RANDOM_EFFECTS_MIN_K}), Satterthwaite dof"
    else:
        note += "; random-effects pool (DerSimonian-Laird + HKSJ, t(k - 1))"
    stats = _summary(pool.estimate, pool.se, pool.dof, margin, confidence)
    extra = dict(pool=pool.kind, tau2=pool.tau2, q=pool.q, q_pvalue=pool.q_pvalue)
    return replace(first, **common, **stats, **extra, note=note)


def apart_note(reason: str, note: str = "") -> str:
    """The note of an architecture's row that is shown apart from the pool: the reason first.

    Example:
        >>> apart_note("a file is below the accuracy gate", "paired")
        'set apart, not in the pooled B: a file is below the accuracy gate; paired'
    """
    return f"set apart, not in the pooled B: {reason}; {note}".rstrip("; ")


def _check_args(channel, numerator, denominator, margin, confidence, precision) -> None:
    if not isinstance(channel, Channel):
        raise ValueError(f"`channel` must be a study.stats.Channel; got {type(channel)!r}")
    for name, value in (("numerator", numerator), ("denominator", denominator)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{name}` must be an engine name; got {value!r}")
    if numerator == denominator:
        raise ValueError(f"`denominator` must differ from `numerator`; got {denominator!r}")
    if not (isinstance(margin, (int, float)) and 0.0 < margin < 1.0):
        raise ValueError(f"`margin` must be in (0, 1); got {margin!r}")
    if check_confidence(confidence) <= 0.5:
        raise ValueError(f"`confidence` must be in (0.5, 1); got {confidence!r}")
    if not isinstance(precision, str) or not precision:
        raise ValueError(f"`precision` must be a precision name such as 'f32'; got {precision!r}")


def channel_bias(
    df: pd.DataFrame,
    channel: Channel,
    numerator: str,
    denominator: str,
    *,
    margin: float = MARGIN,
    confidence: float = CONFIDENCE,
    precision: str = "f32",
    hksj_floor: bool = True,
    per_architecture: Sequence[str] = (),
) -> list[ChannelResult]:
    """B of a channel for one engine pair, per machine and architecture, and pooled.

    Per machine, architecture (``model``), held variant columns (those of
    :data:`VARIANT_COLUMNS` the levels do not set, e.g. ``sparsity``) and setting (``scenario,
    batch_size, threads``), at ``precision``: log B from the four cells (N on a, D on a, N on b,
    D on b) by :func:`study.stats.paired.contrast` with weights +1, -1, -1, +1 (paired: mean of
    d_r, SE = sd(d_r) / sqrt(R), t(R - 1); unpaired: Welch-Satterthwaite). Several cells in one
    slot (files of several seeds) enter as one term (the mean of their logs per round). With
    ``alpha = 1 - confidence``:

    - CI ``exp(log B -/+ t_{1-alpha/2}(dof) SE)`` and ``pvalue`` of B = 1 (two-sided);
    - TOST at the asymmetric log margins ``log(1 - margin)``, ``log(1 + margin)``;
    - ``gap_pvalue``: one-sided test of H0: B >= 1 + margin, ``P(T <= (log B - log(1 +
      margin)) / SE)``; rejecting it says this channel cannot explain a gap of ``margin`` or more
      in favour of N;
    - ``mde = exp((t_{1-alpha/2}(dof) + t_{0.80}(dof)) SE) - 1``
      (:func:`minimum_detectable_effect`).

    Pooled row (``model == "pooled"``) per machine, held values and setting, over the
    architectures with a finite SE: k = 1 copies that architecture; ``k <`` :data:`RANDOM_EFFECTS_MIN_K`
    is the equal-weight pool (:func:`study.stats.meta.equal_weight_effect`: the mean of the
    architectures' log B, ``SE = sqrt(sum v_i) / k``, Welch-Satterthwaite dof over the
    architectures' dof, Cochran's Q reported; inverse-variance weights from SEs resting on a few
    replicates under-cover); larger k the random-effects pool (:func:`study.stats.meta.random_effects`:
    DerSimonian-Laird + HKSJ, t(k - 1)).

    A missing or failed cell gives that architecture a row with NaN statistics and a ``note``
    naming the cell and the failure reasons; the other rows and the pool still compute. The same
    ONNX file in two cells (an A/A control: the same file under two ``pruner`` labels) is fine;
    ``note`` says so.

    Args:
        df: TrialRow rows from any number of machines.
        channel: the two variants.
        numerator: engine N, e.g. ``"deepsparse"``.
        denominator: engine D, e.g. ``"openvino"``.
        margin: equivalence margin in (0, 1) (B within [1 - margin, 1 + margin]).
        confidence: two-sided CI level in (0.5, 1); one-sided tests at ``1 - confidence``.
        precision: precision of every cell used.
        hksj_floor: floor the HKSJ factor at 1 (random-effects pool only).
        per_architecture: held columns each architecture holds at a value of its own (the study's
            ``model_sparsity``: ``("sparsity",)``): they do not split the pool; each
            architecture's row holds its value, the pooled row the distinct values joined.

    Returns:
        Per machine, held values and setting: one :class:`ChannelResult` per architecture, then
        the pooled one; empty when no row matches either level.

    Raises:
        ValueError: on an invalid argument, a missing column or a throughput <= 0, or an
            architecture with two values of a ``per_architecture`` column in one contrast.

    Example:
        >>> ref = {"pruner": "gmp", "profile": "uniform", "mask": "unstructured"}
        >>> ch = Channel("profile-vendor", {**ref, "profile": "vendor"}, ref)
        >>> rows = channel_bias(trials, ch, "deepsparse", "openvino")  # doctest: +SKIP
    """
    check_frame(df)
    _check_args(channel, numerator, denominator, margin, confidence, precision)
    a, b = channel.level_a, channel.level_b
    engine = df["engine"]
    sel = (engine.isin([numerator, denominator]) & (df["precision"] == precision)).to_numpy()
    in_a, in_b = _matches(df, a).to_numpy() & sel, _matches(df, b).to_numpy() & sel
    slot = np.where(engine == numerator, "N", "D").astype(object) + np.where(
        in_a, "_a", "_b"
    ).astype(object)
    subset = df.loc[in_a | in_b].assign(_slot=slot[in_a | in_b])
    ok, failed = ok_trials(subset), failed_trials(subset)
    labels = {
        "N_a": f"{numerator} on a ({_describe(a, b)})",
        "D_a": f"{denominator} on a ({_describe(a, b)})",
        "N_b": f"{numerator} on b ({_describe(b, a)})",
        "D_b": f"{denominator} on b ({_describe(b, a)})",
    }
    held = [c for c in VARIANT_COLUMNS if c not in a]
    own = [c for c in per_architecture if c in held]  # one value per architecture, any across
    shared = [c for c in held if c not in own]
    group = ["machine", *shared, *_SETTING, *(["isa"] if "isa" not in a else [])]
    ok_by, failed_by = group_index(ok, [*group, "model"]), group_index(failed, [*group, "model"])
    models: dict[tuple, set] = {}
    for key in [*ok_by, *failed_by]:
        models.setdefault(key[:-1], set()).add(key[-1])
    out: list[ChannelResult] = []
    for key in unique_keys([ok, failed], group):
        where = dict(zip(group, key))
        per_model = []
        for model in sorted(models[key], key=str):
            rows_ok = ok_by.get((*key, model), ok.iloc[:0])
            rows_failed = failed_by.get((*key, model), failed.iloc[:0])
            values = {c: where[c] for c in shared}
            for c in own:
                found = sorted(set(rows_ok[c]) | set(rows_failed[c]))
                if len(found) > 1:
                    raise ValueError(
                        f"architecture {model!r} has rows at {c} {found} in the contrast "
                        f"{channel.name!r}: a per-architecture column must hold one value per "
                        "architecture (give the levels that column)"
                    )
                values[c] = found[0]
            base = dict(
                channel=channel.name, level_a=dict(a), level_b=dict(b), numerator=numerator,
                denominator=denominator, machine=where["machine"], model=model,
                held={c: values[c] for c in held}, precision=precision,
                scenario=where["scenario"], batch_size=int(where["batch_size"]),
                threads=int(where["threads"]), margin=float(margin), confidence=float(confidence),
                isa=where.get("isa", ""),
            )  # fmt: skip
            per_model.append(_architecture(rows_ok, rows_failed, base, labels))
        out.extend(per_model)
        pooled = _pooled(per_model, hksj_floor)
        if own:
            joined = {c: _joined([r.held[c] for r in per_model]) for c in own}
            pooled = replace(pooled, held={**pooled.held, **joined})
        out.append(pooled)
    return out


def _joined(values: Sequence[Any]) -> Any:
    """One value, or the distinct values as text (``"0.8, 0.9"``) for a pooled row."""
    distinct = sorted(set(values), key=str)
    return distinct[0] if len(distinct) == 1 else ", ".join(str(v) for v in distinct)


def channel_table(results: Sequence[ChannelResult]) -> pd.DataFrame:
    """One tidy row per :class:`ChannelResult`; TOST flattened, levels and held as ``k=v`` text.

    The TOST fields become ``tost_pvalue, tost_p_lower, tost_p_upper, tost_ci90_low,
    tost_ci90_high``, the interval on the B scale (``exp`` of the log-scale ``1 - 2 alpha``
    interval) so that it compares directly with ``1 -/+ margin``. ``level_a``, ``level_b`` and
    ``held`` become strings such as ``"pruner=gmp, profile=vendor"``.

    Args:
        results: output of :func:`channel_bias` (any number of calls concatenated).

    Returns:
        DataFrame with every ChannelResult field except ``tost``, plus the TOST columns.

    Raises:
        ValueError: if an element is not a ChannelResult.

    Example:
        >>> channel_table(channel_bias(trials, ch, "deepsparse", "openvino"))  # doctest: +SKIP
    """
    rows = []
    for i, r in enumerate(results):
        if not isinstance(r, ChannelResult):
            raise ValueError(f"`results[{i}]` must be a ChannelResult; got {type(r)!r}")
        row = asdict(r)
        t = row.pop("tost")
        row.update(level_a=_describe(r.level_a), level_b=_describe(r.level_b))
        row["held"] = _describe(r.held)
        row.update(
            tost_pvalue=t["pvalue"],
            tost_p_lower=t["p_lower"],
            tost_p_upper=t["p_upper"],
            tost_ci90_low=math.exp(t["ci90_low"]) if math.isfinite(t["ci90_low"]) else math.nan,
            tost_ci90_high=math.exp(t["ci90_high"]) if math.isfinite(t["ci90_high"]) else math.nan,
        )
        rows.append(row)
    columns = [f for f in ChannelResult.__dataclass_fields__ if f != "tost"]
    extra = ["tost_pvalue", "tost_p_lower", "tost_p_upper", "tost_ci90_low", "tost_ci90_high"]
    return pd.DataFrame(rows, columns=[*columns, *extra])
