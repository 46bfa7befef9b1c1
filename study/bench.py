"""The benchmark harness: fair, interleaved, confidence-driven timing of CPU inference engines.

Every cell (model file x engine x precision x scenario x batch x threads) runs in its own worker
process (:mod:`study.engines.worker`); the parent schedules one trial at a time, shuffling the order
of the unfinished cells each round (seeded) so slow drift of a shared machine spreads over all
cells. At most ``max_live_workers`` cells are interleaved at once: a sliding window over the cells in
the order given, where a finished cell's place goes to the next one. A worker is therefore loaded
once and stopped only when its cell is done (never evicted and reloaded mid-cell), and callers put
the cells they compare next to each other. Workers load ``parallel_loads`` at a time while nothing is
timed (loading is mostly single-threaded), then warm up one at a time until their window
throughputs are steady; a cell stops when
the 95% Student-t CI of its mean trial throughput is within ``target_ci`` (or a cap is reached).
Rows are appended as they are measured, so an interrupted run resumes where it stopped.

CLI::

    python -m study.bench model.onnx --engine all --threads 2 --out runs/bench.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import wait as wait_connections
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.engines import ENGINES, EngineAdapter, EngineConfig, EngineUnavailable
from study.engines.base import PRECISIONS, SCENARIOS, read_input_specs
from study.engines.worker import Worker, WorkerError, WorkerOptions
from study.hardware import capture_hardware, physical_cores
from study.manifest import sha256_file
from study.noise import NoiseFloor, StealMeter, noise_floor
from study.results import (
    ENVIRONMENT_FILE,
    append_rows,
    cell_progress,
    ci_half_width,
    load_results,
    stop_reason,
    write_environment,
)
from study.schema import CELL_FIELDS, TrialRow

__all__ = ["BenchSettings", "CellSpec", "cell_key", "main", "run_benchmark", "summarize"]


LOAD_TIMEOUT = 900.0  # seconds a worker may take to load before it is killed


@dataclass(frozen=True)
class CellSpec:
    """One benchmark configuration."""

    onnx_path: str  # the ONNX file
    engine: str  # a key of study.engines.ENGINES
    model: str = ""  # architecture name; "" -> the ONNX file stem
    pruner: str = "none"  # "none", "gmp", "sparseml" or "zoo"
    exporter: str = "unknown"  # "torch", "sparseml", "zoo" or "unknown"
    sparsity: float = 0.0  # target sparsity of the variant
    precision: str = "f32"  # "f32" (fair) or "default" (the engine's own default)
    scenario: str = "sync"  # "sync" (latency) or "async" (the engine's throughput mode)
    batch_size: int = 1  # items per call
    threads: int = field(default_factory=physical_cores)  # CPU threads for every engine
    torch_module_path: str | None = (
        None  # whole torch module for engine "torch" (default: <onnx stem>.pt)
    )
    input_shape: tuple[int, ...] | None = None  # per-item input shape, for models with dynamic dims

    def __post_init__(self) -> None:
        if not self.model:
            object.__setattr__(self, "model", Path(self.onnx_path).stem)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))


@dataclass(frozen=True)
class BenchSettings:
    """How cells are measured (written into every row under ``engine_settings["bench"]``)."""

    target_ci: float = 0.01  # stop when the 95% CI half-width / mean is at most this
    max_seconds_per_cell: float = 30  # cap on warm-up + trial time of a cell
    trial_seconds: float = 1.0  # length of one timed trial
    min_trials: int = 3  # trials before the CI rule may stop a cell
    max_trials: int = 50  # cap on trials per cell
    warmup_max_seconds: float = 10  # cap on warm-up after each worker start
    output_rtol: float = 1e-3  # relative tolerance of the f32 output check (bf16 variant: 5e-2)
    seed: int = 0  # seed of the input tensor and of the cell order
    warmup_window_seconds: float = 0.25  # length of one warm-up window
    warmup_windows: int = 3  # the last this many windows must agree ...
    warmup_tolerance: float = 0.03  # ... within this relative spread ((max-min)/mean)
    # Cells interleaved at once (each holds a loaded worker): a sliding window over the cells in
    # the order given. Put cells that are compared with each other next to each other.
    max_live_workers: int = 8
    # Workers loaded at once (loading is mostly single-threaded; nothing is timed meanwhile).
    parallel_loads: int = field(default_factory=physical_cores)
    # On a virtual machine: a trial during which the hypervisor took more than this share of the
    # CPU time (steal) is recorded as "rejected" and repeated. Rejected trials count toward
    # neither max_trials nor the time cap, but a cell stops after max_trials of them. Declare it
    # before the run; None = keep every trial. Steal is 0 on bare metal, so it never triggers there.
    max_cpu_steal: float | None = None
    # Seconds of study.noise's fixed workload timed before the cells (in trials of trial_seconds,
    # on the cells' thread count) and appended to environment.json's "noise_floors": how much this
    # machine varied, with no engine, when it was measured. 0 = skip.
    noise_floor_seconds: float = 0.0


def _validate(
    cells: Sequence[CellSpec], settings: BenchSettings, engines: Mapping[str, type[EngineAdapter]]
) -> None:
    if not cells:
        raise ValueError("`cells` must hold at least one CellSpec; got none")
    for c in cells:
        if c.engine not in engines:
            raise ValueError(f"`engine` must be one of {sorted(engines)}; got {c.engine!r}")
        if c.precision not in PRECISIONS:
            raise ValueError(f"`precision` must be one of {list(PRECISIONS)}; got {c.precision!r}")
        if c.scenario not in SCENARIOS:
            raise ValueError(f"`scenario` must be one of {list(SCENARIOS)}; got {c.scenario!r}")
        if not isinstance(c.batch_size, int) or c.batch_size < 1:
            raise ValueError(f"`batch_size` must be an integer >= 1; got {c.batch_size!r}")
        if not isinstance(c.threads, int) or c.threads < 1:
            raise ValueError(f"`threads` must be an integer >= 1; got {c.threads!r}")
    for name in ("target_ci", "max_seconds_per_cell", "trial_seconds", "warmup_window_seconds"):
        if not getattr(settings, name) > 0:
            raise ValueError(f"`{name}` must be > 0; got {getattr(settings, name)!r}")
    if not 1 <= settings.min_trials <= settings.max_trials:
        raise ValueError(
            f"`min_trials` must be in [1, max_trials={settings.max_trials}]; got {settings.min_trials!r}"
        )
    floor = settings.noise_floor_seconds
    if floor != 0 and not floor >= 3 * settings.trial_seconds:
        raise ValueError(
            f"`noise_floor_seconds` must be 0 or at least 3 trials ({3 * settings.trial_seconds:g} s); "
            f"got {floor!r}"
        )
    if settings.max_cpu_steal is not None and not 0 < settings.max_cpu_steal < 1:
        raise ValueError(
            f"`max_cpu_steal` must be None or in (0, 1); got {settings.max_cpu_steal!r}"
        )
    for name in ("max_live_workers", "parallel_loads"):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}")


def cell_key(spec: CellSpec, onnx_sha256: str) -> str:
    """The cell id: a hash of the row fields from ``model`` to ``threads`` (and ``input_shape`` if set)."""
    d = {
        k: getattr(spec, k)
        for k in ("model", "pruner", "exporter", "sparsity", "onnx_path", "engine")
    }
    d.update(onnx_sha256=onnx_sha256, precision=spec.precision, scenario=spec.scenario)
    d.update(batch_size=spec.batch_size, threads=spec.threads)
    if spec.input_shape is not None:
        d["input_shape"] = list(spec.input_shape)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Cell:
    """Mutable scheduler state of one cell."""

    spec: CellSpec
    key: str
    sha: str
    throughputs: list[float]
    spent: float  # warm-up + trial seconds so far (from earlier runs too)
    next_trial: int
    rejected: int = 0  # trials rejected for CPU steal (from earlier runs too)
    rejected_seconds: float = 0.0  # the seconds those took (not counted against the time cap)
    info: dict[str, Any] | None = None  # from the worker: version, settings, check, load_seconds
    warmup: dict[str, Any] | None = None  # the last warm-up's report
    rows: list[TrialRow] = field(default_factory=list)


def _latency(window: Any) -> tuple[float | None, ...]:
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


def _row(
    cell: _Cell,
    run_id: str,
    machine: str,
    commit: str,
    settings: BenchSettings,
    window: Any = None,
    error: str | None = None,
    steal: float | None = None,
    status: str | None = None,
) -> TrialRow:
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
        **{k: v for k, v in dataclasses.asdict(settings).items()},
    }
    lat = _latency(window) if window is not None else (None,) * 4
    return TrialRow(
        run_id=run_id,
        machine=machine,
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
        git_commit=commit,
        status=status or ("ok" if error is None else "failed"),
        error=error,
    )


def _out_file(out: str | Path) -> Path:
    out = Path(out)
    return out / "bench.jsonl" if out.suffix != ".jsonl" else out


def run_benchmark(
    cells: Sequence[CellSpec],
    settings: BenchSettings = BenchSettings(),
    out: str | Path = "runs/bench.jsonl",
    *,
    progress: bool = True,
    resume: bool = True,
    engines: Mapping[str, type[EngineAdapter]] | None = None,
) -> list[TrialRow]:
    """Measure ``cells``, appending one row per trial (and one per failure) to ``out``.

    Args:
        cells: the configurations to measure.
        settings: measurement settings shared by all cells.
        out: JSONL results file (a folder means ``folder/bench.jsonl``); ``environment.json`` is
            written beside it.
        progress: show a tqdm progress bar.
        resume: skip cells already finished in ``out`` and continue partial ones.
        engines: registry to use instead of ``study.engines.ENGINES`` (e.g. to add a test engine).

    Returns:
        The rows of the requested cells on this machine, earlier runs' rows included.

    Raises:
        ValueError: an unknown engine, precision or scenario, or bad settings. Problems of a cell
            (missing model, wrong shape, engine not installed, worker crash) become failure rows.

    Example:
        >>> rows = run_benchmark([CellSpec("m.onnx", "onnxruntime")], BenchSettings(), "runs/b.jsonl")  # doctest: +SKIP
        >>> summarize(rows)[["engine", "throughput", "ci_rel"]]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    registry = dict(ENGINES if engines is None else engines)
    _validate(cells, settings, registry)
    path = _out_file(out)
    hw = capture_hardware()
    run_id = uuid.uuid4().hex
    shas: dict[str, str] = {}
    previous = load_results(path) if resume and path.is_file() else pd.DataFrame()
    done_before = cell_progress(previous, hw.machine) if resume else {}
    rule = {"target_ci": settings.target_ci, "min_trials": settings.min_trials}
    rule.update(max_trials=settings.max_trials, max_seconds=settings.max_seconds_per_cell)

    states: dict[str, _Cell] = {}
    for spec in cells:
        sha = shas.setdefault(spec.onnx_path, sha256_file(spec.onnx_path))
        key = cell_key(spec, sha)
        p = done_before.get(key)
        states.setdefault(
            key,
            _Cell(
                spec,
                key,
                sha,
                list(p.throughputs) if p else [],
                p.seconds_spent if p else 0.0,
                p.next_trial if p else 0,
                p.rejected if p else 0,
                p.rejected_seconds if p else 0.0,
            ),
        )
    active = [
        c
        for k, c in states.items()
        if not (k in done_before and (done_before[k].failed or _done(c, rule)))
    ]
    _write_environment(path.parent, hw, settings, [c.spec.threads for c in active])
    rng = random.Random(settings.seed)
    live: dict[str, Worker] = {}  # cell key -> its loaded worker
    bar = tqdm(
        total=len(states),
        initial=len(states) - len(active),
        desc="cells",
        unit="cell",
        disable=not progress,
    )

    def finish(cell: _Cell, error: str | None = None) -> None:
        if error is not None:
            row = _row(cell, run_id, hw.machine, hw.git_commit, settings, error=error)
            append_rows(path, [row])
            cell.rows.append(row)
        worker = live.pop(cell.key, None)
        if worker is not None:
            worker.stop()
        active.remove(cell)
        bar.update(1)

    try:
        while active:
            interleaved = active[: settings.max_live_workers]  # finished cells leave `active`
            errors = _load_workers(active, live, settings, registry, bar)
            for cell in [c for c in active if c.key in errors]:
                finish(cell, error=errors[cell.key])
            for cell in rng.sample(interleaved, len(interleaved)):
                if cell not in active:  # failed to load above
                    continue
                bar.set_postfix_str(f"{cell.spec.model}/{cell.spec.engine} trial {cell.next_trial}")
                try:
                    t0 = time.perf_counter()
                    meter = StealMeter().start()
                    window = live[cell.key].request(
                        "window", settings.trial_seconds, settings.trial_seconds * 5 + 180
                    )
                    steal = meter.stop()
                    took = time.perf_counter() - t0
                    cell.spent += took
                except WorkerError as exc:
                    finish(cell, error=str(exc))
                    continue
                limit = settings.max_cpu_steal
                reject = limit is not None and steal is not None and steal > limit
                if reject:
                    cell.rejected += 1
                    cell.rejected_seconds += took
                row = _row(
                    cell,
                    run_id,
                    hw.machine,
                    hw.git_commit,
                    settings,
                    window,
                    steal=steal,
                    status="rejected" if reject else None,
                    error=f"CPU steal {steal:.1%} > max_cpu_steal {limit:.1%}: trial repeated"
                    if reject
                    else None,
                )
                append_rows(path, [row])
                cell.rows.append(row)
                if not reject:
                    cell.throughputs.append(row.throughput)
                cell.next_trial += 1
                if _done(cell, rule):
                    finish(cell)
    finally:
        for worker in live.values():
            worker.stop()
        bar.close()
    return _collect(previous, states, hw.machine)


def _write_environment(folder: Path, hw: Any, settings: BenchSettings, threads: list[int]) -> None:
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


def _done(cell: _Cell, rule: dict[str, Any]) -> bool:
    """The stopping rule (study.results.stop_reason) applied to a cell's state."""
    steal = {"rejected": cell.rejected, "rejected_seconds": cell.rejected_seconds}
    return stop_reason(cell.throughputs, cell.spent, **steal, **rule) is not None


def _config(cell: _Cell, registry: Mapping[str, type[EngineAdapter]]) -> EngineConfig:
    """Check what can be checked in the parent (clear messages, nothing spawned) and build the config."""
    s = cell.spec
    cls = registry[s.engine]
    cls.check_available()
    if s.scenario not in cls.scenarios:
        raise ValueError(
            f"engine {s.engine!r} supports scenario {list(cls.scenarios)}; got {s.scenario!r}"
        )
    read_input_specs(s.onnx_path, s.batch_size, s.input_shape)
    return EngineConfig(
        s.onnx_path,
        s.batch_size,
        s.threads,
        s.precision,
        s.scenario,
        s.input_shape,
        s.torch_module_path,
    )


def _load_workers(
    active: list[_Cell],
    live: dict[str, Worker],
    settings: BenchSettings,
    registry: Mapping[str, type[EngineAdapter]],
    bar: Any,
) -> dict[str, str]:
    """Give every cell of the window a loaded, warmed-up worker; return errors by cell key.

    Loading (spawn, imports, the ONNX Runtime reference run, the engine's compile) is mostly
    single-threaded (a DeepSparse compile uses one core), so ``parallel_loads`` workers load at
    once, a new load starting as soon as one ends. Nothing is timed while they load. When the window
    lacks fewer workers than that, the next cells after the window are loaded ahead with them, so a
    window that refills one cell at a time still loads in parallel (they wait, loaded and idle,
    until their turn). Warm-up
    runs one worker at a time with nothing else running, as trials do.
    """
    window = active[: settings.max_live_workers]
    missing = [c for c in window if c.key not in live]
    if not missing:
        return {}
    ahead = [c for c in active[settings.max_live_workers :] if c.key not in live]
    missing += ahead[: max(0, settings.parallel_loads - len(missing))]
    bar.set_postfix_str(f"loading {len(missing)} worker(s)")
    errors: dict[str, str] = {}
    loaded: list[_Cell] = []
    queue = deque(missing)
    loading: dict[Any, tuple[_Cell, Worker]] = {}  # parent end of the pipe -> its cell and worker
    while queue or loading:
        while queue and len(loading) < settings.parallel_loads:  # keep that many loads going
            cell = queue.popleft()
            try:
                config = _config(cell, registry)
            except (ValueError, FileNotFoundError, EngineUnavailable) as exc:
                errors[cell.key] = str(exc)
                continue
            opts = WorkerOptions(settings.seed, settings.output_rtol)
            worker = Worker(registry[cell.spec.engine], config, opts)
            loading[worker.connection] = (cell, worker)
        if not loading:
            break
        ready = wait_connections(list(loading), timeout=LOAD_TIMEOUT)
        if not ready:  # nothing answered for LOAD_TIMEOUT seconds: give up on all of them
            ready = list(loading)
        for conn in ready:
            cell, worker = loading.pop(conn)
            try:
                cell.info = worker.start(timeout=1.0)  # ready: it answers at once
            except WorkerError as exc:
                worker.kill()
                errors[cell.key] = str(exc)
                continue
            live[cell.key] = worker
            loaded.append(cell)
    arg = {"max_seconds": settings.warmup_max_seconds}
    arg.update(window_seconds=settings.warmup_window_seconds, k=settings.warmup_windows)
    arg.update(tolerance=settings.warmup_tolerance)
    for cell in loaded:
        try:
            cell.warmup = live[cell.key].request(
                "warmup", arg, settings.warmup_max_seconds * 3 + 180
            )
        except WorkerError as exc:
            live.pop(cell.key).kill()
            errors[cell.key] = str(exc)
            continue
        cell.spent += cell.warmup["seconds"]
    return errors


def _collect(previous: pd.DataFrame, states: dict[str, _Cell], machine: str) -> list[TrialRow]:
    names = set(TrialRow.__dataclass_fields__)
    rows: list[TrialRow] = []
    if not previous.empty:
        old = previous[(previous["machine"] == machine) & previous["cell"].isin(list(states))]
        for rec in old.to_dict("records"):
            rows.append(TrialRow(**{k: _none_if_nan(k, v) for k, v in rec.items() if k in names}))
    for cell in states.values():
        rows.extend(cell.rows)
    return rows


def _none_if_nan(key: str, value: Any) -> Any:
    if key != "throughput" and isinstance(value, float) and math.isnan(value):
        return None
    return value


_LAT = ("mean", "median", "p90", "p99")


def summarize(rows: Iterable[TrialRow] | pd.DataFrame) -> pd.DataFrame:
    """One readable row per (machine, cell): throughput with its 95% CI, latencies, output check.

    Columns: model, engine, precision, ran_precision, scenario, batch_size, threads, throughput
    (mean of trial throughputs, items/s), ci (95% half-width), ci_rel, latency_ms_* (mean over
    trials of the per-trial statistic), trials, rejected (trials repeated for CPU steal), calls,
    seconds (load + warm-up + trials), cpu_steal (mean over kept trials of the share of CPU time the
    hypervisor took; NaN where not recorded), output_max_abs_diff, output_ok, flag ("WRONG OUTPUT"
    when the cross-check failed), status, error.

    Example:
        >>> summarize(rows)[["engine", "throughput", "ci"]]  # doctest: +SKIP
    """
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([r.to_dict() for r in rows])
    out = []
    if df.empty:
        return pd.DataFrame()
    for (machine, cell), g in df.groupby(["machine", "cell"], sort=False):
        ok = g[g["status"] == "ok"]
        failed = g[g["status"] == "failed"]
        last = ok.iloc[-1] if len(ok) else g.iloc[0]
        es = last["engine_settings"] if isinstance(last["engine_settings"], dict) else {}
        bench = es.get("bench", {})
        tp = ok["throughput"].astype(float).to_numpy()
        mean = float(tp.mean()) if tp.size else float("nan")
        ci = ci_half_width(tp)
        lat = {f"latency_ms_{k}": ok[f"latency_ms_{k}"].astype(float).mean() for k in _LAT}
        steal = ok["cpu_steal"].astype(float).mean() if "cpu_steal" in ok else float("nan")
        seconds = float(bench.get("cell_seconds") or 0.0) + float(bench.get("load_seconds") or 0.0)
        out.append(
            {
                "machine": machine,
                "cell": cell,
                **{k: last[k] for k in CELL_FIELDS},
                "ran_precision": es.get("precision"),
                "throughput": mean,
                "ci": ci,
                "ci_rel": ci / mean if tp.size and mean > 0 else float("nan"),
                **lat,
                "trials": int(tp.size),
                "rejected": int((g["status"] == "rejected").sum()),
                "calls": int(ok["calls"].sum()),
                "seconds": seconds,
                "cpu_steal": steal,
                "output_max_abs_diff": last["output_max_abs_diff"],
                "output_ok": last["output_ok"],
                "flag": "WRONG OUTPUT" if _is_false(last["output_ok"]) else "",
                "status": "failed" if len(failed) else "ok",
                "error": failed.iloc[-1]["error"] if len(failed) else None,
                "engine_version": last["engine_version"],
            }
        )
    return pd.DataFrame(out)


def _is_false(value: Any) -> bool:
    """True only for a recorded failed check (not for None/NaN, "not compared")."""
    return (
        value is not None
        and not (isinstance(value, float) and math.isnan(value))
        and not bool(value)
    )


def _table(summary: pd.DataFrame) -> str:
    """The readable CLI table."""
    if summary.empty:
        return "(no results)"
    lines = []
    for _, r in summary.iterrows():
        check = (
            "n/a"
            if r["output_ok"] is None or pd.isna(r["output_ok"])
            else ("ok" if r["output_ok"] else "WRONG")
        )
        if r["output_max_abs_diff"] is not None and not pd.isna(r["output_max_abs_diff"]):
            check += f" ({r['output_max_abs_diff']:.1e})"
        tp = (
            "-" if not r["trials"] else f"{r['throughput']:.2f} ± {r['ci']:.2f} ({r['ci_rel']:.1%})"
        )
        lines.append(
            {
                "model": r["model"],
                "engine": r["engine"],
                "precision": f"{r['precision']}->{r['ran_precision']}"
                if isinstance(r["ran_precision"], str)
                else r["precision"],
                "scenario": f"{r['scenario']} b{r['batch_size']} t{r['threads']}",
                "items/s ± 95% CI": tp,
                "lat ms mean/med/p90/p99": "-"
                if not r["trials"]
                else "/".join(
                    f"{r[f'latency_ms_{k}']:.2f}" for k in ("mean", "median", "p90", "p99")
                ),
                "output": check + (" !" if r["flag"] else ""),
                "trials": r["trials"]
                if not r["rejected"]
                else f"{r['trials']} (+{r['rejected']} rejected)",
                "s": f"{r['seconds']:.0f}",
                "steal": "-" if pd.isna(r["cpu_steal"]) else f"{r['cpu_steal']:.0%}",
                "status": r["status"]
                if r["status"] == "ok"
                else f"FAILED: {str(r['error']).splitlines()[0][:100]}",
            }
        )
    return pd.DataFrame(lines).to_string(index=False)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"`--input-shape` must be integers like 3,224,224; got {text!r}"
        ) from exc
    return shape


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m study.bench``: measure one model on one or all engines and print a table."""
    from study.logs import configure_logging

    p = argparse.ArgumentParser(prog="python -m study.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="ONNX file")
    p.add_argument(
        "--engine",
        action="append",
        choices=[*ENGINES, "all"],
        help="engine (repeatable; default all)",
    )
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--threads",
        type=int,
        default=physical_cores(),
        help="threads for every engine (default: physical cores)",
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="sync")
    p.add_argument("--precision", choices=PRECISIONS, default="f32")
    p.add_argument(
        "--max-seconds", type=float, default=BenchSettings.max_seconds_per_cell, help="cap per cell"
    )
    p.add_argument(
        "--target-ci",
        type=float,
        default=BenchSettings.target_ci,
        help="relative 95%% CI half-width",
    )
    p.add_argument("--trial-seconds", type=float, default=BenchSettings.trial_seconds)
    p.add_argument("--min-trials", type=int, default=BenchSettings.min_trials)
    p.add_argument("--max-trials", type=int, default=BenchSettings.max_trials)
    p.add_argument("--warmup-max-seconds", type=float, default=BenchSettings.warmup_max_seconds)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--parallel-loads",
        type=int,
        default=None,
        help="workers loaded at once, while nothing is timed (default: physical cores)",
    )
    p.add_argument(
        "--input-shape", type=_parse_shape, help="per-item shape for dynamic dims, e.g. 3,224,224"
    )
    p.add_argument(
        "--torch-module", help="torch.save'd module for --engine torch (default: <model>.pt)"
    )
    p.add_argument(
        "--out",
        default="runs/bench.jsonl",
        help="results JSONL (appended; environment.json beside it)",
    )
    p.add_argument(
        "--noise-floor",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first time a fixed matmul workload for SECONDS in trials of --trial-seconds, record "
        "it in environment.json and print how much this machine varies between trials, which "
        "bounds the CI any cell can reach (study.noise; 0: skip)",
    )
    p.add_argument(
        "--max-steal",
        type=float,
        default=None,
        metavar="FRACTION",
        help="repeat a trial during which the hypervisor took more than this share of the CPU "
        "(e.g. 0.05); the rejected trial is kept in the results, marked (default: keep all)",
    )
    p.add_argument("--no-resume", action="store_true", help="measure finished cells again")
    p.add_argument("--csv", help="also write the summary table as CSV")
    args = p.parse_args(argv)
    configure_logging(-1)
    engines = (
        list(ENGINES)
        if not args.engine or "all" in args.engine
        else list(dict.fromkeys(args.engine))
    )
    try:
        read_input_specs(args.model, args.batch_size, args.input_shape)
        settings = BenchSettings(
            target_ci=args.target_ci,
            max_seconds_per_cell=args.max_seconds,
            trial_seconds=args.trial_seconds,
            min_trials=args.min_trials,
            max_trials=args.max_trials,
            warmup_max_seconds=args.warmup_max_seconds,
            seed=args.seed,
            max_cpu_steal=args.max_steal,
            noise_floor_seconds=args.noise_floor,
            **({} if args.parallel_loads is None else {"parallel_loads": args.parallel_loads}),
        )
        cells = [
            CellSpec(
                args.model,
                e,
                precision=args.precision,
                scenario=args.scenario,
                batch_size=args.batch_size,
                threads=args.threads,
                torch_module_path=args.torch_module,
                input_shape=args.input_shape,
            )
            for e in engines
        ]
        rows = run_benchmark(cells, settings, args.out, progress=True, resume=not args.no_resume)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(rows)
    if args.noise_floor:
        env = json.loads((_out_file(args.out).parent / ENVIRONMENT_FILE).read_text())
        floors = env.get(rows[0].machine, {}).get("noise_floors", []) if rows else []
        if floors:  # none when every cell was already finished
            fields = set(NoiseFloor.__dataclass_fields__)
            print(
                NoiseFloor(**{k: v for k, v in floors[-1].items() if k in fields}), file=sys.stderr
            )
    print(_table(summary))
    if args.csv:
        from study.results import write_csv

        write_csv(summary, args.csv)
    return 0 if (summary["status"] == "ok").any() else 1


if __name__ == "__main__":
    sys.exit(main())
