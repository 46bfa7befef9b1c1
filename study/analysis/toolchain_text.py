"""summary.md's opening answer: the home-advantage test of the whole-toolchain variants.

One sentence per engine pair and precision, generated from the pooled rows of
:func:`study.analysis.summary.home_results`: "Neural Magic's toolchain moves DeepSparse/OpenVINO by X% [CI];
Intel's by Y% [CI]", then the interaction B(Neural Magic) / B(Intel) with its TOST and MDE, and
whether the single factors add up to the whole; then the rows per architecture. No number is typed
here: every one comes from the statistics.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["ENGINE_NAMES", "md_table", "toolchain_section"]

ENGINE_NAMES = {"deepsparse": "DeepSparse", "openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
_VENDOR = {"neuralmagic": "Neural Magic's", "intel": "Intel's"}


def md_table(df: pd.DataFrame | None, columns: list[str], floats: str = "{:.3g}") -> str:
    """A Markdown table of ``columns`` of ``df`` (floats formatted by ``floats``; "_no data_" if empty)."""
    if df is None or len(df) == 0:
        return "_no data_\n"
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df[cols].iterrows():
        cells = [floats.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pair(r: Any) -> str:
    return f"{ENGINE_NAMES.get(r.numerator, r.numerator)}/{ENGINE_NAMES.get(r.denominator, r.denominator)}"


def _move(r: Any) -> str:
    """``+X% [lo%, hi%]`` of a B (its change of the engine ratio), or why it is missing."""
    if not math.isfinite(r.estimate):
        return f"an unknown amount (not estimable: {r.note or 'cells missing'})"
    if not math.isfinite(r.ci_low):
        return f"{r.estimate - 1:+.1%} (no CI: {r.note})"
    return f"{r.estimate - 1:+.1%} [{r.ci_low - 1:+.1%}, {r.ci_high - 1:+.1%}]"


def _verdict(r: Any) -> str:
    """What a ratio's CI and TOST say about 1 (no difference) at the declared margin."""
    m = f"{r.margin:.0%}"
    if not math.isfinite(r.ci_low):
        return "not estimable"
    if r.ci_low > 1 or r.ci_high < 1:
        return f"the CI excludes 1 (p = {r.pvalue:.3g})" + (
            f", though the difference is within ±{m} (TOST p = {r.tost.pvalue:.3g})"
            if r.equivalent
            else ""
        )
    if r.equivalent:
        return f"equal within ±{m} (TOST p = {r.tost.pvalue:.3g})"
    return f"inconclusive: neither 1 excluded nor ±{m} shown"


def _ratio(r: Any) -> str:
    if not math.isfinite(r.estimate):
        return f"not estimable ({r.note or 'cells missing'})"
    ci = f" [{r.ci_low:.3f}, {r.ci_high:.3f}]" if math.isfinite(r.ci_low) else ""
    return f"{r.estimate:.3f}{ci}"


def _over(r: Any) -> str:
    """How many architectures a pooled B rests on: each vendor's own (their gates differ)."""
    return "pooled over 1 architecture" if r.k == 1 else f"pooled over {r.k} architectures"


def _sentences(rows: list[Any], precision_suffix: str, where: str) -> list[str]:
    """The sentences of one engine pair and precision (rows: the pooled rows of that group)."""
    by = {r.channel: r for r in rows}
    whole = {lvl: by.get(f"toolchain:{lvl}{precision_suffix}") for lvl in _VENDOR}
    present = {lvl: r for lvl, r in whole.items() if r is not None}
    if not present:
        return []
    moves = [
        f"{_VENDOR[lvl]} toolchain moves {_pair(r)} by {_move(r)} ({_over(r)})"
        if i == 0
        else f"{_VENDOR[lvl]} by {_move(r)} ({_over(r)})"
        for i, (lvl, r) in enumerate(present.items())
    ]
    text = [f"- {'; '.join(moves)}; {where}."]
    inter = by.get(f"interaction:neuralmagic{precision_suffix}/intel{precision_suffix}")
    if inter is not None:
        text.append(
            f"  Interaction B(Neural Magic) / B(Intel) = {_ratio(inter)}: {_verdict(inter)}; "
            f"its MDE is {inter.mde:.1%}."
        )
    for lvl in _VENDOR:
        add = by.get(f"additivity:{lvl}{precision_suffix}")
        if add is None:
            continue
        factors = add.level_b.get("product of", "its single factors")
        text.append(
            f"  Do {_VENDOR[lvl]} single factors add up? Its whole-toolchain B over the product "
            f"of their B's ({factors}) = {_ratio(add)}: {_verdict(add)}."
        )
    return text


def _files_note(records: list[Any], engines: tuple[str, ...]) -> list[str]:
    lines = []
    for rec in records:
        forms = (rec.extra or {}).get("engine_file_forms")
        if not forms:
            continue
        forms = {e: f for e, f in forms.items() if e in engines}  # the engines this run has
        fq = sorted(ENGINE_NAMES.get(e, e) for e, f in forms.items() if f == "fq")
        qdq = sorted(ENGINE_NAMES.get(e, e) for e, f in forms.items() if f == "qdq")
        what = (
            "Intel's toolchain, int8"
            if rec.pruner == "nncf"
            else f"NNCF's int8 of the {rec.pruner} weights (quantizer:{rec.quant})"
        )
        lines.append(
            f"- {rec.model}, {what}: {', '.join(fq)} measured NNCF's own file "
            f"({rec.onnx_path}, OpenVINO FakeQuantize nodes); {', '.join(qdq)} cannot run it and "
            f"measured NNCF's weights and scales in a standard QDQ graph "
            f"({rec.extra.get('qdq_path')}); the rows' onnx_path says which file each cell ran."
        )
    return lines


def _table(rows: list[Any]) -> str:

    out = pd.DataFrame(
        [
            {
                "test": r.channel,
                "model": r.model,
                "pair": f"{r.numerator}/{r.denominator}",
                "isa": r.isa,
                "ratio [CI]": _ratio(r),
                f"TOST ±{r.margin:.0%} p": r.tost.pvalue,
                "MDE": r.mde,
                "method": r.method + (f", {r.n_rounds} rounds" if r.n_rounds else ""),
                "note": r.note[:100],
            }
            for r in rows
        ]
    )
    return md_table(out, list(out.columns)) if len(out) else "_no data_\n"


def toolchain_section(s: Any) -> list[str]:
    """The home-advantage section of summary.md (empty when the run has no toolchain factor)."""
    rows = getattr(s, "home", [])
    if s.cfg is None or len(s.cfg.levels("toolchain")) < 2:
        return []
    lines = [
        "## The home-advantage test: does a vendor's whole toolchain favour its own engine?",
        "",
    ]
    if not rows:
        return lines + ["_No whole-toolchain variant was measured (see failures)._", ""]
    machines = sorted({r.machine for r in rows})
    pooled = [r for r in rows if r.model == "pooled" and r.isa in ("native", "")]
    for num, den, machine in dict.fromkeys((r.numerator, r.denominator, r.machine) for r in pooled):
        group = [
            r for r in pooled if (r.numerator, r.denominator, r.machine) == (num, den, machine)
        ]
        where = f" on {machine}" if len(machines) > 1 else ""
        for suffix, label in (("", "fp32"), (":int8", "int8")):
            found = _sentences(group, suffix, f"{label}{where}")
            lines += found
    lines += [
        "",
        "A toolchain's B is the engine ratio on its whole-toolchain variant over the same ratio on "
        "the neutral reference (gmp, one global threshold, unstructured, torch.onnx; int8 by "
        "torch.ao), round-paired; +X% means it moves the ratio X% towards the first engine. The "
        "interaction is B(Neural Magic) / B(Intel); additivity is the whole-toolchain B over the "
        "product of its single-factor B's (1: the factors add up on the log scale). Intel's "
        "fp32 variant is one choice (NNCF's pruning), so it has no additivity test; its int8 "
        "variant's single factors are NNCF's pruning (toolchain:intel) and NNCF's QAT on the "
        "reference weights (quantizer:nncf).",
        "",
    ]
    lines += _files_note(s.records, tuple(s.cfg.engines))
    return lines + ["", _table(rows)]
