"""The light record keeping of a results folder: the model manifest, failures, and JSONL files.

No torch here: ``study.compare`` imports this at start-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from study.records.jsonl import read_jsonl
from study.records.schema import LayerZeros, ModelRecord

__all__ = [
    "MANIFEST",
    "OPPROFILE",
    "SKIPPED",
    "Failure",
    "Skip",
    "read_manifest",
    "record_from_row",
    "record_skips",
    "sha256_file",
]

MANIFEST = Path("models") / "manifest.jsonl"
SKIPPED = "skipped.jsonl"
OPPROFILE = "opprofile.json"  # per-operator profiles (study.analysis.opprofile)


@dataclass(frozen=True)
class Failure:
    """Something that failed and was skipped, with its reason (written to failures.jsonl)."""

    stage: str  # "train", "export", "sensitivity", "bench", ...
    model: str
    reason: str
    pruner: str = ""
    exporter: str = ""
    engine: str = ""


@dataclass(frozen=True)
class Skip:
    """Cells left out because on this CPU they could not differ from cells that are measured."""

    what: str  # the cells, e.g. "openvino precision=default" or "isa=avx2"
    model: str  # architecture ("" when it applies to every one)
    reason: str  # why they could not differ, naming the CPU flags
    machine: str = ""  # machine id (study.bench.hardware)


def record_skips(out: Path, skips: list[Skip]) -> None:
    """Append to ``skipped.jsonl`` the skips it does not hold yet (a resumed run adds none)."""
    from dataclasses import asdict

    from study.records.jsonl import append_jsonl

    seen = {tuple(sorted(r.items())) for r in read_jsonl(out / SKIPPED, missing_ok=True)}
    new = [asdict(s) for s in skips if tuple(sorted(asdict(s).items())) not in seen]
    if new:
        append_jsonl(out / SKIPPED, new)


def record_from_row(row: dict) -> ModelRecord:
    """One manifest row (a dict from JSON) as a ModelRecord, of any schema version.

    Rows before schema version 3 had no variant columns: they knew uniform unstructured pruning
    and fp32 files only (see :mod:`study.records.schema`), so ``profile`` and ``mask`` follow from
    ``pruner``.

    Raises:
        TypeError: a field is unknown or missing.
    """
    row = dict(row)
    if int(row.get("schema_version", 1)) < 3:
        dense = row.get("pruner") == "none"
        row.setdefault("profile", "dense" if dense else "uniform")
        row.setdefault("mask", "none" if dense else "unstructured")
    row["layers"] = tuple(
        LayerZeros(**{**lz, "shape": tuple(lz["shape"])}) for lz in row.get("layers") or ()
    )
    row["input_shape"] = tuple(row.get("input_shape") or ())
    return ModelRecord(**row)


def read_manifest(out: Path, *, require_files: bool = True) -> list[ModelRecord]:
    """The ModelRecords of a results folder (only those whose ONNX files exist, by default)."""
    records = [record_from_row(row) for row in read_jsonl(out / MANIFEST, missing_ok=True)]
    return [r for r in records if not require_files or (out / r.onnx_path).exists()]


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
