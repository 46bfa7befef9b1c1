"""Results storage: one JSON line per :class:`~study.schema.TrialRow`, appended atomically.

Each row is written with a single ``os.write`` of the whole line to an ``O_APPEND`` descriptor and
``fsync``-ed, so a crash can at worst leave one truncated last line; readers skip such a line with a
warning. ``environment.json`` beside the rows maps machine id -> hardware (whole-file
write-temp-then-rename). Files from several runs and machines merge by concatenation.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from study.jsonl import append_jsonl, read_jsonl
from study.schema import TrialRow

__all__ = [
    "CellProgress",
    "append_rows",
    "cell_progress",
    "finished_cells",
    "ci_half_width",
    "load_environment",
    "load_results",
    "read_rows",
    "stop_reason",
    "write_csv",
    "write_environment",
]

ENVIRONMENT_FILE = "environment.json"


def append_rows(path: str | Path, rows: Iterable[TrialRow]) -> None:
    """Append rows to a JSONL file, one atomic ``os.write`` + ``fsync`` per line (see :mod:`study.jsonl`).

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


def load_results(*paths: str | Path) -> pd.DataFrame:
    """Load and merge results files or folders (searched for ``*.jsonl``) from any number of machines.

    Rows are de-duplicated on (machine, run_id, cell, trial), so overlapping inputs are harmless.
    ``engine_settings`` stays a dict column; ``machine`` is a column like any other.

    Example:
        >>> df = load_results("runs/machine-a", "runs/machine-b/bench.jsonl")  # doctest: +SKIP
        >>> df.groupby(["machine", "engine"]).throughput.mean()  # doctest: +SKIP
    """
    rows = [r for f in _result_files(paths) for r in read_rows(f)]
    columns = list(TrialRow.__dataclass_fields__)
    df = pd.DataFrame(rows, columns=None if rows else columns)
    if df.empty:
        return pd.DataFrame(columns=columns)
    return df.drop_duplicates(
        subset=["machine", "run_id", "cell", "trial"], keep="first"
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


def ci_half_width(values: Iterable[float], confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean (NaN for fewer than 2 values).

    Example:
        >>> round(ci_half_width([1.0, 2.0, 3.0]), 4)  # t(0.975, 2) * 1 / sqrt(3)
        2.4841
    """
    x = np.asarray(list(values), dtype=float)
    if x.size < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def stop_reason(
    throughputs: list[float],
    seconds_spent: float,
    *,
    target_ci: float,
    min_trials: int,
    max_trials: int,
    max_seconds: float,
    rejected: int = 0,
    rejected_seconds: float = 0.0,
) -> str | None:
    """The adaptive stopping rule of a cell: why it is finished, or None to keep measuring.

    A cell stops when (after ``min_trials``) the 95% CI half-width of its mean trial throughput is
    within ``target_ci`` of the mean, or when it reaches ``max_trials`` or ``max_seconds``. Trials
    rejected for CPU steal (``rejected`` of them, taking ``rejected_seconds`` of ``seconds_spent``)
    count toward neither cap, but ``max_trials`` rejections stop the cell too.

    Example:
        >>> stop_reason([100.0, 100.1, 99.9], 3.0, target_ci=0.01, min_trials=3, max_trials=50, max_seconds=30)
        'ci'
    """
    if rejected >= max_trials:
        return "rejected"  # the machine stayed too busy: stop with what the cell has
    n = len(throughputs)
    if n < min_trials:
        return None
    mean = float(np.mean(throughputs))
    if n >= 2 and mean > 0 and ci_half_width(throughputs) / mean <= target_ci:
        return "ci"
    if n >= max_trials:
        return "max_trials"
    if seconds_spent - rejected_seconds >= max_seconds:
        return "max_seconds"
    return None


@dataclass(frozen=True)
class CellProgress:
    """What the results already hold for one cell on one machine (for resuming)."""

    throughputs: tuple[float, ...]  # trial throughputs, in trial order
    seconds_spent: float  # harness time already spent on the cell (load, warm-up, trials)
    failed: bool  # a failure row exists
    next_trial: int  # index of the next trial
    rejected: int = 0  # trials rejected for CPU steal (repeated; see BenchSettings.max_cpu_steal)
    rejected_seconds: float = 0.0  # harness time those trials took


def cell_progress(df: pd.DataFrame, machine: str) -> dict[str, CellProgress]:
    """Per-cell progress of ``machine`` in loaded results (see :func:`load_results`)."""
    out: dict[str, CellProgress] = {}
    if df.empty:
        return out
    for cell, g in df[df["machine"] == machine].groupby("cell"):
        ok = g[g["status"] == "ok"].sort_values("trial")
        timed = g[g["status"].isin(["ok", "rejected"])]
        bench = [s.get("bench", {}) for s in timed["engine_settings"] if isinstance(s, dict)]
        out[str(cell)] = CellProgress(
            throughputs=tuple(float(v) for v in ok["throughput"]),
            seconds_spent=float(max((b.get("cell_seconds", 0.0) for b in bench), default=0.0)),
            failed=bool((g["status"] == "failed").any()),
            next_trial=int(timed["trial"].max()) + 1 if len(timed) else 0,
            rejected=int((g["status"] == "rejected").sum()),
            rejected_seconds=float(
                max((b.get("rejected_seconds", 0.0) for b in bench), default=0.0)
            ),
        )
    return out


def finished_cells(
    df: pd.DataFrame,
    machine: str,
    *,
    target_ci: float,
    min_trials: int,
    max_trials: int,
    max_seconds: float,
) -> set[str]:
    """Cells of ``machine`` that a resumed run must not redo: stopping rule met, or recorded as failed."""
    rule = {
        "target_ci": target_ci,
        "min_trials": min_trials,
        "max_trials": max_trials,
        "max_seconds": max_seconds,
    }
    return {
        cell
        for cell, p in cell_progress(df, machine).items()
        if p.failed
        or stop_reason(
            list(p.throughputs),
            p.seconds_spent,
            rejected=p.rejected,
            rejected_seconds=p.rejected_seconds,
            **rule,
        )
        is not None
    }
