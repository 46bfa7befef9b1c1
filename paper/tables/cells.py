"""The CPU table (one row per machine) and the throughput table (one row per benchmark cell)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from paper.analysis import Analysis
from paper.tables.render import Table, format_cell

__all__ = ["cpu_table", "throughput_table"]

# Hardware fields (study.bench.hardware.Hardware) in table order; other fields follow, sorted.
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
    return format_cell(value, None)


def cpu_table(environment: dict[str, dict[str, Any]]) -> Table:
    """The CPU table: one row per machine, one column per recorded hardware property.

    Package versions, the git commit and the Python version go to the report's methods instead.

    Args:
        environment: ``environment.json``: ``{machine_id: study.bench.hardware.Hardware as a dict}``.

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


def throughput_table(analysis: Analysis) -> Table:
    """Throughput of every benchmark cell: geometric mean of its trials with a t 95% CI.

    Args:
        analysis: the statistics (``cells``: ``study.stats.cell_table`` of the run's trials).

    Returns:
        The table (img/s; one row per cell; variants named by ``study.analysis.summary.variant_label``,
        "(not trained)" below the accuracy gate).

    Example:
        >>> throughput_table(analyse(load_results("results/quick")))  # doctest: +SKIP
    """
    keys = ["machine", "model", "pruner", "profile", "mask", "quant", "exporter", "sparsity"]
    keys += ["engine", "precision", "scenario", "batch_size", "threads", "isa"]
    cells = analysis.cells.sort_values(keys).reset_index(drop=True)
    labels = [analysis.label(row, row["machine"]) for row in cells.to_dict("records")]
    out = cells.assign(variant=labels)[
        ["machine", "model", "variant", "sparsity", "engine", "precision", "scenario"]
        + ["batch_size", "threads", "isa", "n_trials", "throughput", "ci_low", "ci_high"]
    ].rename(
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
    caption = (
        "Throughput per benchmark cell (img/s): geometric mean of the trials, t 95% CI on log "
        "throughput."
    )
    return Table("table_throughput", caption, out, fmt)
