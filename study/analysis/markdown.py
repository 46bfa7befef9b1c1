"""``summary.md``: the study's answer in plain words and tables, from :class:`study.analysis.summary.StudyStats`.

The channel table comes first (the A/A control at its head), each channel with a sentence that
says what it measured; then accuracy, mask structure, the int8 arm, time per stage and the
per-cell tables. Numbers come from :mod:`study.analysis.summary` only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from study.analysis.stats_file import stats_json
from study.analysis.summary import (
    StudyStats,
    accuracy_table,
    compute_stats,
    failures,
    timings,
    variant_label,
)
from study.analysis.toolchain_text import md_table as _fmt_table
from study.analysis.toolchain_text import toolchain_section
from study.design import CHANNEL_TEXT
from study.records.jsonl import read_jsonl
from study.records.manifest import SKIPPED

__all__ = ["apart_bullets", "channel_sentence", "summary_markdown", "write_stats"]


def _ci(r: Any) -> str:
    if not math.isfinite(r.estimate):
        return "not estimable"
    return f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.1%}"


def channel_sentence(r: Any, identical: bool = False, one_file: bool = True) -> str:
    """What one pooled B says, in plain words.

    ``identical``: the pruner channel's two variants hold the same numbers (an A/A control);
    ``one_file``: and the same file was measured in both cells (else both files, whose zeros
    differ only in sign bit).
    """
    pair = f"{r.numerator}/{r.denominator}"
    if getattr(r, "isa", "native") not in ("native", ""):
        pair += f" (engines capped to {r.isa})"
    if not math.isfinite(r.estimate):
        return f"{pair}: could not be measured ({r.note or 'cells missing'})."
    m = f"{r.margin:.0%}"
    if identical:
        what = (
            "the same file in two cells gives"
            if one_file
            else "the two numerically identical files give"
        )
        return (
            f"{pair}: {what} B = {_ci(r)}: the study could not have "
            f"seen a bias smaller than {_pct(r.mde)} (its detection limit at 80% power)"
            + (
                "; the CI excludes 1, so the harness itself is biased by position or time."
                if (r.ci_low > 1 or r.ci_high < 1)
                else "."
            )
        )
    if r.ci_low > 1 or r.ci_high < 1:
        side = r.numerator if r.estimate > 1 else r.denominator
        held = f" (Holm p = {r.p_holm:.3g})" if math.isfinite(r.p_holm) else ""
        size = "" if not r.equivalent else f", though smaller than {m}"
        return f"{pair}: a bias in favour of {side}, B = {_ci(r)}{held}{size}."
    if r.equivalent:
        return f"{pair}: no bias larger than {m} (B = {_ci(r)}, TOST p = {r.tost.pvalue:.3g}): this channel cannot explain a gap of {m}."
    if r.gap_ruled_out:
        return (
            f"{pair}: B = {_ci(r)}: this channel cannot explain a gap of {m} or more in favour "
            f"of {r.numerator} (one-sided p = {r.gap_pvalue:.3g}); a bias against it is not ruled out."
        )
    return (
        f"{pair}: inconclusive, B = {_ci(r)}: a bias of {m} is not ruled out (the smallest "
        f"detectable here is {_pct(r.mde)})."
    )


def apart_bullets(apart: dict[str, str]) -> list[str]:
    """One bullet per architecture a channel shows apart (``RunAnalysis.apart[channel]``).

    Example:
        >>> apart_bullets({"resnet18": "a file is below the accuracy gate"})
        ['- resnet18: shown apart, not in the pooled B: a file is below the accuracy gate.']
    """
    return [f"- {model}: shown apart, not in the pooled B: {why}." for model, why in apart.items()]


def _channel_rows(s: StudyStats, pooled: bool) -> pd.DataFrame:
    rows = []
    for r in s.channels:
        if (r.model == "pooled") != pooled:
            continue
        rows.append(
            {
                "channel": r.channel,
                "model": r.model,
                "pair": f"{r.numerator}/{r.denominator}",
                "isa": r.isa or "varied",
                "B [95% CI]": _ci(r),
                "p(B=1)": r.pvalue,
                "Holm p": r.p_holm,
                f"TOST ±{r.margin:.0%} p": r.tost.pvalue,
                f"p(B ≥ 1+{r.margin:.0%})": r.gap_pvalue,
                "MDE": _pct(r.mde),
                "k": r.k,
                "method": f"{r.method}" + (f", {r.n_rounds} rounds" if r.n_rounds else ""),
                "note": r.note[:120],
            }
        )
    return pd.DataFrame(rows)


def _aa_section(s: StudyStats) -> list[str]:
    lines = ["## The A/A control: gmp vs SparseML, the same algorithm", ""]
    if not s.identity:
        return lines + ["_Not measured (the pruner factor is not in this run)._", ""]
    same = [m for m, ok in s.identity.items() if ok]
    differ = [m for m, ok in s.identity.items() if not ok]
    one = bool(same) and all(s.one_file.get(m) for m in same)
    if same and not differ:
        lines.append(
            f"**Identical models: the pruning implementation cannot bias the engines.** On every "
            f"architecture ({', '.join(same)}) gmp and SparseML gave content-identical ONNX graphs "
            "(order-free hash of nodes and initializers, values compared as numbers)."
        )
        zeros = {m: n for m, n in s.signed_zeros.items() if n}
        if zeros:
            listed = ", ".join(f"{n:,} on {m}" for m, n in zeros.items())
            lines[-1] += (
                f" Their bytes differ only in the sign bit of zero weights ({listed}: SparseML "
                "writes -0.0 where gmp writes 0.0 and vice versa), so both files were measured, "
                "each in its own cell, in the same rounds: the B between them is an A/A control "
                "up to the sign of zero, and would show an engine that treats -0.0 differently."
            )
        else:
            lines[-1] += " The one file was measured in two cells in the same rounds."
        lines[-1] += " Its CI and minimum detectable effect (MDE) are the study's detection limit:"
    else:
        lines.append(
            f"gmp and SparseML gave identical graphs on {', '.join(same) or 'no architecture'} "
            f"and different ones on {', '.join(differ)}: there the pruner is a channel like the "
            "others."
        )
    lines.append("")
    for r in (r for r in s.channels if r.channel == "pruner" and r.model == "pooled"):
        lines.append(f"- {channel_sentence(r, identical=bool(same) and not differ, one_file=one)}")
    return lines + [""]


def _channels_section(s: StudyStats) -> list[str]:
    m = f"{s.margin:.0%}"
    lines = [
        "## Channels: does a vendor toolchain's choice change the engine comparison?",
        "",
        "B = (engine A / engine B on the variant) / (the same ratio on the reference: gmp, one "
        "global magnitude threshold, unstructured, fp32, torch.onnx). B = 1: the choice does not "
        "change the comparison. Each "
        "B pairs trials measured in the same round (common drift cancels); pooled over "
        f"architectures (each architecture weighted alike below 5, random effects from 5). Declared margin ±{m}: TOST inside it means "
        f"'no bias larger than {m}'; p(B ≥ 1+{m}) < {1 - s.confidence:.2g} means the channel "
        f"cannot explain a gap of {m} or more in the numerator's favour (the original study's "
        "gap was 12%). MDE: the smallest |B - 1| detectable at 80% power. Holm p: across every "
        "pooled B of this table.",
        "",
    ]
    if not s.channels:
        return lines + ["_No channel could be computed (see failures)._", ""]
    for name in dict.fromkeys(r.channel for r in s.channels):
        if name == "pruner":
            continue
        lines.append(f"**{name}**: {CHANNEL_TEXT.get(name, name)}.")
        lines.append("")
        for r in (r for r in s.channels if r.channel == name and r.model == "pooled"):
            lines.append(f"- {channel_sentence(r)}")
        lines += apart_bullets(s.apart.get(name, {}))
        lines.append("")
    cols = ["channel", "pair", "isa", "B [95% CI]", "p(B=1)", "Holm p", f"TOST ±{m} p"]
    cols += [f"p(B ≥ 1+{m})", "MDE", "k", "method"]
    lines += ["Pooled over architectures:", "", _fmt_table(_channel_rows(s, True), cols)]
    cols = ["channel", "model", "pair", "isa", "B [95% CI]", "p(B=1)", f"TOST ±{m} p"]
    cols += [f"p(B ≥ 1+{m})", "MDE", "method", "note"]
    lines += ["Per architecture:", "", _fmt_table(_channel_rows(s, False), cols)]
    return lines


def _accuracy_section(s: StudyStats) -> list[str]:
    table = accuracy_table(s.records, s.cfg)
    gate = s.cfg.train.accuracy_gate if s.cfg else None
    dataset = ", ".join(sorted(table["dataset"].dropna().unique())) if len(table) else "-"
    lines = [
        f"## Accuracy (top-1 of each model on {dataset}; drop in points from its dense model)",
        "",
    ]
    if gate is not None:
        lines.append(
            f"Models below the declared gate of {gate:.0%} are labelled 'not trained' here and in "
            "every table that uses them."
        )
        lines.append("")
    cols = ["model", "variant", "exporter", "measured_sparsity", "accuracy", "drop_pp", "trained"]
    return lines + [_fmt_table(table, cols)]


def _diagnostics_section(s: StudyStats) -> list[str]:
    rows, seen = [], set()
    for r in sorted(s.records, key=lambda r: r.exporter != "torch"):  # torch export first
        d = (r.diagnostics or {}).get("model")
        trained = (r.model, r.pruner, r.profile, r.mask)  # one row per trained fp32 model
        if not d or r.quant != "none" or trained in seen:
            continue
        seen.add(trained)
        rows.append({"model": r.model, "variant": variant_label(r), **d})
    lines = [
        "## Mask structure (per model: numel-weighted means over prunable layers)",
        "",
        "cv_nonzeros_per_out_channel: how unevenly the surviving weights spread over output "
        "channels; zero_filters / zero_input_channels: shares entirely pruned; zero_blocks_1x4: "
        "share of 1x4 blocks (along input channels) entirely zero. Per layer: the manifest.",
        "",
    ]
    table = pd.DataFrame(rows)
    cols = ["model", "variant", "cv_nonzeros_per_out_channel", "zero_filters"]
    cols += ["zero_input_channels", "zero_blocks_1x4"]
    return lines + [_fmt_table(table, cols)]


def _int8_section(s: StudyStats) -> list[str]:
    from study.analysis.int8 import engine_runs, int8_speedups
    from study.analysis.isa_paths import int8_labels

    lines = ["## The int8 arm: what each engine did", ""]
    runs = engine_runs(s.ok) if "quant" in s.ok else pd.DataFrame()
    if runs.empty:
        return lines + ["_No int8 file was measured._", ""]
    runs = runs.assign(
        check=[
            "n/a"
            if ok is None
            else ("ok" if ok else "WRONG") + (f" ({d:.1e})" if isinstance(d, float) else "")
            for ok, d in zip(runs["output_ok"], runs["output_max_abs_diff"])
        ]
    )
    cols = ["model", "quant", "engine", "precision", "isa", "what_ran", "check"]
    lines.append(_fmt_table(runs, cols))
    labels = int8_labels(s.ok)
    emulated = labels[labels["int8_label"] != ""]
    if not emulated.empty:
        lines += [
            "DeepSparse's own hardware table says sparse quantization is optimized only on "
            "AVX-512 VNNI CPUs; on these cells it ran emulated (its `cpu_vnni` and engine binary):",
            "",
            _fmt_table(
                emulated, ["model", "quant", "isa", "cpu_vnni", "engine_binary", "int8_label"]
            ),
        ]
    speed = int8_speedups(s.ok, s.confidence)
    if not speed.empty:
        speed = speed.assign(
            ratio=[
                f"{e:.2f} [{lo:.2f}, {hi:.2f}]"
                for e, lo, hi in zip(speed["estimate"], speed["ci_low"], speed["ci_high"])
            ]
        )
        lines += ["int8 over fp32 (the reference's weights, same engine, round-paired):", ""]
        lines.append(
            _fmt_table(speed, ["model", "engine", "quantizer", "ratio", "method", "n_rounds"])
        )
    return lines


def _machine_section(s: StudyStats) -> list[str]:
    from study.analysis.isa_paths import engine_paths, path_sentences

    lines = ["## The instruction-set path each engine ran (the engines' own report)", ""]
    sentences = path_sentences(engine_paths(s.ok))
    lines += [f"- {t}" for t in sentences] or ["_Not recorded (results of an older version)._"]
    skipped = read_jsonl(s.out / SKIPPED, missing_ok=True)
    if skipped:
        lines += [
            "",
            "Not measured, because on this CPU they could not differ from measured cells:",
            "",
        ]
        lines += [
            f"- {k['what']}{' on ' + k['model'] if k['model'] else ''}: {k['reason']}."
            for k in skipped
        ]
    return lines + [""]


def _timings_section(s: StudyStats) -> list[str]:
    t = timings(s.out)
    lines = ["## Time per stage (seconds on this machine; reused stages count 0)", ""]
    if t.empty:
        return lines + ["_timings.csv is absent._", ""]
    kind = t["stage"].str.split().str[0]
    table = (
        t.assign(kind=kind).groupby(["model", "kind"], sort=False)["seconds"].agg(["count", "sum"])
    )
    table = table.reset_index().rename(columns={"count": "runs", "sum": "seconds"})
    # gzip sizes are measured in threads while the next variants are made (study.variants):
    # their seconds overlap the other stages', so they stay out of the total.
    total = float(t.loc[kind != "gzip", "seconds"].sum())
    note = (
        " (gzip sizes, measured beside the making, not counted)" if (kind == "gzip").any() else ""
    )
    return lines + [
        _fmt_table(table, ["model", "kind", "runs", "seconds"], "{:.1f}"),
        f"Total: {total / 60:.1f} min{note}.",
        "",
    ]


def summary_markdown(s: StudyStats) -> str:
    """The whole summary.md text."""
    name = s.cfg.name if s.cfg else s.out.name
    lines = [f"# Study summary: {name}", ""]
    if s.cfg:
        lines.append(
            f"Architectures: {', '.join(s.cfg.models)}; engines: {', '.join(s.engines)}; factors: "
            + "; ".join(f"{f} {', '.join(v)}" for f, v in s.cfg.factors.items())
            + "."
        )
        lines.append("")

    lines += toolchain_section(s)
    lines += _aa_section(s) + _channels_section(s) + _accuracy_section(s)
    lines += _diagnostics_section(s) + _int8_section(s) + _machine_section(s)
    lines += _timings_section(s)
    lines += ["## Throughput per cell (items/s, geometric mean of trials, t 95% CI)", ""]
    cols = ["model", "pruner", "profile", "mask", "quant", "exporter", "sparsity", "engine"]
    cols += ["precision", "n_trials", "throughput", "ci_low", "ci_high"]
    lines.append(_fmt_table(s.cells, cols))
    lines += ["## Engine vs engine (ratio of geometric means, 95% CI, Holm-adjusted p)", ""]
    cols = ["model", "pruner", "profile", "mask", "quant", "exporter", "engine_a", "engine_b"]
    cols += ["estimate", "ci_low", "ci_high", "method", "p_holm"]
    lines.append(_fmt_table(s.engine_table, cols))
    lines += [
        "## Pruning speed-up (pruned / dense throughput, same engine and precision, 95% CI)",
        "",
    ]
    cols = ["model", "engine", "precision", "pruner", "profile", "mask", "quant", "exporter"]
    cols += ["sparsity", "estimate", "ci_low", "ci_high", "method"]
    speed = s.speedup
    if speed is not None and len(speed):
        known = speed["estimate"].astype(float).notna()
        if (~known).any():
            lines += [
                f"{int((~known).sum())} comparison(s) without a dense file at the same precision "
                "setting are left out (e.g. OpenVINO's f32-sparse cells, run on int8 files only).",
                "",
            ]
        speed = speed[known]
    lines.append(_fmt_table(speed, cols))
    lines += ["## Failures", ""]
    found = failures(s.out)
    lines += (
        [
            f"- {f['stage']} {f['model']} {f.get('pruner', '')} {f.get('engine', '')}: {f['reason']}"
            for f in found
        ]
        if found
        else ["None."]
    )
    return "\n".join(lines) + "\n"


def write_stats(out: Path) -> dict[str, Any]:
    """Compute the statistics of the results folder ``out``; write ``stats.json`` and ``summary.md``.

    Returns:
        What ``stats.json`` holds.
    """
    s = compute_stats(out)
    result = stats_json(s)
    (out / "stats.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "summary.md").write_text(summary_markdown(s))
    return result
