"""The report's methods (from the recorded settings and rows) and its caveats."""

from __future__ import annotations

import numpy as np
import pandas as pd

from paper.analysis import NOT_TRAINED, RANDOM_EFFECTS_MIN_K, Analysis
from paper.load import Results
from paper.report._text import values
from paper.report.int8 import kernel_sentence, sparse_weights_sentence
from paper.tables import Table, to_markdown
from study.stats.replication import LEVELS, replication_summary, replication_tests

__all__ = ["caveats", "methods_section"]

_QUICK_PRESETS = ("quick", "smoke")
_PRESET_KEYS = ("name", "models", "factors", "int8_models", "engines", "sweep")
_PRESET_KEYS += ("precision_ablation", "weights", "data", "seed")


def _gate(results: Results, analysis: Analysis) -> str:
    """The accuracy gate as text ("the accuracy gate of 80%"), from the config as read."""
    gate = analysis.accuracy_gate
    if gate is None and isinstance(results.config.get("train"), dict):
        gate = results.config["train"].get("accuracy_gate")
    return "the accuracy gate" if gate is None else f"the accuracy gate of {float(gate):.0%}"


def _trained_caveat(results: Results, analysis: Analysis) -> list[str]:
    weights = str(results.config.get("weights", ""))
    data = str(results.config.get("data", "")) or "the study's data"
    gated = [r for r in results.records if r.trained is not None]
    below = [r for r in gated if r.trained is False]
    out = []
    if weights == "random" and gated and not below:
        out.append(
            f"The models were trained from random initialisation on {data} (no pretrained "
            f"weights); every model file passed {_gate(results, analysis)}."
            " Accuracies are not comparable to the original study's ImageNet numbers."
        )
    elif weights == "random" and gated:
        out.append(
            f"The models were trained from random initialisation on {data} (no pretrained weights)."
        )
    elif weights == "random":
        out.append(
            "The models start from random (seeded) weights, not pretrained ones, and no accuracy "
            "gate was applied: accuracies and accuracy drops are not comparable to the original "
            "study's ImageNet numbers."
        )
    if below:
        per_model = pd.Series([r.model for r in below]).value_counts().sort_index()
        counts = ", ".join(f"{m}: {n}" for m, n in per_model.items())
        out.append(
            f"{len(below)} of {len(gated)} model files are below {_gate(results, analysis)} and "
            f"labelled '{NOT_TRAINED}' ({counts}): their speed is "
            "still measured (an engine's throughput depends on the graph and its zeros, not on "
            "what the weights learned), but their accuracy is meaningless."
        )
    return out


def caveats(results: Results, analysis: Analysis) -> list[str]:
    """What these data cannot say, as sentences for the report.

    Args:
        results: the loaded results folder.
        analysis: its statistics.

    Returns:
        One sentence per limitation (empty when none applies).
    """
    out = []
    if len(analysis.machines) == 1:
        out.append(
            f"All measurements come from a single machine ({analysis.machines[0]}): these results "
            "say nothing about other CPUs (other vendors, ISA extensions, core counts or caches)."
        )
    config = results.config
    preset = str(config.get("name", ""))
    if preset in _QUICK_PRESETS:
        out.append(
            f"These results come from the `{preset}` preset: short benchmark runs, small "
            "training budgets; use them to check the pipeline, not as the study's answer."
        )
    out += _trained_caveat(results, analysis)
    datasets = set(results.manifest.get("accuracy_dataset", pd.Series(dtype=str)).dropna())
    if str(config.get("data", "")) == "digits" or any("digits" in str(d) for d in datasets):
        out.append("Training and accuracy use scikit-learn's 8×8 digits (upsampled), not ImageNet.")
    kernels = kernel_sentence(analysis)
    if kernels and any(r.channel == "quantizer" for r in analysis.channels):
        out.append(
            "The quantizer B mostly measures graph-format support, not quantization quality: "
            f"{kernels} (engine_settings of the int8 rows)."
        )
    sparse = sparse_weights_sentence(analysis)
    if sparse:
        out.append(sparse)
    if not config:
        out.append(
            "config.yaml is missing: the preset, the stopping rule and the margin are unknown."
        )
    elif results.study_config is None:
        out.append(f"The channel analysis is missing: {results.config_problem}.")
    return out


def _software(results: Results) -> list[str]:
    lines = []
    for machine in sorted(results.environment):
        info = results.environment[machine]
        packages = info.get("packages") if isinstance(info, dict) else None
        if isinstance(packages, dict) and packages:
            listed = ", ".join(f"{k} {packages[k] or 'absent'}" for k in sorted(packages))
            extra = f"; Python {info['python']}" if info.get("python") else ""
            extra += f"; git commit {info['git_commit']}" if info.get("git_commit") else ""
            lines.append(f"- Software on `{machine}` (environment.json): {listed}{extra}.")
    for machine in sorted(results.environment):
        info = results.environment[machine]
        floors = info.get("noise_floors") if isinstance(info, dict) else None
        if floors:
            cvs = [float(f["cv"]) for f in floors]
            f = floors[-1]
            lines.append(
                f"- Noise floor of `{machine}` (study.bench.noise: a fixed {f['workload']}, no engine, "
                f"timed in trials of {f['trial_seconds']:g} s on {f['threads']} thread(s) before "
                f"benchmarking): per-trial CV {np.median(cvs):.1%} (median of {len(cvs)} probe(s), "
                f"range {min(cvs):.1%}–{max(cvs):.1%}). No cell can be measured more precisely "
                "than the machine itself varies."
            )
    return lines


def _design(ok: pd.DataFrame) -> str:
    blocked = ok[ok["block"].astype(str).ne("") & ~ok["block"].astype(str).str.startswith("cell:")]
    if blocked.empty:
        return (
            "- Design: the rows carry no blocks (written before schema version 3): every contrast "
            "below is the unpaired Welch-Satterthwaite one."
        )
    per = blocked.groupby(["machine", "block"]).agg(
        cells=("cell", "nunique"), rounds=("round", "nunique")
    )
    return (
        f"- Design (blocked, study.bench): every cell of one architecture and scenario belongs to "
        f"one block ({len(per)} block(s): {', '.join(sorted(per.index.get_level_values('block')))})."
        " A block's cells are loaded together and measured in rounds: each round times every live "
        "cell once in a seeded random order, and odd rounds run the previous round's order "
        "reversed (counterbalanced: a linear drift within a pair of rounds hits every cell "
        f"equally). Cells per block: {per['cells'].min()}–{per['cells'].max()}; rounds per "
        f"block: {per['rounds'].min()}–{per['rounds'].max()}."
    )


def _statistics(analysis: Analysis) -> str:
    arch = [r for r in analysis.channels if r.model != "pooled" and r.method]
    unpaired = sum(r.method == "unpaired" for r in arch)
    pooled = [r for r in analysis.channels if r.model == "pooled"]
    ks = sorted({r.k for r in pooled})
    compared = pd.concat(list(analysis.comparisons.values())) if analysis.comparisons else None
    eng = (
        ""
        if compared is None
        else (
            f"; {int((compared['method'] == 'unpaired').sum())} of {len(compared)} engine comparisons"
        )
    )
    return (
        "- Statistics (study.stats): each cell's throughput is the geometric mean of its trials "
        "with a Student-t 95% interval on log throughput (no bootstrap at these trial counts). "
        "Every ratio (engine vs engine, pruned vs dense, int8 vs fp32, OpenVINO's precisions, B) "
        "is a contrast of log throughput paired by round: d_r = Σ w_c log x_{c,r} over the rounds "
        "in which every cell involved has an ok trial; estimate mean(d_r), SE sd(d_r)/√R, "
        "t(R − 1). Cells measured in no common block fall back to the unpaired Welch-"
        f"Satterthwaite contrast, labelled 'unpaired' (here: {unpaired} of {len(arch)} "
        f"per-architecture B's{eng}). B's are pooled over architectures with equal weights "
        f"(the mean over architectures, Satterthwaite dof) below k = {RANDOM_EFFECTS_MIN_K} and random effects "
        f"(DerSimonian-Laird + HKSJ) from k = {RANDOM_EFFECTS_MIN_K} (here k = "
        f"{', '.join(map(str, ks)) or '–'}). Declared in config.yaml `analysis`: margin "
        f"±{analysis.margin:.0%}, confidence {analysis.confidence:.0%}; TOST at ±margin ('no bias "
        "larger than the margin') and the one-sided test of B ≥ 1 + margin ('could this channel "
        "explain a gap of the margin or more?'), each at level 1 − confidence; the minimum "
        "detectable effect (MDE, 80% power, two-sided) beside every B; Holm across the family of "
        f"pooled B's ({len(pooled)} tests), and across architectures within each engine "
        "comparison."
    )


def _timings(results: Results) -> list[str]:
    t = results.timings
    if t is None or t.empty or not {"stage", "seconds"} <= set(t.columns):
        return []
    kind = t["stage"].astype(str).str.split().str[0]
    totals = t.assign(kind=kind).groupby("kind", sort=False)["seconds"].agg(["count", "sum"])
    listed = ", ".join(
        f"{k} {row['sum']:.1f} s ({int(row['count'])} run(s))" for k, row in totals.iterrows()
    )
    return [
        f"- Time per stage (timings.csv; reused stages count 0): {listed}; total {t['seconds'].sum() / 60:.1f} min."
    ]


def _steal(results: Results, ok: pd.DataFrame) -> list[str]:
    steal = ok["cpu_steal"].astype(float).dropna() if "cpu_steal" in ok else pd.Series(dtype=float)
    if steal.empty:
        lines = ["- CPU steal: not recorded (results written before schema version 2)."]
    else:
        lines = [
            f"- CPU steal during timed trials: mean {steal.mean():.1%}, median {steal.median():.1%}, "
            f"max {steal.max():.1%}; {(steal > 0.05).mean():.0%} of trials above 5% (the share of "
            "CPU time the hypervisor gave other guests, read per trial; 0 on bare metal)."
        ]
    rejected = int((results.bench["status"] == "rejected").sum())
    limit = (results.config.get("bench") or {}).get("max_cpu_steal")
    if rejected or limit is not None:
        lines.append(
            f"- Trials rejected for CPU steal above `max_cpu_steal` = {limit} and repeated: "
            f"{rejected} (kept in bench.jsonl, left out of every statistic above and below)."
        )
    return lines


def _replication(bench: pd.DataFrame) -> list[str]:
    """A methods line when some cells were measured in more than one run (study.replication)."""
    summaries = [replication_summary(replication_tests(bench, lv), lv) for lv in LEVELS]
    if summaries[0].tests == 0:
        return []
    said = {"cell": "cell throughput", "ratio": "engine ratios"}
    parts = [
        f"{said[s.level]}: {s.rejected:.1%} of {s.tests} pairs of runs differed at p < 0.05 (the "
        f"CIs would have to be {s.inflation:.2f}x as wide to cover them)"
        for s in summaries
        if s.tests
    ]
    return [
        f"- Replication across runs (study.replication; Welch tests between runs, 5% expected if "
        f"each run's CIs held for the others): {summaries[0].units} cells were measured in more "
        f"than one run ({summaries[0].runs} runs); " + "; ".join(parts) + "."
    ]


def _plain(value: object) -> str:
    """A config value as text: lists comma-separated, mappings as ``key: value; ...``."""
    if isinstance(value, dict):
        return "; ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(map(_plain, value)) or "none"
    return str(value)


def _preset(results: Results) -> list[str]:
    config = results.config
    lines = [f"- Preset `{key}`: {_plain(config[key])}." for key in _PRESET_KEYS if key in config]
    if "int8_models" in config and not config["int8_models"]:  # empty: every architecture
        lines = [
            line.replace("`int8_models`: none.", "`int8_models`: all models.") for line in lines
        ]
    train = config.get("train")
    if isinstance(train, dict) and "accuracy_gate" in train:
        lines.append(f"- Accuracy gate (`train.accuracy_gate`): {train['accuracy_gate']}.")
    bench = config.get("bench")
    if isinstance(bench, dict) and bench:
        rule = "; ".join(f"`{k}` = {bench[k]}" for k in sorted(bench))
        lines.append(f"- Stopping rule and benchmark settings (config.yaml `bench`): {rule}.")
    else:
        lines.append("- Stopping rule: not recorded (no `bench` section in config.yaml).")
    return lines


def _isa_paths(results: Results, ok: pd.DataFrame) -> list[str]:
    """One sentence per machine, ISA level and engine on the instruction-set path it ran."""
    from study.analysis.isa_paths import engine_paths, path_sentences

    sentences = path_sentences(engine_paths(ok)) if "engine_settings" in ok else []
    lines = [f"- ISA path (the engine's own report): {t}" for t in sentences]
    skipped = results.root / "skipped.jsonl"
    if skipped.is_file():
        from study.records.jsonl import read_jsonl

        for k in read_jsonl(skipped):
            where = f" on {k['model']}" if k.get("model") else ""
            lines.append(f"- Not measured: {k['what']}{where}: {k['reason']}.")
    return lines


def methods_section(results: Results, analysis: Analysis, cpu: Table) -> list[str]:
    """The methods: machines, software, noise floor, design, repetitions, steal, statistics."""
    ok, cells = analysis.ok, analysis.cells
    lines = [
        "## Methods",
        "",
        f"- Machines ({len(analysis.machines)}): {', '.join(analysis.machines)}.",
    ]
    lines += _software(results)
    for engine in analysis.engines:
        versions = values(ok.loc[ok["engine"] == engine, "engine_version"].replace("", np.nan))
        lines.append(f"- Engine `{engine}`: version {versions}.")
    lines += _isa_paths(results, ok)
    lines.append(
        f"- Threads: {values(ok['threads'])}; batch size: {values(ok['batch_size'])}; "
        f"scenario: {values(ok['scenario'])}."
    )
    lines.append(
        f"- Precision: {values(ok['precision'])} (`f32` everywhere is the fair default; "
        "`default` is OpenVINO's own default precision and `f32-sparse` its sparse-weights "
        "decompression: the precision ablation)."
    )
    lines.append(_design(ok))
    n = cells["n_trials"]
    lines.append(
        f"- Repetitions: {len(cells)} cells, {int(n.sum())} timed trials, "
        f"{int(n.min())}–{int(n.max())} trials per cell (median {float(n.median()):g})."
    )
    lines += _steal(results, ok) + _replication(results.bench) + _timings(results)
    lines += _preset(results) + [_statistics(analysis)]
    return lines + ["", "### Machines", "", cpu.caption, "", to_markdown(cpu)]
