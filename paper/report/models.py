"""The report's model sections: accuracy of every variant, and the structure of its mask."""

from __future__ import annotations

from paper.analysis import NOT_TRAINED, Analysis
from paper.tables import Table, to_markdown
from paper.tables.models import datasets

__all__ = ["accuracy_section", "diagnostics_section"]


def accuracy_section(analysis: Analysis, table: Table | None) -> list[str]:
    """Top-1 of every variant on the named dataset, the drop from dense, the gate's label."""
    acc = analysis.accuracy
    if acc is None or table is None:
        why = analysis.reasons.get("accuracy", "no models/manifest.jsonl")
        return ["### Accuracy", "", f"Not reported: {why}.", ""]
    lines = [f"### Accuracy (top-1 of each model on {datasets(acc)})", ""]
    gate = analysis.accuracy_gate
    below = acc[acc["trained"] == NOT_TRAINED]
    if gate is not None:
        text = (
            f"Models below the declared accuracy gate of {gate:.0%} (config.yaml `train."
            f"accuracy_gate`) are labelled '{NOT_TRAINED}' here and in every table and figure "
            "that shows them: their throughput is still measured, but their accuracy says nothing "
            "about the pruning."
        )
        if len(below):
            text += f" Below the gate: {len(below)} of {len(acc)} model files."
        else:
            text += " Every model file reached it."
        lines += [text, ""]
    else:
        lines += ["No accuracy gate was declared (config.yaml `train.accuracy_gate` is null).", ""]
    return lines + [f"**{table.caption}**", "", to_markdown(table)]


def diagnostics_section(table: Table | None) -> list[str]:
    """The mask-structure table, or why there is none."""
    lines = ["### Mask structure", ""]
    if table is None or table.frame.empty:
        return lines + ["The manifest records no mask diagnostics (study.make.diagnostics).", ""]
    return lines + [
        "How each pruned model's zeros are laid out, from study.make.diagnostics (per layer: the "
        "manifest's `diagnostics.layers`). A channel whose files differ only here (profile, mask) "
        "can change an engine comparison only through these structures.",
        "",
        f"**{table.caption}**",
        "",
        to_markdown(table),
    ]
