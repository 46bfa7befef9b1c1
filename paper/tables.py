"""The paper's tables: built as numeric DataFrames, written as Markdown and LaTeX.

Tables: the original study's Table 1 (accuracy) and Table 2 (gzip sizes), the CPU table, the
throughput table with CIs and the toolchain-bias table. Every builder sorts its rows, so the same
results always give the same files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from study.stats import BiasResult

__all__ = [
    "Table",
    "accuracy_table",
    "bias_result_table",
    "cpu_table",
    "size_table",
    "throughput_table",
    "to_latex",
    "to_markdown",
    "write_table",
]

_VARIANT_KEYS = ["machine", "model", "pruner", "exporter", "sparsity"]


def _with_machine(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest with a ``machine`` column (``extra["machine"]`` after a merge, else "")."""
    extra = manifest["extra"] if "extra" in manifest else pd.Series([{}] * len(manifest))
    machine = [e.get("machine", "") if isinstance(e, dict) else "" for e in extra]
    return manifest.assign(machine=machine)


@dataclass(frozen=True)
class Table:
    """One table of the paper."""

    name: str  # file stem, e.g. "table1_accuracy"
    caption: str  # one sentence saying what the table shows
    frame: pd.DataFrame  # the numbers, one row per table row, columns in display order
    # column -> str.format spec, e.g. "{:.2f}"; other columns are written with str()
    formats: dict[str, str] = field(default_factory=dict)


def _format_cell(value: Any, spec: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if spec is not None:
        return spec.format(value)
    return str(value)


def _formatted(table: Table) -> list[list[str]]:
    return [
        [_format_cell(row[col], table.formats.get(col)) for col in table.frame.columns]
        for _, row in table.frame.iterrows()
    ]


def to_markdown(table: Table) -> str:
    """Render ``table`` as a GitHub-flavoured Markdown table (numbers right-aligned).

    Args:
        table: the table.

    Returns:
        The Markdown text, ending in a newline.

    Example:
        >>> t = Table("t", "c", pd.DataFrame({"a": [1.5]}), {"a": "{:.1f}"})
        >>> print(to_markdown(t), end="")
        | a |
        | ---: |
        | 1.5 |
    """
    frame = table.frame
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
    lines += ["| " + " | ".join(cells).replace("\n", " ") + " |" for cells in _formatted(table)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "±": r"$\pm$",
    "×": r"$\times$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """Render ``table`` as a booktabs LaTeX ``table`` environment with caption and label.

    Args:
        table: the table.

    Returns:
        The LaTeX text, ending in a newline.
    """
    frame = table.frame
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{_latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_escape(c) for c in cells) + r" \\" for cells in _formatted(table)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """Write ``table`` as ``<name>.md`` and ``<name>.tex`` under ``out_dir``.

    Args:
        table: the table.
        out_dir: folder; created when missing.

    Returns:
        The two written paths (Markdown first).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{table.name}.md"
    md.write_text(f"{table.caption}\n\n{to_markdown(table)}", encoding="utf-8")
    tex = out_dir / f"{table.name}.tex"
    tex.write_text(to_latex(table), encoding="utf-8")
    return [md, tex]


def _drop_empty_machine(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the machine column of a single-machine manifest (where it is empty)."""
    return frame if frame["machine"].astype(bool).any() else frame.drop(columns="machine")


def _dense_reference(manifest: pd.DataFrame, column: str) -> pd.Series:
    """For each manifest row, ``column`` of the dense model of the same architecture.

    The dense file of the same exporter is preferred; otherwise the torch-exported dense file.
    """
    dense = manifest[manifest["pruner"] == "none"]
    by_exporter = dense.groupby(["machine", "model", "exporter"])[column].first()
    torch_dense = dense[dense["exporter"] == "torch"].groupby(["machine", "model"])[column].first()

    def lookup(row: pd.Series) -> float:
        key = (row["machine"], row["model"], row["exporter"])
        if key in by_exporter.index:
            return by_exporter[key]
        return torch_dense.get((row["machine"], row["model"]), math.nan)

    return manifest.apply(lookup, axis=1)


def accuracy_table(manifest: pd.DataFrame) -> Table:
    """Table 1 of the original study: accuracy of every model variant and its drop vs dense.

    Args:
        manifest: ``models/manifest.jsonl`` as a DataFrame (ModelRecord columns).

    Returns:
        The table; accuracy and its drop in percentage points.
    """
    frame = _with_machine(manifest).sort_values(_VARIANT_KEYS).reset_index(drop=True)
    accuracy = frame["accuracy"].astype(float) * 100
    drop = _dense_reference(frame, "accuracy").astype(float) * 100 - accuracy
    out = pd.DataFrame(
        {
            "machine": frame["machine"],
            "model": frame["model"],
            "pruner": frame["pruner"],
            "exporter": frame["exporter"],
            "target sparsity": frame["sparsity"].astype(float),
            "measured sparsity": frame["measured_sparsity"].astype(float),
            "top-1 accuracy (%)": accuracy,
            "drop vs dense (pp)": drop,
            "dataset": frame["accuracy_dataset"],
        }
    )
    out = _drop_empty_machine(out)
    fmt = {"target sparsity": "{:.2f}", "measured sparsity": "{:.4f}"}
    fmt |= {"top-1 accuracy (%)": "{:.2f}", "drop vs dense (pp)": "{:.2f}"}
    caption = "Table 1. Top-1 accuracy of each model variant and its drop vs the dense model."
    return Table("table1_accuracy", caption, out, fmt)


def size_table(manifest: pd.DataFrame) -> Table:
    """Table 2 of the original study: gzip -9 sizes of dense vs pruned ONNX files.

    Args:
        manifest: ``models/manifest.jsonl`` as a DataFrame.

    Returns:
        The table; sizes in bytes, reduction = dense gzip size / pruned gzip size.
    """
    frame = _with_machine(manifest).sort_values(_VARIANT_KEYS).reset_index(drop=True)
    frame = frame.assign(dense_gzip=_dense_reference(frame, "gzip_bytes"))
    frame = frame[frame["pruner"] != "none"].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "machine": frame["machine"],
            "model": frame["model"],
            "pruner": frame["pruner"],
            "exporter": frame["exporter"],
            "sparsity": frame["sparsity"].astype(float),
            "raw (bytes)": frame["raw_bytes"].astype(int),
            "dense gzip (bytes)": frame["dense_gzip"],
            "pruned gzip (bytes)": frame["gzip_bytes"].astype(int),
            "reduction (×)": frame["dense_gzip"] / frame["gzip_bytes"].astype(float),
        }
    )
    out = _drop_empty_machine(out)
    fmt = {"sparsity": "{:.2f}", "dense gzip (bytes)": "{:.0f}", "reduction (×)": "{:.2f}"}
    caption = "Table 2. Size of the ONNX files after gzip -9, dense vs pruned, and the reduction."
    return Table("table2_gzip_sizes", caption, out, fmt)


# Hardware fields (study.hardware.Hardware) in table order; other fields follow, sorted.
_CPU_ORDER = ("cpu_model", "microarchitecture", "vendor", "physical_cores", "logical_cpus")
_CPU_ORDER += (
    "max_mhz",
    "l1d_bytes",
    "l1i_bytes",
    "l2_bytes",
    "l3_bytes",
    "isa",
    "hypervisor",
    "os",
)
# Software and identity fields: reported in the methods, not in the CPU table.
_CPU_SKIP = (
    "machine",
    "packages",
    "git_commit",
    "family",
    "model_number",
    "kernel",
    "python",
    "noise_floors",  # in the report's methods
)


def _bytes(value: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size and value % (size // 16) == 0:
            return f"{value / size:g} {unit}"
    return f"{value} B"


def _cpu_value(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        if all(isinstance(v, bool) for v in value.values()):  # e.g. ISA flag -> present
            return ", ".join(k for k in sorted(value) if value[k]) or "none"
        return ", ".join(f"{k}: {_cpu_value(k, value[k])}" for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if key.endswith("_bytes") and isinstance(value, int) and not isinstance(value, bool):
        return _bytes(value)
    return _format_cell(value, None)


def cpu_table(environment: dict[str, dict[str, Any]]) -> Table:
    """The CPU table: one row per machine, one column per recorded hardware property.

    Package versions, the git commit and the Python version go to the report's methods instead.

    Args:
        environment: ``environment.json``: ``{machine_id: study.hardware.Hardware as a dict}``.

    Returns:
        The table (machines sorted; ISA flags listed when present; cache sizes in KiB/MiB).

    Example:
        >>> cpu_table({"m1": {"cpu_model": "EPYC", "l2_bytes": 1 << 20}}).frame.iloc[0].tolist()
        ['m1', 'EPYC', '1 MiB']
    """
    rows = []
    for machine in sorted(environment):
        info = environment[machine] if isinstance(environment[machine], dict) else {}
        keys = [k for k in _CPU_ORDER if k in info]
        keys += sorted(k for k in info if k not in _CPU_ORDER and k not in _CPU_SKIP)
        row = {"machine": machine}
        row |= {k.removesuffix("_bytes"): _cpu_value(k, info[k]) for k in keys}
        rows.append(row)
    frame = pd.DataFrame(rows).fillna("–") if rows else pd.DataFrame({"machine": []})
    caption = "CPUs the benchmark ran on (from environment.json)."
    return Table("table_cpu", caption, frame, {})


def throughput_table(cells: pd.DataFrame) -> Table:
    """Throughput of every benchmark cell with its bootstrap confidence interval.

    Args:
        cells: ``study.stats.cell_table`` of the trial rows (one row per cell).

    Returns:
        The table (img/s; one row per cell).

    Example:
        >>> throughput_table(cell_table(bench))  # doctest: +SKIP
    """
    keys = ["machine", "model", "pruner", "exporter", "sparsity", "engine", "precision"]
    keys += ["scenario", "batch_size", "threads"]
    cells = cells.sort_values(keys).reset_index(drop=True)
    out = cells[keys + ["n_trials", "throughput", "ci_low", "ci_high"]].rename(
        columns={
            "batch_size": "batch",
            "n_trials": "trials",
            "throughput": "throughput (img/s)",
            "ci_low": "95% CI low",
            "ci_high": "95% CI high",
        }
    )
    fmt = {"sparsity": "{:.2f}", "throughput (img/s)": "{:.2f}"}
    fmt |= {"95% CI low": "{:.2f}", "95% CI high": "{:.2f}"}
    caption = "Throughput per benchmark cell: mean of trials with a 95% bootstrap CI (img/s)."
    return Table("table_throughput", caption, out, fmt)


def bias_result_table(results: Iterable[BiasResult], name: str = "table_bias") -> Table:
    """The toolchain-bias table: B with CI, test of B = 1 and the TOST equivalence verdict.

    Args:
        results: bias results from ``study.stats.toolchain_bias`` (any factor).
        name: file stem.

    Returns:
        The table, one row per result, in the order given.
    """
    rows = [
        {
            "factor": r.factor,
            "machine": r.machine,
            "model": r.model,
            "held": r.held,
            "sparsity": r.sparsity,
            "levels (a / b)": f"{r.level_a} / {r.level_b}",
            "engines (num / den)": f"{r.numerator} / {r.denominator}",
            "B": r.estimate,
            "95% CI low": r.ci_low,
            "95% CI high": r.ci_high,
            "p (B = 1)": r.pvalue,
            "TOST p": r.tost.pvalue,
            "margin (±)": r.margin,
            "equivalent": bool(r.equivalent),
            "trials": int(r.n_trials),
            "note": r.note,
        }
        for r in results
    ]
    columns = ["factor", "machine", "model", "held", "sparsity", "levels (a / b)"]
    columns += ["engines (num / den)", "B", "95% CI low", "95% CI high", "p (B = 1)", "TOST p"]
    columns += ["margin (±)", "equivalent", "trials", "note"]
    frame = pd.DataFrame(rows, columns=columns)
    fmt = {"sparsity": "{:.2f}", "B": "{:.3f}", "95% CI low": "{:.3f}", "95% CI high": "{:.3f}"}
    fmt |= {"p (B = 1)": "{:.3g}", "TOST p": "{:.3g}", "margin (±)": "{:.0%}"}
    caption = (
        "Toolchain bias B = (num/den throughput on level a) / (num/den on level b), with a 95% CI, "
        "the test of B = 1 and the TOST equivalence test against the margin."
    )
    return Table(name, caption, frame, fmt)
