"""What the stored rows already hold of each cell of a block, and whether a resumed run may skip it.

:func:`cell_progress` reads a block's cells from loaded results (:func:`study.records.results.load_results`);
:func:`stop_reason` and :func:`finished_cells` apply the harness's one stopping rule
(:func:`study.bench.stopping.block_stop_reason`) to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from study.bench.stopping import CellTally, block_stop_reason

__all__ = ["CellProgress", "cell_progress", "finished_cells", "stop_reason"]


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
