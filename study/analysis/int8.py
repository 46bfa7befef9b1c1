"""The int8 arm: what each engine ran on each int8 file, and the int8 speed-up per engine.

The engines record what they did with an int8 file in ``engine_settings`` (study.engines):
OpenVINO the precision its CPU plugin ran each layer type in (``runtime_precisions``) and, at
precision "f32-sparse", whether its sparse-weights decompression took effect and why not;
DeepSparse the share of the graph it compiled itself (``fraction_of_supported_ops``; 0 means all
of it fell back to its bundled ONNX Runtime), ``cpu_vnni``, its engine binary and, where its own
hardware table says int8 is emulated there, the label ("int8 emulated (no VNNI)"); ONNX Runtime its
``providers``
only (which kernels ran is not recorded). The int8 speed-up is int8 / fp32 of the same pruned
weights (the reference variant) on the same engine, round-paired (``study.stats.contrast``), as
in ``summary.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from study.design import is_reference
from study.stats import contrast
from study.stats.defaults import CONFIDENCE

__all__ = [
    "INT8_OPS",
    "QUANTIZERS",
    "Int8Analysis",
    "analyse_int8",
    "engine_runs",
    "int8_speedups",
    "kernel_support",
]

INT8_OPS = ("Convolution", "FullyConnected", "MatMul")  # the OpenVINO layer types reported
_INT8_PRECISIONS = ("u8", "i8")
_SETTING = ["scenario", "batch_size", "threads", "isa"]
_VARIANT = ["pruner", "profile", "mask", "quant", "exporter"]
QUANTIZERS = {
    "torch": "torch.ao",
    "sparseml": "SparseML",
    "nncf": "NNCF",
    "nncf_ptq": "NNCF post-training",
}  # quant column -> who quantized


@dataclass(frozen=True)
class Int8Analysis:
    """What the engines did with the int8 files, and how much faster int8 was."""

    # One row per machine, model, quant, engine and precision: machine, model, quant, engine,
    # precision, what_ran (text), int8_kernels (True/False; None where the engine does not say),
    # sparse_weights (True/False at "f32-sparse", else None), sparse_reason, output_ok,
    # output_max_abs_diff.
    runs: pd.DataFrame
    # One row per machine, model, engine, setting and quantizer: estimate, ci_low, ci_high (int8 /
    # fp32 of the reference weights), pvalue, method, n_rounds, note.
    speedups: pd.DataFrame


def _openvino(es: dict[str, Any]) -> tuple[str, bool | None]:
    prec = es.get("runtime_precisions") or {}
    ops = {k: v for k, v in sorted(prec.items()) if k in INT8_OPS and isinstance(v, dict)}
    text = "; ".join(f"{k}: {', '.join(f'{p} {n}' for p, n in v.items())}" for k, v in ops.items())
    if not ops:
        return "runtime precisions not recorded", None
    return text, any(p in _INT8_PRECISIONS for v in ops.values() for p in v)


def _deepsparse(es: dict[str, Any]) -> tuple[str, bool | None]:
    frac = es.get("fraction_of_supported_ops")
    if frac is None:
        return "fraction_of_supported_ops not recorded", None
    text = f"fraction_of_supported_ops {frac}, vnni {es.get('cpu_vnni')}"
    if es.get("engine_binary"):
        text += f", {es['engine_binary']} engine binary"
    if float(frac) == 0.0:
        text += " (all of it fell back to the bundled ONNX Runtime)"
    if es.get("int8_label"):  # DeepSparse's own table: int8 emulated without AVX-512 VNNI
        text = f"{es['int8_label']}: {text}"
    return text, float(frac) > 0.0


def _what_ran(engine: str, es: dict[str, Any]) -> tuple[str, bool | None]:
    """A line on what ``engine`` ran, and whether it ran int8 kernels (None: not recorded)."""
    if engine == "openvino":
        return _openvino(es)
    if engine == "deepsparse":
        return _deepsparse(es)
    providers = es.get("providers")
    if isinstance(providers, list | tuple):
        providers = ", ".join(map(str, providers))
    return f"providers {providers} (kernels not recorded)", None


def _flag(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def engine_runs(ok: pd.DataFrame) -> pd.DataFrame:
    """What each engine did with each int8 file, from the last ok trial's ``engine_settings``.

    Args:
        ok: ok TrialRow rows (schema version 3).

    Returns:
        The :attr:`Int8Analysis.runs` table (empty when no int8 file was measured).
    """
    int8 = ok[ok["quant"].isin(list(QUANTIZERS))]
    rows = []
    keys = ["machine", "isa", "model", "quant", "engine", "precision"]
    for key, g in int8.groupby(keys, sort=True):
        last = g.iloc[-1]
        es = last["engine_settings"] if isinstance(last["engine_settings"], dict) else {}
        text, kernels = _what_ran(str(key[4]), es)
        sparse = _flag(es.get("sparse_weights_took_effect"))
        if sparse is not None:
            text += f"; sparse weights took effect: {sparse}"
        diff = last.get("output_max_abs_diff")
        rows.append(
            dict(zip(keys, key))
            | {"what_ran": text, "int8_kernels": kernels, "sparse_weights": sparse}
            | {"sparse_reason": str(es.get("sparse_weights_reason") or "")}
            | {"output_ok": _flag(last.get("output_ok")), "output_max_abs_diff": diff}
        )
    columns = [*keys, "what_ran", "int8_kernels", "sparse_weights", "sparse_reason"]
    return pd.DataFrame(rows, columns=[*columns, "output_ok", "output_max_abs_diff"])


def int8_speedups(ok: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """int8 / fp32 throughput of the reference weights, per engine, round-paired.

    Per machine, model, engine and setting at precision "f32": the reference's fp32 file
    (:data:`study.design.REFERENCE`) against each int8 file of the same
    weights (quant "torch", quant "sparseml"), by :func:`study.stats.contrast` with weights +1
    (int8) and -1 (fp32): round by round when both were measured in one block.

    Args:
        ok: ok TrialRow rows (schema version 3).
        confidence: two-sided level of the CIs.

    Returns:
        The :attr:`Int8Analysis.speedups` table (empty when no int8 file has an fp32 twin).
    """
    f32 = ok[ok["precision"] == "f32"]
    ref = f32[
        [
            is_reference({**r, "quant": "none", "exporter": "torch"})
            for r in f32[_VARIANT].to_dict("records")
        ]
    ]
    rows = []
    keys = ["machine", "model", "engine", *_SETTING]
    for key, g in ref.groupby(keys, sort=True):
        fp32 = g[(g["quant"] == "none") & (g["exporter"] == "torch")]
        for quant in QUANTIZERS:
            q = g[g["quant"] == quant]
            if fp32.empty or q.empty:
                continue
            c = contrast(
                g, {q["cell"].iloc[0]: 1.0, fp32["cell"].iloc[0]: -1.0}, confidence=confidence
            )
            rows.append(
                dict(zip(keys, key))
                | {"quantizer": quant, "estimate": math.exp(c.estimate)}
                | {"ci_low": math.exp(c.ci_low), "ci_high": math.exp(c.ci_high)}
                | {"pvalue": c.pvalue, "method": c.method, "n_rounds": c.n_rounds, "note": c.note}
            )
    columns = [*keys, "quantizer", "estimate", "ci_low", "ci_high", "pvalue", "method"]
    return pd.DataFrame(rows, columns=[*columns, "n_rounds", "note"])


def analyse_int8(ok: pd.DataFrame, confidence: float = CONFIDENCE) -> Int8Analysis | None:
    """The int8 arm of ``ok``; None when no int8 file was measured.

    Example:
        >>> analyse_int8(analysis.ok).runs  # doctest: +SKIP
    """
    if "quant" not in ok or not ok["quant"].isin(list(QUANTIZERS)).any():
        return None
    return Int8Analysis(engine_runs(ok), int8_speedups(ok, confidence))


def kernel_support(runs: pd.DataFrame) -> dict[str, dict[str, bool]]:
    """Per engine, per quantizer: did it run int8 kernels on that toolchain's file (precision f32)?

    Engines that do not record it (ONNX Runtime) are left out.
    """
    out: dict[str, dict[str, bool]] = {}
    f32 = runs[(runs["precision"] == "f32") & runs["int8_kernels"].notna()]
    for (engine, quant), g in f32.groupby(["engine", "quant"], sort=True):
        out.setdefault(str(engine), {})[str(quant)] = bool(g["int8_kernels"].astype(bool).any())
    return out
