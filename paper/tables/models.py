"""Tables of the model files: accuracy (Table 1), gzip sizes (Table 2) and mask structure."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from paper.analysis import Analysis
from paper.tables.render import Table
from study.analysis.summary import variant_label
from study.records.schema import ModelRecord

__all__ = ["DIAGNOSTICS", "accuracy_table", "datasets", "diagnostics_table", "size_table"]

# The per-model mask diagnostics (study.make.diagnostics) shown, with their column headings.
DIAGNOSTICS = {
    "cv_nonzeros_per_out_channel": "CV of non-zeros per output channel",
    "zero_filters": "zero filters",
    "zero_input_channels": "zero input channels",
    "zero_blocks_1x4": "zero 1x4 blocks",
}


def _machines(manifest: pd.DataFrame) -> list[str]:
    """``extra["machine"]`` of each manifest row (set by a merge), else ""."""
    extra = manifest["extra"] if "extra" in manifest else pd.Series([{}] * len(manifest))
    return [str(e.get("machine", "")) if isinstance(e, dict) else "" for e in extra]


def _drop_empty_machine(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the machine column of a single-machine manifest (where it is empty)."""
    return frame if frame["machine"].astype(bool).any() else frame.drop(columns="machine")


def datasets(accuracy: pd.DataFrame) -> str:
    """The accuracy datasets named in the table, e.g. "sklearn-digits (held-out 20%)"."""
    names = sorted({str(d) for d in accuracy["dataset"].dropna() if str(d)})
    return ", ".join(names) or "an unrecorded dataset"


def accuracy_table(analysis: Analysis) -> Table:
    """Table 1 of the original study: top-1 of every variant, its drop vs dense, the gate's label.

    The numbers are ``study.analysis.summary.accuracy_table``'s (those of summary.md): accuracy on the
    dataset each record names, the drop from the dense model of the same architecture in
    points, and "not trained" for a model below the preset's accuracy gate.

    Args:
        analysis: the statistics (``accuracy`` must be set: the manifest is present).

    Returns:
        The table, in manifest order (the order the study made the variants in).

    Raises:
        ValueError: ``analysis.accuracy`` is None (no manifest).
    """
    acc = analysis.accuracy
    if acc is None:
        raise ValueError("`analysis.accuracy` is None: the results folder has no manifest")
    out = pd.DataFrame(
        {
            "machine": acc["machine"],
            "model": acc["model"],
            "variant": acc["variant"],
            "exporter": acc["exporter"],
            "target sparsity": acc["sparsity"].astype(float),
            "measured sparsity": acc["measured_sparsity"].astype(float),
            "top-1 accuracy (%)": acc["accuracy"].astype(float) * 100,
            "drop vs dense (pp)": acc["drop_pp"].astype(float),
            "trained": acc["trained"],
        }
    )
    out = _drop_empty_machine(out)
    fmt = {"target sparsity": "{:.2f}", "measured sparsity": "{:.4f}"}
    fmt |= {"top-1 accuracy (%)": "{:.2f}", "drop vs dense (pp)": "{:.2f}"}
    gate = analysis.accuracy_gate
    rule = (
        f"; 'not trained': below the declared accuracy gate of {gate:.0%}"
        if gate is not None
        else "; no accuracy gate declared"
    )
    caption = (
        f"Table 1. Top-1 accuracy on {datasets(acc)} of each model variant and its drop vs the "
        f"dense model{rule}."
    )
    return Table("table1_accuracy", caption, out, fmt)


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


def size_table(manifest: pd.DataFrame) -> Table:
    """Table 2 of the original study: gzip sizes of dense vs pruned ONNX files (the level used,
    ``extra["gzip_level"]``, 9 before it was recorded, is in the caption).

    Args:
        manifest: ``models/manifest.jsonl`` as a DataFrame (ModelRecord columns).

    Returns:
        The table; sizes in bytes, reduction = dense gzip size / pruned gzip size.
    """
    frame = manifest.assign(machine=_machines(manifest)).reset_index(drop=True)
    frame = frame.assign(dense_gzip=_dense_reference(frame, "gzip_bytes"))
    frame = frame[frame["pruner"] != "none"].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "machine": frame["machine"],
            "model": frame["model"],
            "variant": [variant_label(r) for r in frame.to_dict("records")],
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
    levels = sorted(
        {int(e.get("gzip_level", 9)) for e in frame.get("extra", []) if isinstance(e, dict)} or {9}
    )
    used = "/".join(f"-{lv}" for lv in levels)
    caption = (
        f"Table 2. Size of the ONNX files after gzip {used}, dense vs pruned, and the reduction."
    )
    return Table("table2_gzip_sizes", caption, out, fmt)


def diagnostics_table(records: Iterable[ModelRecord]) -> Table:
    """Mask structure per model (``diagnostics["model"]``: numel-weighted means over layers).

    One row per torch-exported pruned file (the diagnostics come from the torch model, so the
    SparseML export of the same weights repeats them).

    Args:
        records: the manifest's records.

    Returns:
        The table, in manifest order (empty when no record carries diagnostics).
    """
    rows = []
    for r in records:
        d = (r.diagnostics or {}).get("model")
        if not d or r.exporter != "torch":
            continue
        row = {"machine": str(r.extra.get("machine", "")), "model": r.model}
        row |= {"variant": variant_label(r), "sparsity": float(d.get("sparsity", math.nan))}
        row |= {label: float(d.get(key, math.nan)) for key, label in DIAGNOSTICS.items()}
        rows.append(row)
    columns = ["machine", "model", "variant", "sparsity", *DIAGNOSTICS.values()]
    frame = _drop_empty_machine(pd.DataFrame(rows, columns=columns))
    fmt = {c: "{:.3f}" for c in ("sparsity", *DIAGNOSTICS.values())}
    caption = (
        "Mask structure per model (numel-weighted means over the prunable layers): how unevenly "
        "the surviving weights spread over output channels (CV), and the shares of filters, "
        "input channels and 1x4 blocks (along input channels) that are entirely zero."
    )
    return Table("table_mask_structure", caption, frame, fmt)
