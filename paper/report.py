"""The written report: methods from the recorded settings, results, and answers to the questions.

``report.md`` is plain Markdown (tables inline, figures as relative image links); ``report.html`` is
its rendering by the ``markdown`` package. Every number in the answers comes from the same
:class:`~paper.analysis.Analysis` as the figures and tables.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import markdown
import numpy as np
import pandas as pd

from paper.analysis import MAIN_PAIR, Analysis, first_speedup_sparsity
from paper.figures import FigureResult, bias_labels
from paper.load import Results
from paper.tables import Table, to_markdown
from study.stats import BiasResult
from study.stats.replication import LEVELS, replication_summary, replication_tests

__all__ = ["caveats", "render_html", "render_report"]

_QUICK_PRESETS = ("quick", "smoke")


def _ci(estimate: float, low: float, high: float, digits: int = 3) -> str:
    return f"{estimate:.{digits}f} (95% CI {low:.{digits}f}–{high:.{digits}f})"


def _verdict(low: float, high: float, above: str, below: str, neither: str) -> str:
    if low > 1.0:
        return above
    if high < 1.0:
        return below
    return neither


def _values(series: pd.Series) -> str:
    return ", ".join(str(v) for v in sorted(series.dropna().unique(), key=str)) or "not recorded"


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
    weights = str(config.get("weights", ""))
    if weights == "random":
        out.append(
            "The models start from random (seeded) weights, not pretrained ones: accuracies and "
            "accuracy drops are not comparable to the original study's ImageNet numbers."
        )
    datasets = set(results.manifest.get("accuracy_dataset", pd.Series(dtype=str)).dropna())
    if str(config.get("data", "")) == "digits" or "sklearn-digits" in datasets:
        out.append("Training and accuracy use scikit-learn's 8×8 digits (upsampled), not ImageNet.")
    if not config:
        out.append("config.yaml is missing: the preset and stopping rule are unknown.")
    return out


def _methods(results: Results, analysis: Analysis, cpu: Table) -> list[str]:
    ok, cells = analysis.ok, analysis.cells
    lines = ["## Methods", ""]
    lines.append(f"- Machines ({len(analysis.machines)}): {', '.join(analysis.machines)}.")
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
                f"- Noise floor of `{machine}` (study.noise: a fixed {f['workload']}, no engine, "
                f"timed in trials of {f['trial_seconds']:g} s on {f['threads']} thread(s) before "
                f"benchmarking): per-trial CV {np.median(cvs):.1%} (median of {len(cvs)} probe(s), "
                f"range {min(cvs):.1%}–{max(cvs):.1%}). No cell can be measured more precisely "
                "than the machine itself varies."
            )
    for engine in analysis.engines:
        versions = _values(ok.loc[ok["engine"] == engine, "engine_version"].replace("", np.nan))
        lines.append(f"- Engine `{engine}`: version {versions}.")
    lines.append(
        f"- Threads: {_values(ok['threads'])}; batch size: {_values(ok['batch_size'])}; "
        f"scenario: {_values(ok['scenario'])}."
    )
    lines.append(
        f"- Precision: {_values(ok['precision'])} (`f32` everywhere is the fair default; "
        "`default` is OpenVINO's own default precision, the precision ablation)."
    )
    n = cells["n_trials"]
    lines.append(
        f"- Repetitions: {len(cells)} cells, {int(n.sum())} timed trials, "
        f"{int(n.min())}–{int(n.max())} trials per cell (median {float(n.median()):g})."
    )
    steal = ok["cpu_steal"].astype(float).dropna() if "cpu_steal" in ok else pd.Series(dtype=float)
    if steal.empty:
        lines.append("- CPU steal: not recorded (results written before schema version 2).")
    else:
        lines.append(
            f"- CPU steal during timed trials: mean {steal.mean():.1%}, median {steal.median():.1%}, "
            f"max {steal.max():.1%}; {(steal > 0.05).mean():.0%} of trials above 5% (the share of "
            "CPU time the hypervisor gave other guests, read per trial; 0 on bare metal)."
        )
    rejected = int((results.bench["status"] == "rejected").sum())
    limit = (results.config.get("bench") or {}).get("max_cpu_steal")
    if rejected or limit is not None:
        lines.append(
            f"- Trials rejected for CPU steal above `max_cpu_steal` = {limit} and repeated: "
            f"{rejected} (kept in bench.jsonl, left out of every statistic above and below)."
        )
    lines += _replication(results.bench)
    bench = results.config.get("bench")
    if isinstance(bench, dict) and bench:
        rule = "; ".join(f"`{k}` = {bench[k]}" for k in sorted(bench))
        lines.append(f"- Stopping rule and benchmark settings (config.yaml `bench`): {rule}.")
    else:
        lines.append("- Stopping rule: not recorded (no `bench` section in config.yaml).")
    config = results.config
    keys = ("name", "models", "pruners", "exporters", "engines", "sweep", "precision_ablation")
    for key in keys + ("weights", "data", "seed"):
        if key in config:
            lines.append(f"- Preset `{key}`: {config[key]}.")
    lines.append(
        "- Statistics (study.stats): cell means with 95% bootstrap CIs; ratios of geometric means "
        "with Welch CIs on log throughput; Holm-adjusted p-values across engine comparisons; "
        "toolchain bias B with a two-one-sided-tests (TOST) equivalence test against its margin."
    )
    lines += ["", "### Machines", "", cpu.caption, "", to_markdown(cpu)]
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


def _q1(analysis: Analysis) -> list[str]:
    lines = ["### 1. Which engine was faster, and by how much?", ""]
    if not analysis.comparisons:
        return lines + [f"Cannot answer: {analysis.reasons.get('engines', 'no comparisons')}.", ""]
    f32 = analysis.cells[analysis.cells["precision"] == "f32"]
    group = ["machine", "model", "pruner", "exporter", "sparsity", "scenario", "batch_size"]
    winners = f32.loc[f32.groupby(group + ["threads"])["throughput"].idxmax(), "engine"]
    counts = winners.value_counts().sort_index()
    wins = ", ".join(f"`{e}` in {c}" for e, c in counts.items())
    lines.append(
        f"Fastest engine at fp32, per model file and setting ({len(winners)} in all): {wins}."
    )
    lines.append("")
    lines.append(
        "| a / b | comparisons | a faster (CI > 1) | b faster (CI < 1) | undecided | "
        "geometric mean of ratios | range |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for (a, b), frame in sorted(analysis.comparisons.items()):
        above, below = int((frame["ci_low"] > 1).sum()), int((frame["ci_high"] < 1).sum())
        gmean = float(np.exp(np.log(frame["estimate"]).mean()))
        lines.append(
            f"| {a} / {b} | {len(frame)} | {above} | {below} | {len(frame) - above - below} | "
            f"{gmean:.3f} | {frame['estimate'].min():.3f}–{frame['estimate'].max():.3f} |"
        )
    main = analysis.comparisons.get(MAIN_PAIR)
    if main is not None:
        a, b = MAIN_PAIR
        main = main[main["pruner"] != "oneshot"]
        lines += [
            "",
            f"The original study's comparison, {a} / {b} throughput (fp32), per model "
            "file (the one-shot sweep is left to question 2):",
            "",
            "| machine | model | pruner | exporter | sparsity | ratio (95% CI) | Holm p |",
            "| --- | --- | --- | --- | ---: | --- | ---: |",
        ]
        for _, r in main.sort_values(
            ["machine", "model", "pruner", "exporter", "sparsity"]
        ).iterrows():
            lines.append(
                f"| {r['machine']} | {r['model']} | {r['pruner']} | {r['exporter']} | "
                f"{r['sparsity']:.2f} | {_ci(r['estimate'], r['ci_low'], r['ci_high'])} | "
                f"{r['p_holm']:.3g} |"
            )
    return lines + [""]


def _q2(analysis: Analysis) -> list[str]:
    lines = [
        "### 2. Did pruning speed up each architecture on each engine, and from what sparsity?",
        "",
    ]
    speedup = analysis.speedup
    if speedup is None:
        return lines + [f"Cannot answer: {analysis.reasons.get('speedup')}.", ""]
    trained = speedup[speedup["pruner"].isin(["gmp", "sparseml"])]
    if "precision" in trained:
        trained = trained[trained["precision"] == "f32"]
    if len(trained):
        lines += [
            "Speed-up of the trained pruned models over the dense model (fp32):",
            "",
            "| machine | engine | model | pruner | exporter | sparsity | speed-up (95% CI) | "
            "verdict |",
            "| --- | --- | --- | --- | --- | ---: | --- | --- |",
        ]
        keys = ["machine", "engine", "model", "pruner", "exporter", "sparsity"]
        for _, r in trained.sort_values(keys).iterrows():
            verdict = _verdict(r["ci_low"], r["ci_high"], "faster", "slower", "no clear change")
            lines.append(
                f"| {r['machine']} | {r['engine']} | {r['model']} | {r['pruner']} | {r['exporter']} | "
                f"{r['sparsity']:.2f} | {_ci(r['estimate'], r['ci_low'], r['ci_high'])} | {verdict} |"
            )
        lines.append("")
    first = first_speedup_sparsity(speedup)
    if first.empty:
        return lines + [
            "No one-shot sparsity sweep was measured: the onset sparsity is unknown.",
            "",
        ]
    lines += [
        "From what sparsity (the first one-shot sweep level whose speed-up CI lies above 1):",
        "",
        "| machine | engine | model | first sparsity | speed-up there (95% CI) |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for _, r in first.iterrows():
        if math.isnan(r["first_sparsity"]):
            cell = f"none up to {r['max_sparsity']:.2f} | –"
        else:
            cell = f"{r['first_sparsity']:.2f} | {_ci(r['estimate'], r['ci_low'], r['ci_high'])}"
        lines.append(f"| {r['machine']} | {r['engine']} | {r['model']} | {cell} |")
    return lines + [""]


def _q3(analysis: Analysis) -> list[str]:
    lines = ["### 3. Does OpenVINO's win survive fixing its precision to fp32?", ""]
    prec = analysis.precision
    if prec is None:
        return lines + [f"Cannot answer: {analysis.reasons.get('precision')}.", ""]
    prec = prec[prec["pruner"] != "oneshot"]
    lines += ["Dense and trained pruned models (the one-shot sweep is left out):", ""]
    keys = [
        "machine",
        "model",
        "pruner",
        "exporter",
        "sparsity",
        "scenario",
        "batch_size",
        "threads",
    ]
    lines += [
        "| machine | model | pruner | exporter | sparsity | comparison | ratio (95% CI) |",
        "| --- | --- | --- | --- | ---: | --- | --- |",
    ]
    verdicts = []
    for key, group in prec.sort_values(keys + ["comparison"]).groupby(keys, sort=True):
        by = {r["comparison"]: r for _, r in group.iterrows()}
        for name, r in by.items():
            lines.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {key[4]:.2f} | {name} | "
                f"{_ci(r['estimate'], r['ci_low'], r['ci_high'])} |"
            )
        at_default = by.get("deepsparse f32 / openvino default")
        at_f32 = by.get("deepsparse f32 / openvino f32")
        if at_default is None or at_f32 is None:
            continue
        label = f"{key[1]} ({key[2]}, {key[3]} export, sparsity {key[4]:.2f}, {key[0]})"
        if at_default["ci_high"] >= 1.0:
            verdicts.append(("no win", f"{label}: OpenVINO at its default precision did not win."))
            continue
        kind = _verdict(at_f32["ci_low"], at_f32["ci_high"], "reversed", "survives", "unclear")
        text = {
            "reversed": "does not survive (DeepSparse faster at fp32)",
            "survives": "survives (OpenVINO still faster at fp32)",
            "unclear": "is not clear at fp32 (CI includes 1)",
        }[kind]
        ratio = _ci(at_f32["estimate"], at_f32["ci_low"], at_f32["ci_high"])
        verdicts.append(
            (kind, f"{label}: OpenVINO's win {text}; DeepSparse / OpenVINO f32 = {ratio}.")
        )
    lines.append("")
    if not verdicts:
        return lines + ["- No model file has both DeepSparse and OpenVINO rows.", ""]
    kinds = [k for k, _ in verdicts]
    wins = len(kinds) - kinds.count("no win")
    lines.append(
        f"OpenVINO at its default precision beat DeepSparse (CI below 1) on {wins} of "
        f"{len(kinds)} model files; with its precision fixed to fp32 the win survived on "
        f"{kinds.count('survives')}, was reversed on {kinds.count('reversed')} and was unclear on "
        f"{kinds.count('unclear')}."
    )
    lines.append("")
    lines += [f"- {text}" for _, text in verdicts]
    return lines + [""]


def _bias_sentence(r: BiasResult) -> str:
    ci = _ci(r.estimate, r.ci_low, r.ci_high)
    head = f"B = {ci}, p(B = 1) = {r.pvalue:.3g}, TOST p = {r.tost.pvalue:.3g}"
    if r.equivalent:
        return f"{head}: no bias larger than {r.margin:.0%} (equivalent within ±{r.margin:.0%})."
    if r.ci_low > 1.0 or r.ci_high < 1.0:
        return f"{head}: a bias (CI excludes 1); equivalence within ±{r.margin:.0%} is not shown."
    return f"{head}: inconclusive; a bias larger than {r.margin:.0%} cannot be ruled out."


def _q4(analysis: Analysis) -> list[str]:
    num, den = MAIN_PAIR
    lines = [
        "### 4. Does the pruning toolchain bias the comparison?",
        "",
        f"B = ({num}/{den} throughput on SparseML-pruned models) / ({num}/{den} on "
        "gmp-pruned models); B = 1 means no bias, B > 1 favours DeepSparse on SparseML's "
        "models.",
        "",
    ]
    for factor, label in (
        ("pruner", "Pruning toolchain"),
        ("exporter", "Exporter (SparseML vs torch)"),
    ):
        results = analysis.bias.get(factor)
        if results is None:
            lines.append(f"- {label}: cannot answer: {analysis.reasons.get('bias_' + factor)}.")
            continue
        pooled = [r for r in results if r.model == "pooled" and math.isfinite(r.estimate)]
        undefined = sum(not math.isfinite(r.estimate) for r in results)
        if undefined:
            lines.append(
                f"- {label}: {undefined} row(s) are undefined (a cell of the four is "
                "missing, e.g. a pruner exported one way only) and left out."
            )
        if not pooled:
            lines.append(f"- {label}: cannot answer: every pooled estimate is undefined.")
        for r, where in zip(pooled, bias_labels(pooled)):
            lines.append(f"- {label} ({where}, {r.k} architecture(s)): {_bias_sentence(r)}")
    return lines + [""]


def _failures(results: Results) -> list[str]:
    lines = ["## Failures", ""]
    failed_rows = int((results.bench["status"] == "failed").sum())
    lines.append(f"bench.jsonl holds {failed_rows} failure row(s).")
    if "failures.jsonl" in results.missing:
        return lines + ["", "failures.jsonl is absent.", ""]
    if not results.failures:
        return lines + ["", "failures.jsonl lists no failures.", ""]
    cols = ["stage", "model", "pruner", "exporter", "engine", "reason"]
    lines += ["", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for entry in results.failures:
        cells = [html.escape(str(entry.get(c, "") or "")).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(c.replace("\n", " ") for c in cells) + " |")
    return lines + [""]


def render_report(
    results: Results, analysis: Analysis, tables: Iterable[Table], figures: Iterable[FigureResult]
) -> str:
    """The report as Markdown.

    Args:
        results: the loaded results folder.
        analysis: its statistics.
        tables: the tables (the CPU table goes into the methods, the rest into the results).
        figures: the figure outcomes (drawn figures are linked; skipped ones are explained).

    Returns:
        The Markdown text.
    """
    tables, figures = list(tables), list(figures)
    cpu = next(t for t in tables if t.name == "table_cpu")
    lines = [
        "# CPU inference engines and pruning-toolchain bias: results",
        "",
        f"Built by `python -m paper` from the results folder `{results.root.name}`.",
        "",
    ]
    notes = caveats(results, analysis)
    lines += ["## What these data can and cannot say", ""]
    lines += [f"- {n}" for n in notes] or ["- No limitation recorded."]
    lines.append("")
    lines += _methods(results, analysis, cpu)
    lines += ["## Answers to the original questions", ""]
    lines += _q1(analysis) + _q2(analysis) + _q3(analysis) + _q4(analysis)
    lines += ["## Results", "", "### Figures", ""]
    for fig in figures:
        if fig.skipped:
            lines += [f"- **{fig.title}**: not drawn: {fig.skipped}.", ""]
        else:
            lines += [
                f"![{fig.title}](figures/{fig.name}.png)",
                "",
                f"*{fig.title}* ([SVG](figures/{fig.name}.svg))",
                "",
            ]
    lines += ["### Tables", ""]
    for table in tables:
        if table.name == "table_cpu":
            continue
        lines += [f"**{table.caption}** ([LaTeX](tables/{table.name}.tex))", "", to_markdown(table)]
    lines += _failures(results)
    return "\n".join(lines).rstrip() + "\n"


def render_html(report_md: str, title: str = "Results") -> str:
    """Render the Markdown report as a standalone HTML page.

    Args:
        report_md: the report's Markdown text.
        title: the page title.

    Returns:
        The HTML text.

    Example:
        >>> "<h1>" in render_html("# Hi")
        True
    """
    body = markdown.markdown(report_md, extensions=["tables"])
    style = (
        "body{font-family:sans-serif;max-width:72em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
        "padding:2px 6px}img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
