"""Which replicates of each block a run measures, and which interrupted ones it abandons (resume).

A replicate of a block is one set of its worker processes (see :mod:`study.bench.scheduling`).
Rounds of two processes must never be pooled as one replicate, so a resumed run does not continue
a replicate: per block, it continues the block's latest run (``run_id`` of the block's last row on
this machine) and reads each of that run's replicates on its own rows:

- *complete*: the harness's stopping rule (:func:`study.bench.progress.stop_reason`) is met on its rows.
  It counts toward ``BenchSettings.replicates`` when it measured every cell requested now; one
  that lacks a cell added since stands for the cells it measured and is not counted.
- *interrupted*: the rule is not met (the run stopped during its rounds, or the rule is now
  stricter than the one it was measured under). It is *abandoned*: one
  row of status :data:`study.records.results.ABANDONED` per cell is appended, readers drop its rows
  (:func:`study.records.results.load_results`), and the block is measured again by new processes.

New replicates take the indices after the largest of the run's (abandoned ones included), so no
index is used twice. Without resume, every block starts a new run at replicate 0.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import pandas as pd

from study.bench.cells import BenchSettings
from study.bench.progress import cell_progress, stop_reason
from study.bench.rows import row_from_record
from study.records.results import ABANDONED, abandoned_units
from study.records.schema import SCHEMA_VERSION, TrialRow

__all__ = ["BlockPlan", "abandon_rows", "plan_replicates"]


@dataclass(frozen=True)
class BlockPlan:
    """What a run does with one block."""

    run_id: str  # the run the block's new replicates belong to
    done: tuple[int, ...]  # complete replicates of that run that cover every requested cell
    todo: tuple[int, ...]  # replicate indices to measure now, in order
    abandon: tuple[int, ...]  # interrupted replicates of that run, to mark abandoned


def plan_replicates(
    previous: pd.DataFrame,
    machine: str,
    blocks: Mapping[str, Collection[str]],
    settings: BenchSettings,
    *,
    resume: bool,
    new_run_id: str,
) -> dict[str, BlockPlan]:
    """Each block's plan (see the module docstring).

    Args:
        previous: the results file's rows, those of abandoned replicates included
            (``load_results(path, abandoned=True)``); empty for a new file.
        machine: this machine's id (other machines' rows are not looked at).
        blocks: block -> the keys of the cells requested in it.
        settings: the stopping rule's fields and ``replicates``.
        resume: False starts every block afresh in run ``new_run_id``.
        new_run_id: the id of this invocation, for blocks without a run to continue. A block
            without rows joins the run of the latest row of the other requested blocks, so the
            blocks of one study stay in one run.

    Returns:
        block -> :class:`BlockPlan`.

    Example:
        >>> plan = plan_replicates(pd.DataFrame(), "m", {"b": ["k1"]}, BenchSettings(replicates=2),
        ...                        resume=True, new_run_id="r")
        >>> plan["b"].todo
        (0, 1)
    """
    k = settings.replicates
    mine = pd.DataFrame()
    if resume and not previous.empty:
        mine = previous.loc[(previous["machine"] == machine) & previous["block"].isin(list(blocks))]
    if mine.empty:
        return {name: BlockPlan(new_run_id, (), tuple(range(k)), ()) for name in blocks}
    run_of_call = str(mine["run_id"].iloc[-1])
    abandoned = abandoned_units(mine)
    rule = dict(target_ci=settings.target_ci, min_trials=settings.min_trials)
    rule.update(max_trials=settings.max_trials, max_seconds_per_cell=settings.max_seconds_per_cell)
    plans = {}
    for name, keys in blocks.items():
        rows = mine.loc[mine["block"] == name]
        if rows.empty:
            plans[name] = BlockPlan(run_of_call, (), tuple(range(k)), ())
            continue
        run = str(rows["run_id"].iloc[-1])
        rows = rows.loc[rows["run_id"] == run]
        done, abandon = [], []
        for rep, g in rows.groupby("replicate", sort=True):
            if (machine, run, name, rep) in abandoned:
                continue
            progress = cell_progress(g, machine)
            if stop_reason(progress, **rule) is None:
                abandon.append(int(rep))
            elif set(keys) <= set(progress):
                done.append(int(rep))
        first = int(rows["replicate"].max()) + 1
        todo = tuple(range(first, first + max(0, k - len(done))))
        plans[name] = BlockPlan(run, tuple(done), todo, tuple(abandon))
    return plans


def abandon_rows(
    previous: pd.DataFrame, machine: str, block: str, plan: BlockPlan
) -> list[TrialRow]:
    """The rows that mark ``plan.abandon``'s replicates as abandoned: one per cell that has rows.

    Each is the cell's last row of the replicate with status :data:`~study.records.results.ABANDONED`,
    no trial, round or throughput, and an ``error`` saying why and which replicate replaces it.
    """
    if not plan.abandon:
        return []
    rows = previous.loc[
        (previous["machine"] == machine)
        & (previous["block"] == block)
        & (previous["run_id"] == plan.run_id)
    ]
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    out = []
    for rep in plan.abandon:
        again = f"replicate {plan.todo[0]}" if plan.todo else "no new replicate"
        why = (
            f"replicate {rep} of block {block!r} stopped before the stopping rule in force was met "
            f"(interrupted, or measured under other settings): its rows are left out, not pooled "
            f"with new processes ({again} measures the block again)"
        )
        for record in rows.loc[rows["replicate"] == rep].groupby("cell").tail(1).to_dict("records"):
            last = row_from_record(record)
            out.append(
                replace(
                    last,
                    trial=-1,
                    round=-1,
                    items=0,
                    seconds=0.0,
                    throughput=float("nan"),
                    calls=0,
                    latency_ms_mean=None,
                    latency_ms_median=None,
                    latency_ms_p90=None,
                    latency_ms_p99=None,
                    cpu_steal=None,
                    status=ABANDONED,
                    error=why,
                    timestamp=now,
                    schema_version=SCHEMA_VERSION,
                )  # fmt: skip
            )
    return out
