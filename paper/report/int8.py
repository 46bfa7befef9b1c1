"""The report's int8 arm: what each engine ran, the quantizer B, int8 speed-ups, int8 accuracy."""

from __future__ import annotations

import math

from paper.analysis import Analysis
from paper.report._text import escape, md_rows, ratio_ci
from paper.report.channels import pooled_results, sentence_bullets
from study.analysis.int8 import QUANTIZERS, kernel_support

__all__ = ["int8_section", "kernel_sentence", "sparse_weights_sentence"]

_ENGINE_NAMES = {"openvino": "OpenVINO", "deepsparse": "DeepSparse", "onnxruntime": "ONNX Runtime"}


def _check(ok: object, diff: object) -> str:
    if ok is None:
        return "n/a"
    text = "ok" if ok else "WRONG"
    return text + (f" ({diff:.1e})" if isinstance(diff, float) and math.isfinite(diff) else "")


def kernel_sentence(analysis: Analysis) -> str:
    """What the rows say about which engine ran int8 kernels on which toolchain's file ("" if none)."""
    if analysis.int8 is None:
        return ""
    support = kernel_support(analysis.int8.runs)
    parts = []
    for engine, by_quant in sorted(support.items()):
        yes = [QUANTIZERS[q] for q, ran in sorted(by_quant.items()) if ran]
        name = _ENGINE_NAMES.get(engine, engine)
        if not yes:
            parts.append(f"{name} ran int8 kernels on neither file")
        elif len(yes) == len(by_quant) and len(yes) > 1:
            parts.append(f"{name} ran int8 kernels on both files")
        else:
            parts.append(f"{name} ran int8 kernels on {' and '.join(yes)}'s file only")
    runs = analysis.int8.runs
    silent = sorted(
        {_ENGINE_NAMES.get(e, e) for e in runs.loc[runs["int8_kernels"].isna(), "engine"]}
    )
    if silent:
        verb = "does" if len(silent) == 1 else "do"
        parts.append(f"{' and '.join(silent)} {verb} not record which kernels ran")
    return "; ".join(parts)


def sparse_weights_sentence(analysis: Analysis) -> str:
    """Whether OpenVINO's sparse-weights decompression took effect, from the f32-sparse rows."""
    if analysis.int8 is None:
        return ""
    sparse = analysis.int8.runs[analysis.int8.runs["sparse_weights"].notna()]
    if sparse.empty:
        return ""
    took = sparse[sparse["sparse_weights"].astype(bool)]
    if len(took):
        files = ", ".join(
            f"{r['model']} ({QUANTIZERS.get(r['quant'], r['quant'])})"
            for r in took.to_dict("records")
        )
        return f"OpenVINO's sparse-weights decompression took effect on {files}."
    reasons = sorted({str(r).split(";")[0] for r in sparse["sparse_reason"] if str(r)})
    why = f": {'; '.join(reasons)}" if reasons else ""
    return (
        f"OpenVINO's sparse-weights decompression (precision f32-sparse) did not take effect on "
        f"any of the {len(sparse)} int8 cell(s) that asked for it{why}; those cells measure "
        "OpenVINO's ordinary int8 path."
    )


def _accuracy_lines(analysis: Analysis) -> list[str]:
    acc = analysis.accuracy
    if acc is None:
        return []
    int8 = acc[acc["variant"].str.startswith("int8")]
    out = []
    for r in int8.to_dict("records"):
        fp32 = acc[(acc["model"] == r["model"]) & (acc["variant"] == "reference")]
        fp32 = fp32[fp32["machine"] == r["machine"]]
        vs = ""
        if len(fp32) and math.isfinite(r["accuracy"]) and math.isfinite(fp32["accuracy"].iloc[0]):
            diff = 100 * (fp32["accuracy"].iloc[0] - r["accuracy"])
            side = "below" if diff >= 0 else "above"
            vs = f"; {abs(diff):.2f} pp {side} its fp32 weights"
        gate = f" ({r['trained']})" if r["trained"] == "not trained" else ""
        top1 = "not measured" if not math.isfinite(r["accuracy"]) else f"{100 * r['accuracy']:.2f}%"
        out.append(
            f"- {r['model']}, {r['variant']}{gate}: top-1 {top1} (drop vs dense "
            f"{r['drop_pp']:.2f} pp{vs})."
        )
    return out


def int8_section(analysis: Analysis) -> list[str]:
    """What the engines did with the int8 files, the quantizer B, speed-ups and accuracy."""
    lines = ["### The int8 arm: what each engine ran, and what int8 gained", ""]
    if analysis.int8 is None:
        return lines + [f"Not measured: {analysis.reasons.get('int8', 'no int8 file')}.", ""]
    runs = analysis.int8.runs
    header = ["machine", "model", "quantizer", "engine", "precision", "what ran", "int8 kernels"]
    rows = [
        [
            r["machine"],
            r["model"],
            QUANTIZERS.get(r["quant"], r["quant"]),
            r["engine"],
            r["precision"],
        ]
        + [escape(r["what_ran"])]
        + ["–" if r["int8_kernels"] is None else ("yes" if r["int8_kernels"] else "no")]
        + [_check(r["output_ok"], r["output_max_abs_diff"])]
        for r in runs.to_dict("records")
    ]
    lines += [
        "What each engine ran on each int8 file (from the engines' own reports, engine_settings):",
        "",
    ]
    lines += md_rows([*header, "output check"], rows) + [""]
    said = kernel_sentence(analysis)
    if said:
        lines += [f"On these rows: {said}.", ""]
    quantizer = pooled_results(analysis, "quantizer")
    if quantizer:
        lines += [
            "The quantizer B (int8 by SparseML vs int8 by torch.ao, the same pruned weights) "
            "therefore mostly measures which int8 graph format each engine supports, not how well "
            "each toolchain quantized:",
            "",
        ]
        lines += sentence_bullets(quantizer) + [""]
    speed = analysis.int8.speedups
    if len(speed):
        lines += [
            "int8 / fp32 throughput of the same pruned weights on the same engine (round-paired):",
            "",
        ]
        rows = [
            [r["machine"], r["model"], r["engine"], QUANTIZERS.get(r["quantizer"], r["quantizer"])]
            + [ratio_ci(r["estimate"], r["ci_low"], r["ci_high"], digits=2), r["method"] or "–"]
            + [str(r["n_rounds"])]
            for r in speed.to_dict("records")
        ]
        header = [
            "machine",
            "model",
            "engine",
            "quantizer",
            "int8 / fp32 [95% CI]",
            "method",
            "rounds",
        ]
        lines += md_rows(header, rows, {"rounds"}) + [""]
    sparse = sparse_weights_sentence(analysis)
    if sparse:
        lines += [sparse, ""]
    accuracy = _accuracy_lines(analysis)
    if accuracy:
        lines += [
            "Accuracy of the int8 files (top-1, the drop from the dense model and from the fp32 reference):",
            "",
        ]
        lines += accuracy + [""]
    return lines
