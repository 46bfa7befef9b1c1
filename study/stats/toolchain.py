"""The home-advantage test: does a vendor's whole toolchain move its own engine's ratio?

A :class:`WholeToolchain` names a vendor's whole-toolchain variant, its reference, and the
single-factor channels (variant, reference) its choices were also measured as. For engines N and
D, with ``r(v) = log(N / D throughput on variant v)``:

- the toolchain's B: ``log B_T = r(T) - r(ref_T)`` (as :func:`study.stats.channel_bias`);
- the interaction of two toolchains: ``log B_1 - log B_2 = r(T_1) - r(ref_1) - r(T_2) +
  r(ref_2)``; with a common reference it is ``r(T_1) - r(T_2)``: B(Neural Magic) / B(Intel) = 1
  says the two vendors' toolchains move N / D alike; > 1 that Neural Magic's favours N more;
- additivity: ``log B_T - sum_i log B_i`` over its single factors i: 1 when the factors' effects
  multiply up to the whole (no interaction among them).

Each is one weighted contrast of log throughputs (:func:`weighted_bias`: ``sum_v w_v r(v)``),
estimated by :func:`study.stats.paired.contrast` round by round where every cell shares a block
(the study measures an architecture's cells in one block, so common drift cancels), else
unpaired; replicates are combined as for every channel. Results are
:class:`~study.stats.channels.ChannelResult` rows (CI, TOST at the margin, one-sided test, MDE),
per architecture and pooled over architectures (equal weights for k < 5, else DerSimonian-Laird
+ HKSJ), so they print with the channel table's tools.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from study.stats._frame import (
    check_frame,
    failed_trials,
    failure_note,
    group_index,
    ok_trials,
    unique_keys,
)
from study.stats.channels import (
    CHANNEL_COLUMNS,
    Channel,
    ChannelResult,
    _check_args,
    _matches,
    _pooled,
    _summary,
    apart_note,
)
from study.stats.defaults import CONFIDENCE, MARGIN
from study.stats.paired import contrast

__all__ = ["WholeToolchain", "additivity", "home_advantage", "interaction", "weighted_bias"]

_GROUP = ["machine", "scenario", "batch_size", "threads", "isa"]
_ANY = Channel("any", {"pruner": "a"}, {"pruner": "b"})  # _check_args checks a channel too


@dataclass(frozen=True)
class WholeToolchain:
    """One vendor's whole-toolchain variant, its reference and its single-factor channels."""

    name: str  # e.g. "neuralmagic"
    variant: Mapping[str, Any]  # columns of the whole-toolchain variant
    reference: Mapping[str, Any]  # columns of the variant it is compared with (same keys)
    # (variant, reference) of each single-factor channel whose B's product it is tested against
    singles: tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...] = ()
    single_names: tuple[str, ...] = ()  # their channel names, for the report
    label: str = ""  # e.g. "Neural Magic"
    precision: str = "f32"  # the benchmark precision of every cell (the engines' setting)
    # the architectures the run makes it for (int8: the int8 arm's); () = whichever have rows.
    # A test involving it is run on these only: another architecture's single-factor cells alone
    # would give a "not estimable" row for a variant that was never in its design.
    models: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # anything the caller wants carried along


def _key(level: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, v) for k, v in level.items()))


def _check_terms(terms: Sequence[tuple[Mapping[str, Any], float]]) -> list[tuple[dict, float]]:
    """Merge equal levels (weights summed, zeros dropped); check keys and weights."""
    merged: dict[tuple, float] = {}
    for i, term in enumerate(terms):
        if not (isinstance(term, tuple) and len(term) == 2 and isinstance(term[0], Mapping)):
            raise ValueError(f"`terms[{i}]` must be a (level mapping, weight) pair; got {term!r}")
        level, weight = term
        bad = [k for k in level if k not in CHANNEL_COLUMNS]
        if bad or not level:
            raise ValueError(
                f"`terms[{i}]` level keys must be a non-empty subset of {list(CHANNEL_COLUMNS)}; "
                f"got {sorted(level)}"
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"`terms[{i}]` weight must be a number; got {weight!r}")
        if not math.isfinite(weight):
            raise ValueError(f"`terms[{i}]` weight must be finite; got {weight!r}")
        merged[_key(level)] = merged.get(_key(level), 0.0) + float(weight)
    out = [(dict(k), w) for k, w in merged.items() if w != 0.0]
    if not out:
        raise ValueError("`terms` must keep at least one level with a non-zero weight")
    return out


def weighted_bias(
    df: pd.DataFrame,
    name: str,
    terms: Sequence[tuple[Mapping[str, Any], float]],
    numerator: str,
    denominator: str,
    *,
    level_a: Mapping[str, Any] | None = None,
    level_b: Mapping[str, Any] | None = None,
    margin: float = MARGIN,
    confidence: float = CONFIDENCE,
    precision: str = "f32",
    hksj_floor: bool = True,
    apart: Mapping[str, str] | None = None,
) -> list[ChannelResult]:
    """``exp(sum_v w_v log(N / D on v))`` per machine, setting, ISA level and architecture, pooled.

    Args:
        df: TrialRow rows.
        name: the result rows' ``channel``.
        terms: ``(level, w)`` pairs; a level selects a variant by column values (each row may
            match one level only); equal levels are merged and their weights summed.
        numerator, denominator: engines N and D.
        level_a, level_b: what the rows report as levels (default: the first positive and the
            first negative term's levels).
        margin, confidence, precision, hksj_floor: as in :func:`study.stats.channel_bias`.
        apart: architecture -> why its files cannot speak for the contrast (a file below the
            accuracy gate, files of different sparsity): such an architecture keeps its own row,
            the reason first in its note (:func:`~study.stats.channels.apart_note`), and is left
            out of the pool.

    Returns:
        One :class:`ChannelResult` per architecture, then the pooled one, per machine, setting
        and ISA level; a missing cell gives NaN statistics and a note naming it.

    Raises:
        ValueError: on an invalid argument, or a row that matches two levels.

    Example:
        >>> nm = {"profile": "vendor", "mask": "block4"}
        >>> intel = {"profile": "global", "mask": "unstructured"}
        >>> weighted_bias(trials, "nm/intel", [(nm, 1), (intel, -1)], "deepsparse", "openvino")  # doctest: +SKIP
    """
    check_frame(df)
    terms = _check_terms(terms)
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string; got {name!r}")
    a = dict(level_a) if level_a else next((lv for lv, w in terms if w > 0), terms[0][0])
    b = dict(level_b) if level_b else next((lv for lv, w in terms if w < 0), {"": ""})
    _check_args(_ANY, numerator, denominator, margin, confidence, precision)
    engine = df["engine"]
    sel = (engine.isin([numerator, denominator]) & (df["precision"] == precision)).to_numpy()
    slot = np.full(len(df), "", dtype=object)
    weights: dict[str, float] = {}
    labels: dict[str, str] = {}
    is_num = (engine == numerator).to_numpy()
    for i, (level, w) in enumerate(terms):
        hit = _matches(df, level).to_numpy() & sel
        if (hit & (slot != "")).any():
            raise ValueError(f"`terms` levels overlap: rows match both {level!r} and another")
        slot[hit] = np.where(is_num[hit], f"N{i}", f"D{i}")
        weights.update({f"N{i}": w, f"D{i}": -w})
        text = ", ".join(f"{k}={v}" for k, v in level.items())
        labels.update({f"N{i}": f"{numerator} on {text}", f"D{i}": f"{denominator} on {text}"})
    subset = df.loc[slot != ""].assign(_slot=slot[slot != ""])
    if "isa" not in subset.columns:
        subset = subset.assign(isa="native")
    ok, failed = ok_trials(subset), failed_trials(subset)
    ok_by, failed_by = group_index(ok, [*_GROUP, "model"]), group_index(failed, [*_GROUP, "model"])
    models: dict[tuple, set] = {}
    for key in [*ok_by, *failed_by]:
        models.setdefault(key[:-1], set()).add(key[-1])
    out: list[ChannelResult] = []
    for key in unique_keys([ok, failed], _GROUP):
        where = dict(zip(_GROUP, key))
        per_model = []
        for model in sorted(models[key], key=str):
            rows_ok = ok_by.get((*key, model), ok.iloc[:0])
            rows_failed = failed_by.get((*key, model), failed.iloc[:0])
            base = dict(
                channel=name, level_a=a, level_b=b, numerator=numerator, denominator=denominator,
                machine=where["machine"], model=model, held={}, precision=precision,
                scenario=where["scenario"], batch_size=int(where["batch_size"]),
                threads=int(where["threads"]), margin=float(margin), confidence=float(confidence),
                isa=where["isa"],
            )  # fmt: skip
            per_model.append(_one(rows_ok, rows_failed, weights, labels, base))
        out += _apart_and_pooled(per_model, dict(apart or {}), hksj_floor)
    return out


def _apart_and_pooled(
    per_model: list[ChannelResult], apart: dict[str, str], hksj_floor: bool
) -> list[ChannelResult]:
    """The architecture rows (those set apart noted) and the pool of the others."""
    kept = [r for r in per_model if r.model not in apart]
    shown = [
        r if r.model not in apart else replace(r, note=apart_note(apart[r.model], r.note))
        for r in per_model
    ]
    if not kept:  # nothing left to pool: a row that says so
        nan = math.nan
        none = replace(
            per_model[0], model="pooled", k=0, pool="none", p_holm=nan, autocorr=nan,
            **_summary(nan, nan, nan, per_model[0].margin, per_model[0].confidence),
            note="pooled 0 architectures: every one is set apart (see their notes)",
        )  # fmt: skip
        return [*shown, none]
    pooled = _pooled(kept, hksj_floor)
    named = sorted(r.model for r in per_model if r.model in apart)
    if named:
        pooled = replace(pooled, note=f"{pooled.note}; set apart: {', '.join(named)}")
    return [*shown, pooled]


def _one(ok, failed, weights, labels, base) -> ChannelResult:
    margin, confidence = base["margin"], base["confidence"]
    missing = [
        failure_note(failed.loc[failed["_slot"] == s], labels[s])
        for s in weights
        if not (ok["_slot"] == s).any()
    ]
    if missing:
        stats = _summary(math.nan, math.nan, math.nan, margin, confidence)
        return ChannelResult(
            **base, **stats, method="", n_rounds=0, n_trials=len(ok),
            cells=tuple(sorted(ok["cell"].astype(str).unique())), note="; ".join(missing),
            n_replicates=0, n_runs=0, level="",
        )  # fmt: skip
    c = contrast(pd.concat([ok, failed]), weights, confidence=confidence, key="_slot")
    return ChannelResult(
        **base, **_summary(c.estimate, c.se, c.dof, margin, confidence), method=c.method,
        n_rounds=c.n_rounds, n_trials=c.n_trials, cells=c.cells, autocorr=c.autocorr,
        note=c.note, n_replicates=c.n_replicates, n_runs=c.n_runs, level=c.level,
    )  # fmt: skip


def interaction(
    df: pd.DataFrame, first: WholeToolchain, second: WholeToolchain, numerator: str,
    denominator: str, **kwargs: Any,
) -> list[ChannelResult]:  # fmt: skip
    """B(first) / B(second): ``r(T_1) - r(ref_1) - r(T_2) + r(ref_2)`` (see the module doc).

    Rows are named ``interaction:<first>/<second>``; ``level_a`` is the first's variant,
    ``level_b`` the second's. Keyword arguments go to :func:`weighted_bias`.
    """
    terms = [(first.variant, 1.0), (first.reference, -1.0)]
    terms += [(second.variant, -1.0), (second.reference, 1.0)]
    name = f"interaction:{first.name}/{second.name}"
    return weighted_bias(
        df, name, terms, numerator, denominator, level_a=first.variant,
        level_b=second.variant, precision=first.precision, **kwargs,
    )  # fmt: skip


def additivity(
    df: pd.DataFrame, whole: WholeToolchain, numerator: str, denominator: str, **kwargs: Any
) -> list[ChannelResult]:
    """B(whole) / prod_i B(single_i): do the toolchain's single factors multiply up to it?

    Rows are named ``additivity:<name>``; empty when ``whole.singles`` is empty. The single
    factors' cells are measured at ``whole.precision`` too (an int8 chain whose factors were
    measured on fp32 files is compared within the one ``precision`` setting of the engines).
    """
    if not whole.singles:
        return []
    terms = [(whole.variant, 1.0), (whole.reference, -1.0)]
    for variant, ref in whole.singles:
        terms += [(variant, -1.0), (ref, 1.0)]
    product = " x ".join(whole.single_names) or f"{len(whole.singles)} single factors"
    return weighted_bias(
        df, f"additivity:{whole.name}", terms, numerator, denominator,
        level_a=whole.variant, level_b={"product of": product}, precision=whole.precision,
        **kwargs,
    )  # fmt: skip


def home_advantage(
    df: pd.DataFrame,
    toolchains: Sequence[WholeToolchain],
    pairs: Sequence[tuple[str, str]],
    *,
    apart: Callable[[Sequence[Mapping[str, Any]]], Mapping[str, str]] | None = None,
    **kwargs: Any,
) -> list[ChannelResult]:
    """Every toolchain's B, their pairwise interactions and each one's additivity, per engine pair.

    Args:
        df: TrialRow rows.
        toolchains: the whole toolchains (of one precision each); interactions are formed
            between those of equal precision, in the order given.
        pairs: engine pairs (N, D), e.g. ``[("deepsparse", "openvino")]``.
        apart: given the variant levels one test compares (a toolchain's variant and reference;
            for an interaction both toolchains'; for additivity also its single factors'),
            the architectures to set apart and why (see :func:`weighted_bias`); None: none.
        **kwargs: ``margin``, ``confidence``, ``hksj_floor`` (see :func:`weighted_bias`).

    Returns:
        ``toolchain:<name>``, ``interaction:<a>/<b>`` and ``additivity:<name>`` rows.
    """

    def judged(*wholes: WholeToolchain, singles: bool = False) -> dict[str, Any]:
        if apart is None:
            return kwargs
        levels = [lv for t in wholes for lv in (t.variant, t.reference)]
        if singles:
            levels += [lv for t in wholes for pair in t.singles for lv in pair]
        return {**kwargs, "apart": apart(levels)}

    def rows(*wholes: WholeToolchain) -> pd.DataFrame:
        """The rows of the architectures every one of ``wholes`` is made for."""
        keep = None
        for t in wholes:
            if t.models:
                keep = set(t.models) if keep is None else keep & set(t.models)
        return df if keep is None else df.loc[df["model"].isin(sorted(keep))]

    out: list[ChannelResult] = []
    for num, den in pairs:
        for t in toolchains:
            out += weighted_bias(
                rows(t), f"toolchain:{t.name}", [(t.variant, 1.0), (t.reference, -1.0)], num,
                den, level_a=t.variant, level_b=t.reference, precision=t.precision, **judged(t),
            )  # fmt: skip
        for i, t1 in enumerate(toolchains):
            for t2 in toolchains[i + 1 :]:
                if t1.precision == t2.precision and _same_quant(t1, t2):
                    out += interaction(rows(t1, t2), t1, t2, num, den, **judged(t1, t2))
        for t in toolchains:
            out += additivity(rows(t), t, num, den, **judged(t, singles=True))
    return out


def _same_quant(t1: WholeToolchain, t2: WholeToolchain) -> bool:
    """Both fp32 or both int8 (their references' ``quant`` both "none" or both not)."""
    return (t1.reference.get("quant", "none") == "none") == (
        t2.reference.get("quant", "none") == "none"
    )
