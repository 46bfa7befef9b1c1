"""The light record keeping of a results folder: the model manifest, failures, and JSONL files.

No torch here: ``study.compare`` imports this at start-up, and so does every benchmark worker
process it spawns (multiprocessing re-imports the main module).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from study.jsonl import read_jsonl
from study.schema import LayerZeros, ModelRecord

__all__ = ["MANIFEST", "Failure", "read_manifest", "onnx_name", "sha256_file"]

MANIFEST = Path("models") / "manifest.jsonl"


@dataclass(frozen=True)
class Failure:
    """Something that failed and was skipped, with its reason (written to failures.jsonl)."""

    stage: str  # "train", "export", "sensitivity", "bench", ...
    model: str
    reason: str
    pruner: str = ""
    exporter: str = ""
    engine: str = ""


def read_manifest(out: Path) -> list[ModelRecord]:
    """The ModelRecords of a results folder whose ONNX files still exist."""
    records = []
    for row in read_jsonl(out / MANIFEST, missing_ok=True):
        row["layers"] = tuple(
            LayerZeros(**{**lz, "shape": tuple(lz["shape"])}) for lz in row.get("layers", ())
        )
        row["input_shape"] = tuple(row["input_shape"])
        rec = ModelRecord(**row)
        if (out / rec.onnx_path).exists():
            records.append(rec)
    return records


def onnx_name(model: str, pruner: str, exporter: str, sparsity: float) -> str:
    """Deterministic file name of one variant, e.g. ``resnet50-gmp-torch-s0.90.onnx``."""
    return f"{model}-{pruner}-{exporter}-s{sparsity:.2f}.onnx"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks); "" when there is no such file.

    Example:
        >>> sha256_file("no/such/file.onnx")
        ''
    """
    p = Path(path)
    if not p.is_file():
        return ""
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
