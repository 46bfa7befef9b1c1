"""Results storage: one JSON line per :class:`~study.schema.TrialRow`, appended atomically; resume.

Each row is written with a single ``os.write`` of the whole line to an ``O_APPEND`` descriptor and
``fsync``-ed, so a crash can at worst leave one truncated last line; readers skip such a line with a
warning. ``environment.json`` beside the rows maps machine id -> hardware (whole-file
write-temp-then-rename). Files from several runs and machines merge by concatenation.

For resuming, :func:`cell_progress` reads what the rows hold of each cell of a block, and
:func:`stop_reason` / :func:`finished_cells` apply the harness's one stopping rule
(:func:`study.bench.stopping.block_stop_reason`) to it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from study.jsonl import append_jsonl, read_jsonl
from study.schema import TrialRow, upgrade_trial

__all__ = [
    "ABANDONED",
    "REPLICATE_UNIT",
    "CellProgress",
    "abandoned_units",
    "append_rows",
    "cell_progress",
    "ci_half_width",
    "drop_abandoned",
    "finished_cells",
    "load_environment",
    "load_results",
    "read_rows",
    "stop_reason",
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

    Rows of every schema version load as version 4 (:func:`study.schema.upgrade_trial`: older rows
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


@dataclass(frozen=True)
class CellProgress:
    """What the results already hold for one cell of one block on one machine (for resuming)."""

    throughputs: tuple[float, ...]  # ok trials' throughputs, in round order
    rounds: tuple[int, ...]  # the round of each of those
    seconds_spent: float  # warm-up and trial seconds already spent on the cell
    failed: bool  # a failure row exists
    next_trial: int  # index of the next trial
    rejected: int = 0  # trials rejected for CPU steal (repeated; see BenchSettings.max_cpu_steal)
    rejected_seconds: float = 0.0  # harness time those trials took
    last_round: int = -1  # the largest round with a timed trial (ok or rejected); -1 for none

    @property
    def by_round(self) -> dict[int, float]:
        """round -> the ok trial's throughput."""
        return dict(zip(self.rounds, self.throughputs))


def cell_progress(
    df: pd.DataFrame, machine: str, block: str | None = None
) -> dict[str, CellProgress]:
    """Per-cell progress of ``machine`` in loaded results (see :func:`load_results`).

    Args:
        df: loaded results.
        machine: the machine whose rows count.
        block: only rows measured in this block count (a cell's rounds in another block do not
            pair with this block's rounds); None: every row.

    Returns:
        cell id -> its progress.
    """
    out: dict[str, CellProgress] = {}
    if df.empty:
        return out
    mine = df[df["machine"] == machine]
    if block is not None:
        mine = mine[mine["block"] == block]
    for cell, g in mine.groupby("cell"):
        ok = g[g["status"] == "ok"].sort_values(["round", "trial"])
        timed = g[g["status"].isin(["ok", "rejected"])]
        bench = [s.get("bench", {}) for s in timed["engine_settings"] if isinstance(s, dict)]
        out[str(cell)] = CellProgress(
            throughputs=tuple(float(v) for v in ok["throughput"]),
            rounds=tuple(int(r) for r in ok["round"]),
            seconds_spent=float(max((b.get("cell_seconds", 0.0) for b in bench), default=0.0)),
            failed=bool((g["status"] == "failed").any()),
            next_trial=int(timed["trial"].max()) + 1 if len(timed) else 0,
            rejected=int((g["status"] == "rejected").sum()),
            rejected_seconds=float(
                max((b.get("rejected_seconds", 0.0) for b in bench), default=0.0)
            ),
            last_round=int(timed["round"].max()) if len(timed) else -1,
        )
    return out


def stop_reason(
    progress: Mapping[str, CellProgress],
    *,
    target_ci: float,
    min_trials: int,
    max_trials: int,
    max_seconds_per_cell: float,
) -> str | None:
    """The harness's stopping rule applied to stored progress of one block's cells.

    See :func:`study.bench.stopping.block_stop_reason` for the rule and its reasons.

    Example:
        >>> p = CellProgress((100.0, 100.1, 99.9), (0, 1, 2), 3.0, False, 3)
        >>> stop_reason({"c": p}, target_ci=0.01, min_trials=3, max_trials=50, max_seconds_per_cell=30)
        'ci'
    """
    # Imported here: study.bench imports this module.
    from study.bench.stopping import CellTally, block_stop_reason

    tallies = {
        cell: CellTally(p.by_round, p.seconds_spent - p.rejected_seconds, p.rejected, p.failed)
        for cell, p in progress.items()
    }
    return block_stop_reason(
        tallies,
        target_ci=target_ci,
        min_trials=min_trials,
        max_trials=max_trials,
        max_seconds_per_cell=max_seconds_per_cell,
    )


def finished_cells(
    df: pd.DataFrame,
    machine: str,
    *,
    target_ci: float,
    min_trials: int,
    max_trials: int,
    max_seconds_per_cell: float,
) -> set[str]:
    """Cells of ``machine`` that a resumed run must not redo.

    Those of a block whose stopping rule is met (:func:`stop_reason`, each block on its own
    rows), and those that left their block: recorded as failed, or ``max_trials`` trials rejected.
    """
    rule = {"target_ci": target_ci, "min_trials": min_trials, "max_trials": max_trials}
    rule["max_seconds_per_cell"] = max_seconds_per_cell
    done: set[str] = set()
    if df.empty:
        return done
    for block in df.loc[df["machine"] == machine, "block"].unique():
        progress = cell_progress(df, machine, block)
        if stop_reason(progress, **rule) is not None:
            done.update(progress)
        done.update(c for c, p in progress.items() if p.failed or p.rejected >= max_trials)
    return done
