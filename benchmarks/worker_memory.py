"""Calibration of the harness's memory estimate (:data:`study.bench.split.ENGINE_MEMORY`).

Loads one real worker per (ONNX file, engine), as the harness does (:mod:`study.bench.workers`),
warms it up, and reads the resident memory of its process and children with psutil (the peak of
a few samples taken during timed windows). Prints one line per worker, a least-squares fit
``USS = a + b x file size`` per engine (scipy.stats.linregress) and the estimate of
:func:`study.bench.split.cell_memory`, which must lie above every measurement. Workers are
measured one at a time, so the figures do not depend on other load (memory, unlike time, is not
disturbed by a busy machine).

Usage::

    uv run python -m benchmarks.worker_memory FILE.onnx [FILE.onnx ...] --engines onnxruntime,openvino,deepsparse
"""

from __future__ import annotations

import argparse
from pathlib import Path

import psutil
from scipy import stats

from study.bench import BenchSettings, CellSpec
from study.bench.split import cell_memory
from study.bench.workers import load_workers, warm_up
from study.engines import ENGINES

MB = 2**20


def worker_rss(onnx_path: str, engine: str, threads: int = 2) -> int:
    """Peak unique bytes (USS) of one loaded, warmed-up worker of ``engine`` on ``onnx_path``.

    Raises:
        RuntimeError: the worker could not load.
    """
    spec = CellSpec(onnx_path, engine, threads=threads)
    settings = BenchSettings(warmup_max_seconds=1.0, parallel_loads=1)
    loaded, errors = load_workers({"cell": spec}, settings, ENGINES)
    if errors:
        raise RuntimeError(f"{engine} could not load {onnx_path}: {errors['cell']}")
    worker, _ = loaded["cell"]
    try:
        warm_up(worker, settings)
        peak = 0
        for _ in range(3):
            worker.request("window", 0.2, 60)
            proc = psutil.Process(worker.process.pid)
            # unique set size: the pages this worker alone holds (its weights, arenas, caches);
            # the engine's shared libraries are mapped once for all workers of a block, so
            # summing USS over a block's workers would count them once per worker
            uss = sum(p.memory_full_info().uss for p in [proc, *proc.children(recursive=True)])
            peak = max(peak, uss)
        return peak
    finally:
        worker.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker_memory", description=__doc__)
    p.add_argument("files", nargs="+", type=Path, help="ONNX files of different sizes")
    p.add_argument("--engines", default="onnxruntime,openvino,deepsparse")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    for engine in args.engines.split(","):
        sizes, rss = [], []
        for path in sorted(args.files, key=lambda f: f.stat().st_size):
            size = path.stat().st_size
            measured = worker_rss(str(path), engine, args.threads)
            estimate = cell_memory(CellSpec(str(path), engine), size)
            sizes.append(size / MB)
            rss.append(measured / MB)
            print(
                f"{engine:12s} {path.name:60s} file {size / MB:7.1f} MB  USS {measured / MB:7.1f} MB"
                f"  estimate {estimate / MB:7.1f} MB{'' if estimate >= measured else '  LOW'}"
            )
        if len(sizes) >= 2:
            fit = stats.linregress(sizes, rss)
            print(f"{engine:12s} fit: USS = {fit.intercept:.0f} MB + {fit.slope:.2f} x file")


if __name__ == "__main__":
    main()
