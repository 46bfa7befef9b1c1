"""The original study's questions: which engine was faster, did pruning pay, OpenVINO's precision."""

from __future__ import annotations

import math

import numpy as np

from paper.analysis import MAIN_PAIR, Analysis, first_speedup_sparsity
from paper.report._text import md_rows, ratio_ci, verdict

__all__ = ["engines_section", "precision_section", "speedup_section"]

_SORT = ["machine", "model", "pruner", "profile", "mask", "quant", "exporter", "sparsity"]


def _in_design_order(analysis: Analysis, frame, first: list[str], then: list[str] = ()):
    """``frame`` sorted by ``first``, then the variants in the study's order, then ``then``."""
    ranks = [analysis.rank(r) for r in frame.to_dict("records")]
    keys = [*first, "_rank", *(c for c in _SORT if c not in first), *then]
    return frame.assign(_rank=ranks).sort_values(keys, kind="stable").drop(columns="_rank")


def engines_section(analysis: Analysis) -> list[str]:
    """1. Which engine was faster (fp32), and by how much; the original study's pair per file."""
    lines = ["### 1. Which engine was faster, and by how much?", ""]
    if not analysis.comparisons:
        return lines + [f"Cannot answer: {analysis.reasons.get('engines', 'no comparisons')}.", ""]
    f32 = analysis.cells[analysis.cells["precision"] == "f32"]
    group = [*_SORT, "scenario", "batch_size", "threads", "isa"]
    winners = f32.loc[f32.groupby(group)["throughput"].idxmax(), "engine"]
    wins = ", ".join(f"`{e}` in {c}" for e, c in winners.value_counts().sort_index().items())
    lines += [
        f"Fastest engine at fp32, per model file and setting ({len(winners)} in all): {wins}.",
        "",
    ]
    rows = []
    for (a, b), frame in analysis.comparisons.items():
        above, below = int((frame["ci_low"] > 1).sum()), int((frame["ci_high"] < 1).sum())
        gmean = float(np.exp(np.log(frame["estimate"]).mean()))
        paired = int((frame["method"] == "paired").sum())
        rows.append(
            [f"{a} / {b}", str(len(frame)), str(above), str(below), str(len(frame) - above - below)]
            + [f"{gmean:.3f}", f"{frame['estimate'].min():.3f}–{frame['estimate'].max():.3f}"]
            + [f"{paired} of {len(frame)}"]
        )
    header = ["a / b", "files", "a faster (CI > 1)", "b faster (CI < 1)", "undecided"]
    header += ["geometric mean of ratios", "range", "round-paired"]
    lines += md_rows(header, rows, set(header[1:6]))
    main = analysis.comparisons.get(MAIN_PAIR)
    if main is not None:
        a, b = MAIN_PAIR
        main = _in_design_order(analysis, main[main["pruner"] != "oneshot"], ["machine", "model"])
        lines += [
            "",
            f"The original study's comparison, {a} / {b} throughput at fp32, per model file (the "
            "one-shot sweep is left to question 2); ratio of geometric means, round-paired 95% CI, "
            "Holm-adjusted across architectures:",
            "",
        ]
        rows = [
            [r["machine"], r["model"], analysis.label(r, r["machine"]), f"{r['sparsity']:.2f}"]
            + [ratio_ci(r["estimate"], r["ci_low"], r["ci_high"]), r["method"] or "–"]
            + [f"{r['p_holm']:.3g}"]
            for r in main.to_dict("records")
        ]
        header = ["machine", "model", "variant", "sparsity", "ratio [95% CI]", "method", "Holm p"]
        lines += md_rows(header, rows, {"sparsity", "Holm p"})
    return lines + [""]


def speedup_section(analysis: Analysis) -> list[str]:
    """2. Did pruning speed up each architecture on each engine, and from what sparsity?"""
    lines = [
        "### 2. Did pruning speed up each architecture on each engine, and from what sparsity?",
        "",
    ]
    speedup = analysis.speedup
    if speedup is None:
        return lines + [f"Cannot answer: {analysis.reasons.get('speedup')}.", ""]
    trained = speedup[speedup["pruner"].isin(["gmp", "sparseml"]) & (speedup["precision"] == "f32")]
    if len(trained):
        lines += [
            "Speed-up of every trained pruned variant over the dense model of the same engine "
            "(fp32 engines; an int8 file's speed-up is that of pruning and quantization together):",
            "",
        ]
        rows = []
        for r in _in_design_order(analysis, trained, ["machine", "engine", "model"]).to_dict(
            "records"
        ):
            rows.append(
                [r["machine"], r["engine"], r["model"], analysis.label(r, r["machine"])]
                + [f"{r['sparsity']:.2f}", ratio_ci(r["estimate"], r["ci_low"], r["ci_high"])]
                + [r["method"] or "–"]
                + [verdict(r["ci_low"], r["ci_high"], "faster", "slower", "no clear change")]
            )
        header = ["machine", "engine", "model", "variant", "sparsity", "speed-up [95% CI]"]
        lines += md_rows(header + ["method", "verdict"], rows, {"sparsity"}) + [""]
    first = first_speedup_sparsity(speedup)
    if first.empty:
        return lines + [
            "No one-shot sparsity sweep was measured: the onset sparsity is unknown.",
            "",
        ]
    lines += [
        "From what sparsity (the first one-shot sweep level whose speed-up CI lies above 1):",
        "",
    ]
    rows = []
    for r in first.to_dict("records"):
        if math.isnan(r["first_sparsity"]):
            cells = [f"none up to {r['max_sparsity']:.2f}", "–"]
        else:
            cells = [
                f"{r['first_sparsity']:.2f}",
                ratio_ci(r["estimate"], r["ci_low"], r["ci_high"]),
            ]
        rows.append([r["machine"], r["engine"], r["model"], *cells])
    header = ["machine", "engine", "model", "first sparsity", "speed-up there [95% CI]"]
    return lines + md_rows(header, rows, {"first sparsity"}) + [""]


def _precision_verdict(label: str, at_default: dict, at_f32: dict) -> tuple[str, str]:
    if at_default["ci_high"] >= 1.0:
        return "no win", f"{label}: OpenVINO at its default precision did not win."
    kind = verdict(at_f32["ci_low"], at_f32["ci_high"], "reversed", "survives", "unclear")
    text = {
        "reversed": "does not survive (DeepSparse faster at fp32)",
        "survives": "survives (OpenVINO still faster at fp32)",
        "unclear": "is not clear at fp32 (CI includes 1)",
    }[kind]
    ratio = ratio_ci(at_f32["estimate"], at_f32["ci_low"], at_f32["ci_high"])
    return kind, f"{label}: OpenVINO's win {text}; DeepSparse / OpenVINO f32 = {ratio}."


def precision_section(analysis: Analysis) -> list[str]:
    """3. Does OpenVINO's win survive fixing its precision to fp32?"""
    lines = ["### 3. Does OpenVINO's win survive fixing its precision to fp32?", ""]
    prec = analysis.precision
    if prec is None:
        return lines + [f"Cannot answer: {analysis.reasons.get('precision')}.", ""]
    keys = [*_SORT, "scenario", "batch_size", "threads", "isa"]
    lines += [
        "OpenVINO's default precision (bf16 where the CPU has it) and its sparse-weights option "
        "(f32-sparse, on the int8 files) against its fp32, and DeepSparse (fp32) against each; "
        "round-paired 95% CIs:",
        "",
    ]
    rows, verdicts = [], []
    prec = _in_design_order(analysis, prec, ["machine", "model"], then=["comparison"])
    for _, group in prec.groupby(keys, sort=False):
        by = {r["comparison"]: r for r in group.to_dict("records")}
        first = next(iter(by.values()))
        label = f"{first['model']} ({analysis.label(first, first['machine'])}, {first['machine']})"
        for name, r in by.items():
            rows.append(
                [r["machine"], r["model"], analysis.label(r, r["machine"]), name]
                + [ratio_ci(r["estimate"], r["ci_low"], r["ci_high"]), r["method"] or "–"]
            )
        at_default = by.get("deepsparse f32 / openvino default")
        at_f32 = by.get("deepsparse f32 / openvino f32")
        if at_default is not None and at_f32 is not None:
            verdicts.append(_precision_verdict(label, at_default, at_f32))
    header = ["machine", "model", "variant", "comparison", "ratio [95% CI]", "method"]
    lines += md_rows(header, rows) + [""]
    if not verdicts:
        return lines + [
            "- No model file has DeepSparse rows and OpenVINO rows at both precisions.",
            "",
        ]
    kinds = [k for k, _ in verdicts]
    wins = len(kinds) - kinds.count("no win")
    lines.append(
        f"OpenVINO at its default precision beat DeepSparse (CI below 1) on {wins} of "
        f"{len(kinds)} model files; with its precision fixed to fp32 the win survived on "
        f"{kinds.count('survives')}, was reversed on {kinds.count('reversed')} and was unclear on "
        f"{kinds.count('unclear')}."
    )
    return lines + [""] + [f"- {text}" for _, text in verdicts] + [""]
