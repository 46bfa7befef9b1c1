"""Measuring cells on the blocked design with replicates: :func:`run_benchmark`.

Each block is measured as ``settings.replicates`` replicates. A replicate is a fresh set of the
block's worker processes (:mod:`study.bench.workers`): loaded in the replicate's seeded order,
warmed up one at a time, then timed in rounds, each timing every live cell once, one trial at a
time with nothing else running, in the counterbalanced order of
:func:`study.bench.scheduling.round_order`; after each complete round,
:func:`study.bench.stopping.block_stop_reason` decides whether the replicate is done. Replicates of
different blocks are interleaved in time (:func:`study.bench.scheduling.interleave`). A worker
that crashes costs only its cell's rows in that replicate; the next replicate loads it again.
Rows are appended as they are measured; a resumed run keeps complete replicates and measures an
interrupted one again in a new replicate (:mod:`study.bench.replicates`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from study.bench.cells import BenchSettings, CellSpec, cell_key, check_cells
from study.bench.hardware import capture_hardware
from study.bench.noise import StealMeter, noise_floor
from study.bench.progress import cell_progress
from study.bench.replicates import abandon_rows, plan_replicates
from study.bench.rows import CellState, RunInfo, make_row, row_from_record
from study.bench.scheduling import group_blocks, interleave, load_order, round_order
from study.bench.split import plan_blocks, read_plans, record_plan, run_budget
from study.bench.stopping import block_stop_reason
from study.bench.workers import load_workers, warm_up, warn_if_low_memory
from study.engines import ENGINES, EngineAdapter, Window
from study.engines.worker import Worker, WorkerError
from study.records.manifest import sha256_file
from study.records.results import (
    ENVIRONMENT_FILE,
    REPLICATE_UNIT,
    abandoned_units,
    append_rows,
    load_results,
    write_environment,
)
from study.records.schema import TrialRow

__all__ = ["out_file", "run_benchmark"]

log = logging.getLogger(__name__)


def out_file(out: str | Path) -> Path:
    """The results file ``out`` names (a folder means ``folder/bench.jsonl``)."""
    out = Path(out)
    return out / "bench.jsonl" if out.suffix != ".jsonl" else out


def run_benchmark(
    cells: Sequence[CellSpec],
    settings: BenchSettings | None = None,
    out: str | Path = "runs/bench.jsonl",
    *,
    progress: bool = True,
    resume: bool = True,
    engines: Mapping[str, type[EngineAdapter]] | None = None,
) -> list[TrialRow]:
    """Measure ``cells`` in replicates of their blocks, appending one row per trial (and failure).

    Args:
        cells: the configurations to measure; cells with the same ``block`` are measured together.
            A block with more than ``settings.max_live_workers`` cells, or more estimated memory
            than the machine has available, is measured as sub-blocks that each hold its
            ``anchor`` cells (:mod:`study.bench.split`; each block's estimate is logged first).
            A spec given twice is measured once.
        settings: measurement settings shared by all cells (default: ``BenchSettings()``);
            ``settings.replicates`` replicates per block, each under the stopping rule.
        out: JSONL results file (a folder means ``folder/bench.jsonl``); ``environment.json`` is
            written beside it.
        progress: show a tqdm progress bar over the cells of every replicate.
        resume: continue this machine's latest run of each block: its complete replicates are
            kept (a failed cell is not retried in them), an interrupted one is marked abandoned
            and measured again by new processes, and replicates are added until there are
            ``settings.replicates``. ``False`` starts a new run of every block (replicate 0 on).
        engines: registry to use instead of ``study.engines.ENGINES`` (e.g. to add a test engine).

    Returns:
        The rows of the requested cells on this machine (abandoned replicates' rows left out),
        earlier runs' rows included when resuming.

    Raises:
        ValueError: an unknown engine, precision, scenario or variant column, bad settings, a
            block that does not fit and cannot be split (see :func:`study.bench.split.split_cells`),
            or one cell that is not an anchor in two blocks. Problems
            of a cell (missing model, wrong shape, engine not installed, worker crash) become
            failure rows of the replicate.

    Example:
        >>> cells = [CellSpec("m.onnx", e, block="m") for e in ("onnxruntime", "openvino")]
        >>> rows = run_benchmark(cells, BenchSettings(replicates=3), "runs/b.jsonl")  # doctest: +SKIP
        >>> summarize(rows)[["engine", "throughput", "ci_rel"]]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    settings = BenchSettings() if settings is None else settings
    registry = dict(ENGINES if engines is None else engines)
    check_cells(cells, settings, registry)
    path = out_file(out)
    hw = capture_hardware()
    recorded = read_plans(path.parent)
    budget = run_budget(recorded, hw.machine, resume)
    cells, block_plans = plan_blocks(cells, settings.max_live_workers, budget)
    record_plan(path.parent, recorded, hw.machine, budget, block_plans)
    blocks = _states(cells)
    previous = load_results(path, abandoned=True) if path.is_file() else pd.DataFrame()
    plans = plan_replicates(
        previous, hw.machine, blocks, settings, resume=resume, new_run_id=uuid.uuid4().hex
    )
    markers = [r for n, p in plans.items() for r in abandon_rows(previous, hw.machine, n, p)]
    if markers:
        append_rows(path, markers)
    trials = cell_progress(previous, hw.machine) if resume else {}  # every trial of a cell counts
    run = RunInfo("", hw.machine, hw.git_commit, settings)
    threads = [c.spec.threads for n, p in plans.items() if p.todo for c in blocks[n].values()]
    _record_environment(path.parent, hw, settings, threads)
    total = sum(len(blocks[n]) * (len(p.done) + len(p.todo)) for n, p in plans.items())
    bar = tqdm(total=total, desc="cells x replicates", unit="cell", disable=not progress)
    bar.update(sum(len(blocks[n]) * len(p.done) for n, p in plans.items()))
    next_trial = {k: trials[k].next_trial if k in trials else 0 for s in blocks.values() for k in s}
    ctx = _Context(run, path, registry, bar, next_trial)
    try:
        for name, rep in interleave({n: p.todo for n, p in plans.items()}):
            states = {
                k: CellState(c.spec, k, c.sha, next_trial=next_trial[k], replicate=rep)
                for k, c in blocks[name].items()
            }
            block_run = dataclasses.replace(run, run_id=plans[name].run_id)
            _Replicate(name, rep, states, block_run, ctx).measure()
    finally:
        bar.close()
    before = _kept(previous, markers) if resume else pd.DataFrame()
    keys = [k for states in blocks.values() for k in states]
    return _earlier_rows(before, keys, hw.machine) + ctx.written


def _states(cells: Sequence[CellSpec]) -> dict[str, dict[str, CellState]]:
    """block -> (cell key -> a state holding its spec).

    An anchor cell may be in several blocks (the sub-blocks of a split block: it is measured in
    each, its rows tell them apart by ``block``); any other cell in two blocks raises ValueError.
    """
    shas: dict[str, str] = {}
    seen: dict[str, str] = {}  # cell key -> its block
    blocks: dict[str, dict[str, CellState]] = {}
    for name, specs in group_blocks(cells, lambda c: c.block).items():
        states = blocks.setdefault(name, {})
        for spec in specs:
            sha = shas.setdefault(spec.onnx_path, sha256_file(spec.onnx_path))
            key = cell_key(spec, sha)
            if seen.setdefault(key, name) != name and not spec.anchor:
                raise ValueError(
                    f"cell {spec.model}/{spec.engine} ({spec.onnx_path}) is in blocks "
                    f"{seen[key]!r} and {name!r}; a cell is measured in one block per run"
                )
            states.setdefault(key, CellState(spec, key, sha))
    return blocks


def _kept(previous: pd.DataFrame, markers: list[TrialRow]) -> pd.DataFrame:
    """The earlier rows without those of abandoned replicates (earlier and just now)."""
    if previous.empty:
        return previous
    units = abandoned_units(previous) | {
        tuple(getattr(m, c) for c in REPLICATE_UNIT) for m in markers
    }
    keys = previous[list(REPLICATE_UNIT)].itertuples(index=False, name=None)
    return previous.loc[[k not in units for k in keys]]


def _live(cell: CellState, settings: BenchSettings) -> bool:
    return cell.tally().live(settings.max_trials)


def _stop(states: Mapping[str, CellState], settings: BenchSettings) -> str | None:
    return block_stop_reason(
        {k: c.tally() for k, c in states.items()},
        target_ci=settings.target_ci,
        min_trials=settings.min_trials,
        max_trials=settings.max_trials,
        max_seconds_per_cell=settings.max_seconds_per_cell,
    )


@dataclass
class _Context:
    """What the blocks of one run share."""

    run: RunInfo
    path: Path  # the results file
    registry: Mapping[str, type[EngineAdapter]]
    bar: Any  # the tqdm progress bar over the cells of every replicate
    next_trial: dict[str, int]  # cell key -> index of its next timed trial (over replicates)
    written: list[TrialRow] = field(default_factory=list)  # this run's rows, in order written


class _Replicate:
    """One replicate of one block: fresh workers, their rounds, their rows."""

    def __init__(
        self, name: str, replicate: int, cells: dict[str, CellState], run: RunInfo, ctx: _Context
    ) -> None:
        self.name, self.replicate, self.cells, self.round, self.ctx = name, replicate, cells, 0, ctx
        self.run, self.settings, self.bar = run, run.settings, ctx.bar
        self.label = f"block {name} replicate {replicate}"
        self.workers: dict[str, Worker] = {}
        self.counted: set[str] = set()  # cells already counted on the progress bar

    def measure(self) -> None:
        """Load and warm up the block's cells, then run rounds until the rule stops them."""
        try:
            self._start()
            while (reason := _stop(self.cells, self.settings)) is None:
                self._round()
                self.round += 1
            log.info("%s stopped (%s) after %d round(s)", self.label, reason, self.round)
        finally:
            for worker in self.workers.values():
                worker.stop()
            self.workers.clear()
            self.bar.update(len(set(self.cells) - self.counted))
            for key, cell in self.cells.items():
                self.ctx.next_trial[key] = cell.next_trial

    def _start(self) -> None:
        s = self.settings
        order = load_order(self.cells, seed=s.seed, block=self.name, replicate=self.replicate)
        for rank, key in enumerate(order):
            self.cells[key].load_rank = rank
        live = {k: self.cells[k].spec for k in order}
        warn_if_low_memory(list(live.values()), self.name)
        self.bar.set_postfix_str(f"{self.label}: loading {len(live)} worker(s)")
        loaded, errors = load_workers(live, s, self.ctx.registry)
        for key, error in errors.items():
            self._fail(self.cells[key], error)
        for key, (worker, info) in loaded.items():
            self.workers[key] = worker
            self.cells[key].info = info
            self.cells[key].pid = worker.process.pid
        for key in [k for k in order if k in self.workers]:  # warm up one at a time, in order
            cell = self.cells[key]
            self.bar.set_postfix_str(f"{self.label}: warming up {cell.spec.engine}")
            try:
                cell.warmup = warm_up(self.workers[key], self.settings)
            except WorkerError as exc:
                self._fail(cell, str(exc))
                continue
            cell.spent += cell.warmup["seconds"]

    def _round(self) -> None:
        """Time every live cell once; a trial rejected for steal is timed again at the end."""
        s = self.settings
        live = [k for k in self.workers if _live(self.cells[k], s)]
        order = round_order(
            live, seed=s.seed, block=self.name, round=self.round, replicate=self.replicate
        )
        queue = deque(order)
        while queue:
            cell = self.cells[queue.popleft()]
            self.bar.set_postfix_str(f"{self.label} round {self.round}")
            try:
                window, steal, took = _time_trial(self.workers[cell.key], s)
            except WorkerError as exc:
                self._fail(cell, str(exc))
                continue
            if not (math.isfinite(window.throughput) and window.throughput > 0):
                self._fail(cell, f"the engine reported a throughput of {window.throughput!r}")
                continue
            cell.spent += took
            reject = s.max_cpu_steal is not None and steal is not None and steal > s.max_cpu_steal
            if reject:
                cell.rejected += 1
                cell.rejected_seconds += took
                if _live(cell, s):
                    queue.append(cell.key)
            else:
                cell.by_round[self.round] = window.throughput
            # The trial that completes the round records why the block stops, if it does.
            stop = _stop(self.cells, s) if not queue else None
            error = None
            if reject:
                error = (
                    f"CPU steal {steal:.1%} > max_cpu_steal {s.max_cpu_steal:.1%}: trial repeated"
                )
            status = "rejected" if reject else "ok"
            row = make_row(
                self.run, cell, round=self.round, window=window, steal=steal, status=status,
                error=error, stop=stop,
            )  # fmt: skip
            self._write(row)
            cell.next_trial += 1
            if not _live(cell, s):  # rejected max_trials times: the cell stops
                self._release(cell)

    def _fail(self, cell: CellState, error: str) -> None:
        """Record a failure row; the cell leaves the block."""
        cell.failed = True
        self._write(make_row(self.run, cell, round=-1, status="failed", error=error))
        self._release(cell)

    def _release(self, cell: CellState) -> None:
        worker = self.workers.pop(cell.key, None)
        if worker is not None:
            worker.stop()
        if cell.key not in self.counted:
            self.counted.add(cell.key)
            self.bar.update(1)

    def _write(self, row: TrialRow) -> None:
        append_rows(self.ctx.path, [row])
        self.ctx.written.append(row)


def _time_trial(worker: Worker, settings: BenchSettings) -> tuple[Window, float | None, float]:
    """One timed trial: its window, the CPU steal meanwhile, and the seconds it took in all."""
    t0 = time.perf_counter()
    meter = StealMeter().start()
    window = worker.request("window", settings.trial_seconds, settings.trial_seconds * 5 + 180)
    steal = meter.stop()
    return window, steal, time.perf_counter() - t0


def _record_environment(folder: Path, hw: Any, settings: BenchSettings, threads: list[int]) -> None:
    """Record the hardware, keeping earlier noise-floor probes and adding one when asked."""
    file = folder / ENVIRONMENT_FILE
    env = json.loads(file.read_text()).get(hw.machine, {}) if file.is_file() else {}
    floors = list(env.get("noise_floors", []))
    if settings.noise_floor_seconds and threads:
        t = max(set(threads), key=threads.count)  # the cells' (most common) thread count
        floor = noise_floor(settings.noise_floor_seconds, settings.trial_seconds, t)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        floors.append({**floor.to_dict(), "timestamp": stamp})
    write_environment(
        folder, hw.machine, {**hw.to_dict(), **({"noise_floors": floors} if floors else {})}
    )


def _earlier_rows(previous: pd.DataFrame, keys: list[str], machine: str) -> list[TrialRow]:
    """The rows earlier runs wrote of these cells on this machine."""
    if previous.empty:
        return []
    old = previous[(previous["machine"] == machine) & previous["cell"].isin(keys)]
    return [row_from_record(rec) for rec in old.to_dict("records")]
