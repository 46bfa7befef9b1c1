"""The light record keeping of a results folder: the model manifest, failures, and JSONL files.

No torch here: ``study.compare`` imports this at start-up, and so does every benchmark worker
process it spawns (multiprocessing re-imports the main module).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from study.schema import LayerZeros, ModelRecord

__all__ = ["MANIFEST", "Failure", "append_jsonl", "read_jsonl", "read_manifest", "onnx_name"]

log = logging.getLogger(__name__)

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


def append_jsonl(path: Path, row: dict) -> None:
    """Append one JSON line with a single write on an O_APPEND descriptor, then fsync.

    A crash leaves every earlier line intact; at worst the last line is truncated, which readers skip.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(row, default=_json_default, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(obj):
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file, skipping (with a warning) a truncated last line left by a crash."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                log.warning("%s: skipping a truncated last line (interrupted write)", path)
            else:
                raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def read_manifest(out: Path) -> list[ModelRecord]:
    """The ModelRecords of a results folder whose ONNX files still exist."""
    records = []
    for row in read_jsonl(out / MANIFEST):
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
