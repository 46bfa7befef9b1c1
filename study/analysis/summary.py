"""The study's statistics and its summary: ``stats.json`` and ``summary.md`` of a results folder.

Everything here reads the results folder (bench.jsonl, the manifest, config.yaml, timings.csv,
failures.jsonl) and never measures. The central table is one B per channel and engine pair
(:func:`study.stats.channel_bias`), the A/A control first, with its CI, tests and minimum
detectable effect; then accuracy, mask structure, what the engines did with the int8 files,
stage times, the per-cell tables and the failures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.config import StudyConfig, load_config
from study.design import REFERENCE, is_reference
from study.records.jsonl import read_jsonl
from study.records.manifest import read_manifest
from study.records.schema import ModelRecord

__all__ = [
    "ENGINE_PAIRS",
    "StudyStats",
    "accuracy_table",
    "channel_results",
    "set_apart",
    "compute_stats",
    "identity",
    "one_file",
    "signed_zeros",
    "variant_label",
    "stats_json",
]

# The engine pairs every B is computed for, the original study's pair first.
ENGINE_PAIRS = (
    ("deepsparse", "openvino"),
    ("deepsparse", "onnxruntime"),
    ("openvino", "onnxruntime"),
)


def variant_label(row: Any) -> str:
    """A short name for a variant (a ModelRecord, a row or a mapping with the variant columns).

    Example:
        >>> variant_label({"pruner": "gmp", "profile": "vendor", "mask": "unstructured",
        ...                "quant": "none", "exporter": "torch", "sparsity": 0.9})
        'vendor profile'
    """
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    pruner, exporter = get("pruner"), get("exporter")
    if pruner == "none":
        return "dense"
    if pruner == "oneshot":
        return f"one-shot {float(get('sparsity')):.2f}"
    from study.design import toolchain_of
    from study.toolchains import VENDOR

    level = toolchain_of(row)
    if level:
        return f"{VENDOR[level]} toolchain" + ("" if get("quant") == "none" else ", int8")
    if get("quant", "none") != "none":
        return {"torch": "int8 (torch.ao)", "sparseml": "int8 (SparseML)"}.get(
            get("quant"), f"int8 ({get('quant')})"
        )
    parts = []
    if pruner != "gmp":
        parts.append(f"{pruner}-pruned")
    if get("profile") not in (None, REFERENCE["profile"]):
        parts.append(f"{get('profile')} profile")
    if get("mask") not in (None, "unstructured"):
        parts.append(f"{get('mask')} mask")
    if exporter != "torch":
        parts.append(f"{exporter} export")
    return ", ".join(parts) or "reference"


def _twins(records: list[ModelRecord]) -> list[ModelRecord]:
    """The SparseML-pruned references (the pruner factor's variant)."""
    return [
        r
        for r in records
        if r.pruner == "sparseml" and is_reference({**r.to_dict(), "pruner": "gmp"})
    ]


def identity(records: list[ModelRecord]) -> dict[str, bool]:
    """Per architecture: does the SparseML-pruned reference hold the same numbers as gmp's?

    True both when it is the same file (measured once in two cells: ``extra["identical_to"]``)
    and when only the sign bits of some zeros differ (both files measured:
    ``extra["numerically_identical_to"]``); see :func:`one_file` and :func:`signed_zeros`.
    """
    return {
        r.model: "identical_to" in r.extra or "numerically_identical_to" in r.extra
        for r in _twins(records)
    }


def one_file(records: list[ModelRecord]) -> dict[str, bool]:
    """Per architecture: was gmp's file measured in the SparseML cells too (bytes equal)?"""
    return {r.model: "identical_to" in r.extra for r in _twins(records)}


def signed_zeros(records: list[ModelRecord]) -> dict[str, int]:
    """Per architecture: zeros of opposite sign bit in SparseML's file vs gmp's (0: none)."""
    return {r.model: int(r.extra.get("signed_zero_differences") or 0) for r in _twins(records)}


def _config(out: Path) -> StudyConfig | None:
    path = out / "config.yaml"
    return load_config(path, check_paths=False) if path.is_file() else None


def _channels(cfg: StudyConfig) -> list[tuple[Any, list[str]]]:
    """Each channel of the design with the architectures it is measured on."""
    from study.design import channels

    seen: dict[str, tuple[Any, list[str]]] = {}
    for model in cfg.models:
        for ch in channels(cfg, model):
            seen.setdefault(ch.name, (ch, []))[1].append(model)
    return list(seen.values())


def _matches(record, level: dict) -> bool:
    for key, value in level.items():
        if not hasattr(record, key):
            continue  # engine-side keys (precision, isa, ...) are not the file's
        have = getattr(record, key)
        if key == "sparsity":
            if abs(float(have) - float(value)) > 1e-6:
                return False
        elif have != value:
            return False
    return True


def set_apart(records, channel, models, gate: float | None) -> dict[str, str]:
    """Architectures whose B a channel shows apart, outside the pooled B, and why.

    A B compares two files; it speaks for a toolchain's choice only if both are models that learned.
    An architecture is set apart when the variant or the reference file is below the accuracy gate
    (``ModelRecord.trained`` False). (A sparsity mismatch between the two files is not yet a reason:
    the manifest's ``measured_sparsity`` shows it.)

    Example:
        >>> from types import SimpleNamespace as R
        >>> from study.stats import Channel
        >>> ch = Channel("mask:block4", {"mask": "block4"}, {"mask": "unstructured"})
        >>> recs = [R(model="m", mask="block4", trained=False), R(model="m", mask="unstructured")]
        >>> set_apart(recs, ch, ["m"], 0.9)
        {'m': "a file is below the accuracy gate of 90% (labelled 'not trained')"}
    """
    out: dict[str, str] = {}
    for model in models:
        mine = [r for r in records if r.model == model]
        a = [r for r in mine if _matches(r, channel.level_a)]
        b = [r for r in mine if _matches(r, channel.level_b)]
        if not a or not b:
            continue  # files not in the manifest: nothing to judge (the B says what is missing)
        below = [r for r in (*a, *b) if getattr(r, "trained", None) is False]
        if below:
            gate_text = f" of {gate:.0%}" if gate is not None else ""
            out[model] = f"a file is below the accuracy gate{gate_text} (labelled 'not trained')"
            continue
    return out


def channel_results(df: pd.DataFrame, cfg: StudyConfig, records=()) -> list:
    """Every channel's B on every engine pair of :data:`ENGINE_PAIRS` measured in ``df``.

    Per machine and architecture, and pooled; the pooled rows carry Holm-adjusted p-values
    across all of them (the family the headline claims). Margin and confidence are the
    configuration's declared ones. Architectures :func:`set_apart` for a channel (a file below the
    accuracy gate) keep their own row, with the reason in its note, and are left out of that
    channel's pooled B.
    """
    from dataclasses import replace

    from study import stats

    engines = set(df.loc[df["status"] == "ok", "engine"])
    levels = set(df["isa"]) if "isa" in df else {"native"}
    a = cfg.analysis
    gate = cfg.train.accuracy_gate
    results = []
    for channel, models in _channels(cfg):
        if channel.level_a.get("isa", "native") not in levels:
            continue  # an ISA level skipped on this CPU (skipped.jsonl says why)
        apart = set_apart(records, channel, models, gate)
        kept = [m for m in models if m not in apart]
        for num, den in ENGINE_PAIRS:
            if num not in engines or den not in engines:
                continue
            kw = dict(margin=a.margin, confidence=a.confidence)
            results += stats.channel_bias(df[df["model"].isin(kept)], channel, num, den, **kw)
            for model, why in apart.items():
                own = stats.channel_bias(df[df["model"] == model], channel, num, den, **kw)
                results += [
                    replace(r, note=f"set apart, not in the pooled B: {why}; {r.note}".rstrip("; "))
                    for r in own
                    if r.model == model
                ]
    pooled = [r for r in results if r.model == "pooled"]
    adjusted = {id(r): p for r, p in zip(pooled, stats.holm_family(pooled))}
    return [adjusted.get(id(r), r) for r in results]


def home_results(df: pd.DataFrame, cfg: StudyConfig) -> list:
    """The home-advantage test (:func:`study.stats.toolchain.home_advantage`) of the run's
    whole-toolchain variants on every engine pair of :data:`ENGINE_PAIRS` measured in ``df``."""
    from study.design import whole_toolchains
    from study.stats.toolchain import home_advantage

    if len(cfg.levels("toolchain")) < 2:
        return []
    engines = set(df.loc[df["status"] == "ok", "engine"])
    pairs = [(n, d) for n, d in ENGINE_PAIRS if n in engines and d in engines]
    a = cfg.analysis
    return home_advantage(
        df, whole_toolchains(cfg), pairs, margin=a.margin, confidence=a.confidence
    )


class StudyStats:
    """The statistics of one results folder (computed once, read by the summary and stats.json)."""

    def __init__(self, out: Path) -> None:
        from study import stats
        from study.records.results import load_results

        self.out = out
        self.cfg = _config(out)
        self.df = load_results(out / "bench.jsonl")
        self.records = read_manifest(out)
        self.ok = self.df[self.df["status"] == "ok"]
        self.engines = sorted(self.ok["engine"].unique())
        self.cells = stats.cell_table(self.df)
        pairs = [(a, b) for i, a in enumerate(self.engines) for b in self.engines[i + 1 :]]
        comparisons = [
            stats.engine_comparison(self.df, a, b).assign(engine_a=a, engine_b=b) for a, b in pairs
        ]
        self.engine_table = pd.concat(comparisons, ignore_index=True) if comparisons else None
        self.speedup = stats.pruning_speedup(self.df)
        self.identity = identity(self.records)
        self.one_file = one_file(self.records)
        self.signed_zeros = signed_zeros(self.records)
        self.margin = self.cfg.analysis.margin if self.cfg else 0.10
        self.confidence = self.cfg.analysis.confidence if self.cfg else 0.95
        self.channels = channel_results(self.df, self.cfg, self.records) if self.cfg else []
        self.home = home_results(self.df, self.cfg) if self.cfg else []

    def channel_table(self) -> pd.DataFrame:
        from study import stats

        return stats.channel_table(self.channels) if self.channels else pd.DataFrame()


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def compute_stats(out: Path) -> StudyStats:
    """The statistics of the results folder ``out``."""
    return StudyStats(out)


def stats_json(s: StudyStats) -> dict[str, Any]:
    """What ``stats.json`` holds for the statistics ``s`` (JSON-ready: NaN as None)."""
    from study.stats import channel_table as stats_table

    result = {
        "identical_models": s.identity,
        "one_file": s.one_file,
        "signed_zero_differences": s.signed_zeros,
        "channels": s.channel_table().to_dict(orient="records"),
        "home_advantage": (stats_table(s.home).to_dict(orient="records") if s.home else []),
        "cells": s.cells.to_dict(orient="records"),
        "engine_comparison": [] if s.engine_table is None else s.engine_table.to_dict("records"),
        "pruning_speedup": s.speedup.to_dict(orient="records"),
        "accuracy": accuracy_table(s.records, s.cfg).to_dict(orient="records"),
        "margin": s.margin,
        "confidence": s.confidence,
    }
    return _jsonable(result)


def accuracy_table(records: list[ModelRecord], cfg: StudyConfig | None) -> pd.DataFrame:
    """One row per variant: top-1, the drop from its dense model, the gate's label."""
    rows = []
    dense = {r.model: r.accuracy for r in records if r.pruner == "none"}
    gate = cfg.train.accuracy_gate if cfg else None
    for r in records:
        base = dense.get(r.model)
        drop = np.nan if r.accuracy is None or base is None else 100.0 * (base - r.accuracy)
        rows.append(
            {
                "model": r.model,
                "variant": variant_label(r),
                "exporter": r.exporter,
                "measured_sparsity": r.measured_sparsity,
                "accuracy": np.nan if r.accuracy is None else r.accuracy,
                "drop_pp": drop,
                "trained": "not trained" if r.trained is False else ("yes" if r.trained else "-"),
                "gate": gate,
                "dataset": r.accuracy_dataset,
            }
        )
    return pd.DataFrame(rows)


def timings(out: Path) -> pd.DataFrame:
    """Seconds per stage kind and architecture from ``timings.csv`` (reused stages count 0)."""
    path = out / "timings.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["model", "stage", "seconds", "reused"])
    return pd.read_csv(path)


def failures(out: Path) -> list[dict[str, Any]]:
    return read_jsonl(out / "failures.jsonl", missing_ok=True)
