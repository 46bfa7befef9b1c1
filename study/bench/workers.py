"""Loading and warm-up of a block's workers (one process per cell, :mod:`study.engines.worker`).

Loading (process start, imports, the ONNX Runtime reference run, the engine's compile) is mostly
single-threaded (a DeepSparse compile uses one core), so ``parallel_loads`` workers load at once, a
new load starting as soon as one ends; nothing is timed meanwhile. Warm-up then runs one worker at
a time with nothing else running, as trials do.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Mapping
from multiprocessing.connection import wait as wait_connections
from typing import Any

import psutil

from study.bench.cells import BenchSettings, CellSpec
from study.bench.split import cell_memory
from study.engines import EngineAdapter, EngineConfig, EngineUnavailable
from study.engines.base import read_input_specs
from study.engines.server import fresh_server
from study.engines.worker import Worker, WorkerError, WorkerOptions

__all__ = [
    "LOAD_TIMEOUT",
    "engine_config",
    "load_workers",
    "warm_up",
    "warn_if_low_memory",
]

log = logging.getLogger(__name__)

LOAD_TIMEOUT = 900.0  # seconds a worker may take to load before it is killed


def engine_config(spec: CellSpec, registry: Mapping[str, type[EngineAdapter]]) -> EngineConfig:
    """Check what the parent can check (clear messages, nothing spawned) and build the config.

    Raises:
        EngineUnavailable: the engine's package is not installed.
        ValueError: the engine lacks the scenario, or the input shape does not fit the model.
        FileNotFoundError: no such model file.
    """
    cls = registry[spec.engine]
    cls.check_available()
    if spec.scenario not in cls.scenarios:
        raise ValueError(
            f"engine {spec.engine!r} supports scenario {list(cls.scenarios)}; got {spec.scenario!r}"
        )
    read_input_specs(spec.onnx_path, spec.batch_size, spec.input_shape)
    return EngineConfig(
        spec.onnx_path,
        spec.batch_size,
        spec.threads,
        spec.precision,
        spec.scenario,
        spec.input_shape,
        spec.torch_module_path,
        spec.isa,
    )


def warn_if_low_memory(specs: Collection[CellSpec], block: str) -> None:
    """Log a warning when less memory is available than the workers of ``specs`` are estimated
    to need (:func:`study.bench.split.cell_memory`; the run was planned with more available)."""
    need = sum(cell_memory(spec) for spec in specs)
    available = psutil.virtual_memory().available
    if available < need:
        log.warning(
            "block %r: loading %d workers with %.1f GiB of memory available (their estimated "
            "need is %.1f GiB); a worker killed for memory becomes a failure row",
            block,
            len(specs),
            available / 2**30,
            need / 2**30,
        )


def load_workers(
    specs: Mapping[str, CellSpec],
    settings: BenchSettings,
    registry: Mapping[str, type[EngineAdapter]],
) -> tuple[dict[str, tuple[Worker, dict[str, Any]]], dict[str, str]]:
    """Start and load one worker per cell, ``settings.parallel_loads`` at a time.

    Args:
        specs: cell key -> its spec.
        settings: ``parallel_loads``, ``seed`` and ``output_rtol`` are used.
        registry: engine name -> adapter class.

    Returns:
        (cell key -> (its loaded worker, the worker's info: version, settings, output check,
        load_seconds)), and cell key -> error for the cells that could not load.
    """
    loaded: dict[str, tuple[Worker, dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    queue = deque(specs.items())
    loading: dict[Any, tuple[str, Worker]] = {}  # parent end of the pipe -> its cell and worker
    opts = WorkerOptions(settings.seed, settings.output_rtol)
    fresh_server()  # this set of workers forks from a server of its own (study.engines.server)
    while queue or loading:
        while queue and len(loading) < settings.parallel_loads:  # keep that many loads going
            key, spec = queue.popleft()
            try:
                config = engine_config(spec, registry)
            except (ValueError, FileNotFoundError, EngineUnavailable) as exc:
                errors[key] = str(exc)
                continue
            worker = Worker(registry[spec.engine], config, opts)
            loading[worker.connection] = (key, worker)
        if not loading:
            break
        ready = wait_connections(list(loading), timeout=LOAD_TIMEOUT)
        if not ready:  # nothing answered for LOAD_TIMEOUT seconds: give up on all of them
            ready = list(loading)
        for conn in ready:
            key, worker = loading.pop(conn)
            try:
                info = worker.start(timeout=1.0)  # ready: it answers at once
            except WorkerError as exc:
                worker.kill()
                errors[key] = str(exc)
                continue
            loaded[key] = (worker, info)
    return loaded, errors


def warm_up(worker: Worker, settings: BenchSettings) -> dict[str, Any]:
    """Run the worker until its window throughputs are steady (or the cap); return its report.

    Raises:
        WorkerError: the worker failed or died.
    """
    arg = {"max_seconds": settings.warmup_max_seconds}
    arg.update(window_seconds=settings.warmup_window_seconds, k=settings.warmup_windows)
    arg.update(tolerance=settings.warmup_tolerance)
    return worker.request("warmup", arg, settings.warmup_max_seconds * 3 + 180)
