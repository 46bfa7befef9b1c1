"""Measuring cells on the blocked design: :func:`run_benchmark`.

Blocks run one after another, in the order they first appear in the cells given. For each block,
all its cells' workers are loaded (:mod:`study.bench.workers`) and warmed up; then the harness runs
rounds, each timing every live cell once, one trial at a time with nothing else running, in the
counterbalanced order of :func:`study.bench.scheduling.round_order`. After each complete round,
:func:`study.bench.stopping.block_stop_reason` decides whether the block is done. Rows are
appended as they are measured, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

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

from study.bench.cells import BenchSettings, CellSpec, cell_key, check_blocks, check_cells
from study.bench.rows import CellState, RunInfo, make_row
from study.bench.scheduling import group_blocks, round_order
from study.bench.stopping import block_stop_reason
from study.bench.workers import load_workers, warm_up, warn_if_low_memory
from study.engines import ENGINES, EngineAdapter, Window
from study.engines.worker import Worker, WorkerError
from study.hardware import capture_hardware
from study.manifest import sha256_file
from study.noise import StealMeter, noise_floor
from study.results import (
    ENVIRONMENT_FILE,
    CellProgress,
    append_rows,
    cell_progress,
    load_results,
    write_environment,
)
from study.schema import TrialRow

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
    """Measure ``cells`` block by block, appending one row per trial (and per failure) to ``out``.

    Args:
        cells: the configurations to measure; cells with the same ``block`` are measured together
            (at most ``settings.max_live_workers`` of them). A spec given twice is measured once.
        settings: measurement settings shared by all cells (default: ``BenchSettings()``).
        out: JSONL results file (a folder means ``folder/bench.jsonl``); ``environment.json`` is
            written beside it.
        progress: show a tqdm progress bar over the cells.
        resume: take up this machine's earlier rows of the same cells and blocks: a block
            continues at the round after its last, keeps its cells' throughputs, seconds and
            rejections, and is skipped when its stopping rule is already met; a failed cell is not
            retried. ``False`` measures every cell again (in new rounds of its block).
        engines: registry to use instead of ``study.engines.ENGINES`` (e.g. to add a test engine).

    Returns:
        The rows of the requested cells on this machine, earlier runs' rows included when resuming.

    Raises:
        ValueError: an unknown engine, precision, scenario or variant column, bad settings, a
            block with more cells than ``max_live_workers``, or one cell in two blocks. Problems
            of a cell (missing model, wrong shape, engine not installed, worker crash) become
            failure rows.

    Example:
        >>> cells = [CellSpec("m.onnx", e, block="m") for e in ("onnxruntime", "openvino")]
        >>> rows = run_benchmark(cells, BenchSettings(), "runs/b.jsonl")  # doctest: +SKIP
        >>> summarize(rows)[["engine", "throughput", "ci_rel"]]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    settings = BenchSettings() if settings is None else settings
    registry = dict(ENGINES if engines is None else engines)
    check_cells(cells, settings, registry)
    blocks = _states(cells)
    check_blocks(blocks, settings.max_live_workers)
    path = out_file(out)
    hw = capture_hardware()
    run = RunInfo(uuid.uuid4().hex, hw.machine, hw.git_commit, settings)
    previous = load_results(path) if path.is_file() else pd.DataFrame()
    first_rounds = {name: _next_round(previous, hw.machine, name) for name in blocks}
    if resume:
        trials = cell_progress(previous, hw.machine)  # the trial index counts every block's trials
        for name, states in blocks.items():
            _take_up(states, cell_progress(previous, hw.machine, name), trials)
    pending = [name for name, states in blocks.items() if _stop(states, settings) is None]
    threads = [
        c.spec.threads for name in pending for c in blocks[name].values() if _live(c, settings)
    ]
    _record_environment(path.parent, hw, settings, threads)
    states_all = [c for states in blocks.values() for c in states.values()]
    bar = tqdm(total=len(states_all), desc="cells", unit="cell", disable=not progress)
    bar.update(sum(len(blocks[name]) for name in blocks if name not in pending))
    ctx = _Context(run, path, registry, bar)
    try:
        for name in pending:
            _Block(name, blocks[name], first_rounds[name], ctx).measure()
    finally:
        bar.close()
    before = previous if resume else pd.DataFrame()
    return _earlier_rows(before, states_all, hw.machine) + ctx.written


def _states(cells: Sequence[CellSpec]) -> dict[str, dict[str, CellState]]:
    """block -> (cell key -> fresh state); raises ValueError for one cell in two blocks."""
    shas: dict[str, str] = {}
    seen: dict[str, str] = {}  # cell key -> its block
    blocks: dict[str, dict[str, CellState]] = {}
    for name, specs in group_blocks(cells, lambda c: c.block).items():
        states = blocks.setdefault(name, {})
        for spec in specs:
            sha = shas.setdefault(spec.onnx_path, sha256_file(spec.onnx_path))
            key = cell_key(spec, sha)
            if seen.setdefault(key, name) != name:
                raise ValueError(
                    f"cell {spec.model}/{spec.engine} ({spec.onnx_path}) is in blocks "
                    f"{seen[key]!r} and {name!r}; a cell is measured in one block per run"
                )
            states.setdefault(key, CellState(spec, key, sha))
    return blocks


def _take_up(
    states: dict[str, CellState],
    done: Mapping[str, CellProgress],
    trials: Mapping[str, CellProgress],
) -> None:
    """Resume: give each cell of a block what earlier rows hold of it.

    Args:
        states: the block's cells.
        done: their progress in this block (rounds in another block do not pair with this one's).
        trials: their progress in any block (the trial index counts every timed trial).
    """
    for key, cell in states.items():
        p = done.get(key)
        if p is not None:
            cell.by_round = p.by_round
            cell.spent, cell.failed = p.seconds_spent, p.failed
            cell.rejected, cell.rejected_seconds = p.rejected, p.rejected_seconds
        if key in trials:
            cell.next_trial = trials[key].next_trial


def _next_round(df: pd.DataFrame, machine: str, block: str) -> int:
    """The round after the last one this machine's results hold for the block (0 if none)."""
    if df.empty:
        return 0
    rounds = df.loc[(df["machine"] == machine) & (df["block"] == block), "round"]
    return int(rounds.max()) + 1 if len(rounds) else 0


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
    bar: Any  # the tqdm progress bar over cells
    written: list[TrialRow] = field(default_factory=list)  # this run's rows, in order written


class _Block:
    """One block's measurement: its workers, its rounds, its rows."""

    def __init__(
        self, name: str, cells: dict[str, CellState], first_round: int, ctx: _Context
    ) -> None:
        self.name, self.cells, self.round, self.ctx = name, cells, first_round, ctx
        self.run, self.settings, self.bar = ctx.run, ctx.run.settings, ctx.bar
        self.workers: dict[str, Worker] = {}
        self.counted: set[str] = set()  # cells already counted on the progress bar

    def measure(self) -> None:
        """Load and warm up the block's live cells, then run rounds until the rule stops them."""
        try:
            self._start()
            rounds = 0
            while (reason := _stop(self.cells, self.settings)) is None:
                self._round()
                self.round += 1
                rounds += 1
            log.info("block %r stopped (%s) after %d new round(s)", self.name, reason, rounds)
        finally:
            for worker in self.workers.values():
                worker.stop()
            self.workers.clear()
            self.bar.update(len(set(self.cells) - self.counted))

    def _start(self) -> None:
        live = {k: c.spec for k, c in self.cells.items() if _live(c, self.settings)}
        warn_if_low_memory(len(live), self.name)
        self.bar.set_postfix_str(f"block {self.name}: loading {len(live)} worker(s)")
        loaded, errors = load_workers(live, self.settings, self.ctx.registry)
        for key, error in errors.items():
            self._fail(self.cells[key], error)
        for key, (worker, info) in loaded.items():
            self.workers[key] = worker
            self.cells[key].info = info
        for key in [k for k in live if k in self.workers]:  # warm up one at a time, in order
            cell = self.cells[key]
            self.bar.set_postfix_str(f"block {self.name}: warming up {cell.spec.engine}")
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
        queue = deque(round_order(live, seed=s.seed, block=self.name, round=self.round))
        while queue:
            cell = self.cells[queue.popleft()]
            self.bar.set_postfix_str(f"block {self.name} round {self.round}")
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


def _earlier_rows(previous: pd.DataFrame, states: list[CellState], machine: str) -> list[TrialRow]:
    """The rows earlier runs wrote of these cells on this machine."""
    names = set(TrialRow.__dataclass_fields__)
    rows: list[TrialRow] = []
    if not previous.empty:
        keys = [c.key for c in states]
        old = previous[(previous["machine"] == machine) & previous["cell"].isin(keys)]
        for rec in old.to_dict("records"):
            rows.append(TrialRow(**{k: _none_if_nan(k, v) for k, v in rec.items() if k in names}))
    return rows


def _none_if_nan(key: str, value: Any) -> Any:
    if key != "throughput" and isinstance(value, float) and math.isnan(value):
        return None
    return value
