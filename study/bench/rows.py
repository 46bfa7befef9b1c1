"""One cell during a run: what the harness knows of it (:class:`CellState`) and the rows it writes.

Every :class:`~study.records.schema.TrialRow` carries the cell's fields, the run's identity, the trial's
window and, under ``engine_settings["bench"]``, the harness's own record: seconds spent, load and
warm-up, the output check, the worker's process id and load rank, every
:class:`~study.bench.cells.BenchSettings` field and, on the row that completed a replicate's last
round, why the replicate stopped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from study.bench.cells import BenchSettings, CellSpec
from study.bench.stopping import CellTally
from study.engines import Window
from study.records.schema import TrialRow

__all__ = ["CellState", "RunInfo", "make_row", "row_from_record"]


@dataclass(frozen=True)
class RunInfo:
    """What every row of one harness invocation shares."""

    run_id: str  # uuid of the invocation
    machine: str  # study.bench.hardware machine id
    git_commit: str
    settings: BenchSettings


@dataclass
class CellState:
    """Mutable state of one cell in one replicate of its block (one worker process)."""

    spec: CellSpec
    key: str  # study.bench.cells.cell_key
    sha: str  # SHA-256 of the model file ("" when missing)
    by_round: dict[int, float] = field(default_factory=dict)  # round -> ok trial's throughput
    spent: float = 0.0  # warm-up + trial seconds so far in this replicate
    next_trial: int = 0  # index of the next timed trial (every timed trial of the cell counts)
    rejected: int = 0  # trials rejected for CPU steal in this replicate
    rejected_seconds: float = 0.0  # the seconds those took (not counted against the time cap)
    failed: bool = False  # a failure row exists: the cell left this replicate of its block
    info: dict[str, Any] | None = None  # from the worker: version, settings, check, load_seconds
    warmup: dict[str, Any] | None = None  # the last warm-up's report
    replicate: int = 0  # the block's replicate (a fresh set of worker processes) in its run
    pid: int | None = None  # the worker process's id, once started
    load_rank: int | None = None  # position of the cell in the replicate's seeded load order

    def tally(self) -> CellTally:
        """The cell as the stopping rule sees it."""
        seconds = self.spent - self.rejected_seconds
        return CellTally(dict(self.by_round), seconds, self.rejected, self.failed)


def _latency(window: Window) -> tuple[float | None, ...]:
    if window.reported_ms is not None:
        return tuple(window.reported_ms)
    lat = np.asarray(window.latencies_ms, dtype=float)
    if lat.size == 0:
        return (None, None, None, None)
    return (
        float(lat.mean()),
        float(np.median(lat)),
        float(np.percentile(lat, 90)),
        float(np.percentile(lat, 99)),
    )


def make_row(
    run: RunInfo,
    cell: CellState,
    *,
    round: int,
    window: Window | None = None,
    steal: float | None = None,
    status: str = "ok",
    error: str | None = None,
    stop: str | None = None,
) -> TrialRow:
    """The row of a timed trial (``window`` given; trial ``cell.next_trial``) or of a failure.

    Args:
        run: the invocation's identity and settings.
        cell: the cell, its ``spent`` and ``rejected_seconds`` already counting this trial.
        round: the block's round (-1 on a failure row).
        window: the trial's timed window; None on a failure row.
        steal: CPU steal during the trial, if known.
        status: "ok", "rejected" or "failed".
        error: why the trial was rejected or the cell failed.
        stop: the block's stop reason, on the row that completed its last round.
    """
    s = cell.spec
    info = cell.info or {}
    check = info.get("check")
    bench = {
        "cell_seconds": cell.spent,
        "rejected_seconds": cell.rejected_seconds,
        "load_seconds": info.get("load_seconds"),
        "warmup": {k: v for k, v in (cell.warmup or {}).items() if k != "throughputs"},
        "output_rel_diff": getattr(check, "rel_diff", None),
        "output_rtol": getattr(check, "rtol", None),
        "output_detail": getattr(check, "detail", ""),
        "input_shape": list(s.input_shape) if s.input_shape else None,
        "stop": stop,
        "worker_pid": cell.pid,
        "load_rank": cell.load_rank,
        **dataclasses.asdict(run.settings),
    }
    lat = _latency(window) if window is not None else (None,) * 4
    return TrialRow(
        run_id=run.run_id,
        machine=run.machine,
        cell=cell.key,
        trial=cell.next_trial if window is not None else -1,
        model=s.model,
        pruner=s.pruner,
        exporter=s.exporter,
        sparsity=float(s.sparsity),
        onnx_path=s.onnx_path,
        onnx_sha256=cell.sha,
        engine=s.engine,
        precision=s.precision,
        scenario=s.scenario,
        batch_size=s.batch_size,
        threads=s.threads,
        items=window.items if window is not None else 0,
        seconds=window.seconds if window is not None else 0.0,
        throughput=window.throughput if window is not None else float("nan"),
        calls=window.calls if window is not None else 0,
        latency_ms_mean=lat[0],
        latency_ms_median=lat[1],
        latency_ms_p90=lat[2],
        latency_ms_p99=lat[3],
        cpu_steal=steal,
        engine_version=info.get("version", ""),
        engine_settings={**info.get("settings", {}), "bench": bench},
        output_max_abs_diff=getattr(check, "max_abs_diff", None),
        output_ok=getattr(check, "ok", None),
        timestamp=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        git_commit=run.git_commit,
        status=status,
        error=error,
        profile=s.profile,
        mask=s.mask,
        quant=s.quant,
        block=s.block,
        round=round if window is not None else -1,
        isa=s.isa,
        replicate=cell.replicate,
    )


def row_from_record(record: dict[str, Any]) -> TrialRow:
    """A :class:`~study.records.schema.TrialRow` from a loaded row (a dict of one DataFrame row).

    Columns that are not TrialRow fields are ignored; NaN becomes None in every field but
    ``throughput`` (NaN on a failure row).
    """
    names = set(TrialRow.__dataclass_fields__)
    return TrialRow(**{k: _none_if_nan(k, v) for k, v in record.items() if k in names})


def _none_if_nan(key: str, value: Any) -> Any:
    if key != "throughput" and isinstance(value, float) and math.isnan(value):
        return None
    return value
