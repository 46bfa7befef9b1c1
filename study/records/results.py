"""Results storage: one JSON line per :class:`~study.records.schema.TrialRow`, appended atomically; resume.

Each row is written with a single ``os.write`` of the whole line to an ``O_APPEND`` descriptor and
``fsync``-ed, so a crash can at worst leave one truncated last line; readers skip such a line with a
warning. ``environment.json`` beside the rows maps machine id -> hardware (whole-file
write-temp-then-rename). Files from several runs and machines merge by concatenation.

What a resumed benchmark must not redo is the harness's business (:mod:`study.bench.progress`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from study.records.jsonl import append_jsonl, read_jsonl
from study.records.schema import TrialRow, upgrade_trial

__all__ = [
    "ABANDONED",
    "REPLICATE_UNIT",
    "abandoned_units",
    "append_rows",
    "drop_abandoned",
    "load_environment",
    "load_results",
    "read_rows",
    "write_csv",
    "write_environment",
]

ENVIRONMENT_FILE = "environment.json"
# The status of the rows that mark a replicate as abandoned: a resumed run found it interrupted
# before its stopping rule and measured the block again in a new replicate (new processes), so
# its rows are not pooled with the new ones. Readers drop every row of such a replicate.
ABANDONED = "abandoned"
# The columns that name one replicate of one block (one set of worker processes).
REPLICATE_UNIT: tuple[str, ...] = ("machine", "run_id", "block", "replicate")


def append_rows(path: str | Path, rows: Iterable[TrialRow]) -> None:
    """Append rows to a JSONL file, one atomic ``os.write`` + ``fsync`` per line (see :mod:`study.records.jsonl`).

    Example:
        >>> append_rows("runs/bench.jsonl", rows)  # doctest: +SKIP
    """
    append_jsonl(path, (row.to_dict() for row in rows))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL results file; a truncated line from a crash is skipped with a warning.

    Raises:
        ValueError: ``path`` does not exist.
    """
    return read_jsonl(path)


def _result_files(paths: Iterable[str | Path]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.jsonl")))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"`paths` must be results files or folders; {str(p)!r} does not exist")
    return files


def abandoned_units(df: pd.DataFrame) -> set[tuple]:
    """The replicates (``machine, run_id, block, replicate``) that hold a row with status ``abandoned``."""
    if df.empty or "status" not in df.columns:
        return set()
    marked = df.loc[df["status"] == ABANDONED, list(REPLICATE_UNIT)]
    return set(marked.itertuples(index=False, name=None))


def drop_abandoned(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the rows of abandoned replicates (their marker rows included).

    Example:
        >>> rows = pd.DataFrame({"machine": "m", "run_id": "r", "block": "b", "replicate": [0, 0, 1],
        ...                      "status": ["ok", "abandoned", "ok"]})
        >>> drop_abandoned(rows)["replicate"].tolist()
        [1]
    """
    units = abandoned_units(df)
    if not units:
        return df
    keys = df[list(REPLICATE_UNIT)].itertuples(index=False, name=None)
    return df.loc[[k not in units for k in keys]]


def load_results(*paths: str | Path, abandoned: bool = False) -> pd.DataFrame:
    """Load and merge results files or folders (searched for ``*.jsonl``) from any number of machines.

    Rows of every schema version load as version 4 (:func:`study.records.schema.upgrade_trial`: older rows
    get the variant columns, a block of their own and replicate 0). The rows of a replicate a
    resumed run abandoned (see :data:`ABANDONED`) are dropped unless ``abandoned``. Rows are
    de-duplicated on (machine, run_id, replicate, cell, trial), so overlapping inputs are
    harmless. ``engine_settings`` stays a dict column; ``machine`` is a column like any other.

    Example:
        >>> df = load_results("runs/machine-a", "runs/machine-b/bench.jsonl")  # doctest: +SKIP
        >>> df.groupby(["machine", "engine"]).throughput.mean()  # doctest: +SKIP
    """
    rows = [upgrade_trial(r) for f in _result_files(paths) for r in read_rows(f)]
    columns = list(TrialRow.__dataclass_fields__)
    df = pd.DataFrame(rows, columns=None if rows else columns)
    if df.empty:
        return pd.DataFrame(columns=columns)
    if not abandoned:
        df = drop_abandoned(df)
    return df.drop_duplicates(
        subset=["machine", "run_id", "replicate", "cell", "trial"], keep="first"
    ).reset_index(drop=True)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a tidy CSV (dict columns as JSON text), atomically (temp file + rename)."""
    out = df.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (dict, list))).any():
            out[col] = out[col].map(
                lambda v: json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
            )
    _atomic_write(Path(path), out.to_csv(index=False))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_environment(folder: str | Path, machine: str, hardware: dict[str, Any]) -> Path:
    """Add/replace ``machine``'s hardware in ``folder/environment.json`` (atomic rewrite)."""
    path = Path(folder) / ENVIRONMENT_FILE
    env = json.loads(path.read_text()) if path.is_file() else {}
    env[machine] = hardware
    _atomic_write(path, json.dumps(env, indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_environment(*paths: str | Path) -> dict[str, dict[str, Any]]:
    """Merge ``environment.json`` files (machine id -> hardware) found at or beside ``paths``."""
    env: dict[str, dict[str, Any]] = {}
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        for f in [
            folder / ENVIRONMENT_FILE,
            *(q for q in folder.rglob(ENVIRONMENT_FILE) if q.parent != folder),
        ]:
            if f.is_file():
                env.update(json.loads(f.read_text()))
    return env
