"""The study's statistics of a results folder: the one analysis per run and the tables beside it.

Everything here reads the results folder (bench.jsonl, the manifest, config.yaml, timings.csv,
failures.jsonl) and never measures. :func:`analyse_run` computes the run's analysis once
(:class:`RunAnalysis`): one B per channel and engine pair (:func:`study.stats.channel_bias`), the
A/A control first, with its CI, tests and minimum detectable effect; the home-advantage tests;
which architectures each B shows apart (:func:`apart_for_levels`: a file below the accuracy
gate, files more than one point of sparsity apart); and the per-cell tables (:func:`cell_tables`:
cells, engine comparisons, pruning speed-ups). ``stats.json`` holds it
(:mod:`study.analysis.stats_file`); ``summary.md``, the paper and the results page render it.
Beside it: accuracy, stage times and the failures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.analysis.int8 import QUANTIZERS
from study.config import AnalysisSettings, StudyConfig, load_config
from study.design import REFERENCE, is_reference
from study.records.jsonl import read_jsonl
from study.records.manifest import read_manifest
from study.records.schema import ModelRecord
from study.stats import CONFIDENCE, MARGIN, ChannelResult

__all__ = [
    "ENGINE_PAIRS",
    "SPARSITY_TOLERANCE",
    "CellTables",
    "RunAnalysis",
    "StudyStats",
    "accuracy_table",
    "analyse_run",
    "apart_by_channel",
    "apart_for_levels",
    "cell_tables",
    "channel_results",
    "engine_pairs",
    "home_results",
    "set_apart",
    "compute_stats",
    "identity",
    "one_file",
    "signed_zeros",
    "variant_label",
]

# A B's files may differ by at most this much overall sparsity (one point); more sets it apart.
SPARSITY_TOLERANCE = 0.01

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
        return f"int8 ({QUANTIZERS.get(get('quant'), get('quant'))})"
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


def _matches(record, level: Mapping[str, Any]) -> bool:
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


def apart_for_levels(
    records, levels: Sequence[Mapping[str, Any]], models, gate: float | None
) -> dict[str, str]:
    """Architectures whose files of ``levels`` cannot speak for a contrast between them, and why.

    A contrast of files (a channel's B, a toolchain's B, an interaction or additivity) speaks for a
    toolchain's choice only if every file is a model that learned and all hold the same share of
    zeros. An architecture is set apart when one of its files is below the accuracy gate
    (``ModelRecord.trained`` False), or when their overall sparsities (``measured_sparsity``: zeros
    over all prunable weights) span more than :data:`SPARSITY_TOLERANCE`. A record without a
    measured sparsity is not judged on it; an architecture missing a level's file is not judged
    at all (the B's note says what is missing).

    Example:
        >>> from types import SimpleNamespace as R
        >>> recs = [R(model="m", mask="block4", measured_sparsity=0.931),
        ...         R(model="m", mask="unstructured", measured_sparsity=0.9)]
        >>> apart_for_levels(recs, [{"mask": "block4"}, {"mask": "unstructured"}], ["m"], None)
        {'m': 'its files differ by more than 1 point of overall sparsity (93.1% vs 90.0%)'}
    """
    out: dict[str, str] = {}
    for model in models:
        mine = [r for r in records if r.model == model]
        found = [[r for r in mine if _matches(r, level)] for level in levels]
        if not all(found):
            continue  # files not in the manifest: nothing to judge (the B says what is missing)
        files = list({id(r): r for group in found for r in group}.values())
        reasons = []
        if any(getattr(r, "trained", None) is False for r in files):
            gate_text = f" of {gate:.0%}" if gate is not None else ""
            reasons.append(f"a file is below the accuracy gate{gate_text} (labelled 'not trained')")
        measured = [
            float(s) for r in files if (s := getattr(r, "measured_sparsity", None)) is not None
        ]
        if measured and max(measured) - min(measured) > SPARSITY_TOLERANCE + 1e-12:
            reasons.append(
                f"its files differ by more than {SPARSITY_TOLERANCE * 100:.0f} point of overall "
                f"sparsity ({max(measured):.1%} vs {min(measured):.1%})"
            )
        if reasons:
            out[model] = "; ".join(reasons)
    return out


def set_apart(records, channel, models, gate: float | None) -> dict[str, str]:
    """Architectures whose B a channel shows apart, outside the pooled B, and why.

    A B compares two files; it speaks for a toolchain's choice only if both are models that learned
    and hold the same share of zeros: the rule of :func:`apart_for_levels` on the channel's two
    levels (a file below the accuracy gate; the variant more than 1 point of overall sparsity
    from its reference).

    Example:
        >>> from types import SimpleNamespace as R
        >>> from study.stats import Channel
        >>> ch = Channel("mask:block4", {"mask": "block4"}, {"mask": "unstructured"})
        >>> recs = [R(model="m", mask="block4", trained=False), R(model="m", mask="unstructured")]
        >>> set_apart(recs, ch, ["m"], 0.9)
        {'m': "a file is below the accuracy gate of 90% (labelled 'not trained')"}
    """
    return apart_for_levels(records, [channel.level_a, channel.level_b], models, gate)


def channel_results(df: pd.DataFrame, cfg: StudyConfig, records=()) -> list:
    """Every channel's B on every engine pair of :data:`ENGINE_PAIRS` measured in ``df``.

    Per machine and architecture, and pooled; the pooled rows carry Holm-adjusted p-values
    across all of them (the family the headline claims). Margin and confidence are the
    configuration's declared ones. Architectures :func:`set_apart` for a channel (a file below the
    accuracy gate, or files of different sparsity) keep their own row, with the reason in its
    note, and are left out of that channel's pooled B.
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
            # each architecture at its own sparsity (model_sparsity): one pool over them
            kw = dict(margin=a.margin, confidence=a.confidence, per_architecture=("sparsity",))
            results += stats.channel_bias(df[df["model"].isin(kept)], channel, num, den, **kw)
            for model, why in apart.items():
                own = stats.channel_bias(df[df["model"] == model], channel, num, den, **kw)
                results += [
                    replace(r, note=stats.apart_note(why, r.note)) for r in own if r.model == model
                ]
    pooled = [r for r in results if r.model == "pooled"]
    adjusted = {id(r): p for r, p in zip(pooled, stats.holm_family(pooled))}
    return [adjusted.get(id(r), r) for r in results]


def home_results(df: pd.DataFrame, cfg: StudyConfig, records=()) -> list:
    """The home-advantage test (:func:`study.stats.toolchain.home_advantage`) of the run's
    whole-toolchain variants on every engine pair of :data:`ENGINE_PAIRS` measured in ``df``.

    Each test (a toolchain's B, an interaction, additivity) sets apart, with the reason, the
    architectures whose files it compares break the rule of :func:`apart_for_levels` (a file
    below the accuracy gate, files of different sparsity), as every channel does.
    """
    from study.design import whole_toolchains
    from study.stats.toolchain import home_advantage

    if len(cfg.levels("toolchain")) < 2:
        return []
    engines = set(df.loc[df["status"] == "ok", "engine"])
    pairs = [(n, d) for n, d in ENGINE_PAIRS if n in engines and d in engines]
    gate = cfg.train.accuracy_gate

    def apart(levels):
        return apart_for_levels(records, levels, cfg.models, gate)

    a = cfg.analysis
    return home_advantage(
        df, whole_toolchains(cfg), pairs, apart=apart, margin=a.margin, confidence=a.confidence
    )


def engine_pairs(engines: Sequence[str]) -> list[tuple[str, str]]:
    """The engine pairs of :data:`ENGINE_PAIRS` among ``engines``, then any others (name order).

    Example:
        >>> engine_pairs(["onnxruntime", "openvino", "tvm"])
        [('openvino', 'onnxruntime'), ('onnxruntime', 'tvm'), ('openvino', 'tvm')]
    """
    pairs = [p for p in ENGINE_PAIRS if set(p) <= set(engines)]
    others = [(a, b) for i, a in enumerate(sorted(engines)) for b in sorted(engines)[i + 1 :]]
    return pairs + [p for p in others if p not in pairs and p[::-1] not in pairs]


def _name_order_pairs(engines: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair of ``engines`` with the first name first in name order (summary.md's table)."""
    names = sorted(engines)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


@dataclass(frozen=True)
class CellTables:
    """The per-cell tables of one run, computed once (:func:`cell_tables`) with its analysis.

    ``summary.md``, ``stats.json``, the paper and the results page read them; none calls
    ``study.stats.cell_table``, ``engine_comparison`` or ``pruning_speedup`` itself.
    """

    cells: pd.DataFrame  # study.stats.cell_table of every trial row
    # (a, b) -> study.stats.engine_comparison(a / b) (fp32, every row): the pairs of
    # engine_pairs (the paper's) and of every pair in name order (summary.md's), each once
    comparisons: dict[tuple[str, str], pd.DataFrame]
    speedup: pd.DataFrame  # study.stats.pruning_speedup of every trial row

    def engine_table(self) -> pd.DataFrame | None:
        """summary.md's engine comparisons: every pair in name order, stacked (None: < 2 engines)."""
        engines = {e for pair in self.comparisons for e in pair}
        frames = [self.comparisons[p] for p in _name_order_pairs(engines)]
        return pd.concat(frames, ignore_index=True) if frames else None


def cell_tables(df: pd.DataFrame) -> CellTables:
    """The per-cell tables of the trial rows ``df``: cells, engine comparisons, pruning speed-ups."""
    from study import stats

    engines = sorted(df.loc[df["status"] == "ok", "engine"].unique())
    pairs = dict.fromkeys(_name_order_pairs(engines) + engine_pairs(engines))
    return CellTables(
        cells=stats.cell_table(df),
        comparisons={
            (a, b): stats.engine_comparison(df, a, b).assign(engine_a=a, engine_b=b)
            for a, b in pairs
        },
        speedup=stats.pruning_speedup(df),
    )


@dataclass(frozen=True)
class RunAnalysis:
    """The analysis of one run, computed once (:func:`analyse_run`) and written to stats.json.

    ``summary.md``, the paper and the results page render it; none computes a B of its own.
    """

    channels: tuple[ChannelResult, ...]  # channel_results: per architecture and pooled (Holm'd)
    home: tuple[ChannelResult, ...]  # home_results: the whole-toolchain tests
    identity: dict[str, bool]  # architecture -> SparseML-pruned reference holds gmp's numbers
    one_file: dict[str, bool]  # architecture -> gmp's file measured in the SparseML cells too
    signed_zeros: dict[str, int]  # architecture -> zeros of opposite sign in SparseML's file
    tables: CellTables  # cell_tables: per cell, engine vs engine, pruned vs dense
    margin: float = MARGIN  # the declared equivalence margin (config.yaml `analysis`)
    confidence: float = CONFIDENCE  # the declared CI level
    accuracy_gate: float | None = None  # config.yaml `train.accuracy_gate`
    # channel -> architecture -> why its B is shown apart, outside the pooled B (set_apart)
    apart: dict[str, dict[str, str]] = field(default_factory=dict)


def apart_by_channel(cfg: StudyConfig, records) -> dict[str, dict[str, str]]:
    """:func:`set_apart` of every channel of the design that sets an architecture apart."""
    gate = cfg.train.accuracy_gate
    found = {ch.name: set_apart(records, ch, models, gate) for ch, models in _channels(cfg)}
    return {name: apart for name, apart in found.items() if apart}


def analyse_run(df: pd.DataFrame, cfg: StudyConfig | None, records=()) -> RunAnalysis:
    """The one analysis of a run's trial rows ``df``, configuration and manifest ``records``.

    Without a configuration there is no design to read channels from: channels and the
    home-advantage test are empty and the declared parameters are the defaults.
    """
    records = list(records)
    settings = cfg.analysis if cfg else AnalysisSettings()
    return RunAnalysis(
        channels=tuple(channel_results(df, cfg, records)) if cfg else (),
        home=tuple(home_results(df, cfg, records)) if cfg else (),
        identity=identity(records),
        one_file=one_file(records),
        signed_zeros=signed_zeros(records),
        tables=cell_tables(df),
        margin=settings.margin,
        confidence=settings.confidence,
        accuracy_gate=cfg.train.accuracy_gate if cfg else None,
        apart=apart_by_channel(cfg, records) if cfg else {},
    )


class StudyStats:
    """The statistics of one results folder (computed once, read by the summary and stats.json)."""

    def __init__(self, out: Path) -> None:
        from study.records.results import load_results

        self.out = out
        self.cfg = _config(out)
        self.df = load_results(out / "bench.jsonl")
        self.records = read_manifest(out)
        self.ok = self.df[self.df["status"] == "ok"]
        self.engines = sorted(self.ok["engine"].unique())
        self.analysis = analyse_run(self.df, self.cfg, self.records)
        self.cells = self.analysis.tables.cells
        self.engine_table = self.analysis.tables.engine_table()
        self.speedup = self.analysis.tables.speedup
        self.identity = self.analysis.identity
        self.one_file = self.analysis.one_file
        self.signed_zeros = self.analysis.signed_zeros
        self.margin = self.analysis.margin
        self.confidence = self.analysis.confidence
        self.channels = list(self.analysis.channels)
        self.home = list(self.analysis.home)
        self.apart = self.analysis.apart

    def channel_table(self) -> pd.DataFrame:
        from study import stats

        return stats.channel_table(self.channels) if self.channels else pd.DataFrame()


def compute_stats(out: Path) -> StudyStats:
    """The statistics of the results folder ``out``."""
    return StudyStats(out)


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
