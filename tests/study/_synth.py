"""Seeded synthetic TrialRow frames for the tests of study.stats and paper.

Each cell's trial throughputs are lognormal: ``base * effect(cell) * exp(N(0, sigma^2))``, so
``effect`` sets the true geometric-mean throughput of a cell and ratios of effects are the true
ratios the statistics should recover. Rows are built through :class:`study.schema.TrialRow`, so
they have exactly the columns of ``bench.jsonl``.

Example:
    >>> df = synth_trials(effect=lambda c: 1.1 if c["engine"] == "deepsparse" else 1.0)
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from study.schema import TrialRow

__all__ = ["cell_id", "synth_trials"]

Cell = dict[str, object]


def cell_id(cell: Cell) -> str:
    """A stable 12-hex-digit id of a cell's fields (a stand-in for the harness's own hash)."""
    text = json.dumps(cell, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def synth_trials(
    *,
    machines: Sequence[str] = ("m0",),
    models: Sequence[str] = ("resnet50", "vgg19", "mobilenetv1_100"),
    pruners: Sequence[str] = ("none", "gmp", "sparseml"),
    exporters: Sequence[str] = ("torch",),
    engines: Sequence[str] = ("onnxruntime", "openvino", "deepsparse"),
    precisions: Sequence[str] = ("f32",),
    sparsity: float = 0.9,
    scenario: str = "sync",
    batch_size: int = 1,
    threads: int = 2,
    n_trials: int | Callable[[Cell], int] = 8,
    sigma: float = 0.02,
    base: float = 100.0,
    effect: Callable[[Cell], float] | None = None,
    fail: Callable[[Cell], str | None] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Build a TrialRow DataFrame over the full grid of the given factors.

    Args:
        machines, models, pruners, exporters, engines, precisions: the grid (every combination).
        sparsity: sparsity of every pruned variant (pruner "none" gets 0.0).
        scenario, batch_size, threads: settings of every cell.
        n_trials: trials per cell, or a function of the cell giving it.
        sigma: standard deviation of log throughput within a cell.
        base: geometric-mean throughput (items/s) when ``effect`` returns 1.
        effect: multiplier of the true throughput per cell (default 1 everywhere).
        fail: returns a reason for a cell that fails (one failure row, no trials), else None.
        seed: seed of the noise (the whole frame is reproducible).

    Returns:
        One row per trial (and per failed cell), columns of :class:`study.schema.TrialRow`.
    """
    rng = np.random.default_rng(seed)
    rows = []
    grid = itertools.product(machines, models, pruners, exporters, engines, precisions)
    for machine, model, pruner, exporter, engine, precision in grid:
        cell: Cell = dict(
            machine=machine,
            model=model,
            pruner=pruner,
            exporter=exporter,
            sparsity=0.0 if pruner == "none" else float(sparsity),
            engine=engine,
            precision=precision,
            scenario=scenario,
            batch_size=batch_size,
            threads=threads,
        )
        stem = f"{model}-{pruner}-{exporter}"
        common = dict(
            cell,
            run_id="synthetic",
            cell=cell_id(cell),
            onnx_path=f"models/{stem}.onnx",
            onnx_sha256=hashlib.sha256(stem.encode()).hexdigest(),
        )
        reason = fail(cell) if fail is not None else None
        if reason is not None:
            failure = TrialRow(
                **common, trial=-1, items=0, seconds=0.0, throughput=float("nan"), calls=0,
                status="failed", error=reason,
            )  # fmt: skip
            rows.append(failure.to_dict())
            continue
        mean = base * (effect(cell) if effect is not None else 1.0)
        count = n_trials(cell) if callable(n_trials) else n_trials
        for trial, z in enumerate(rng.normal(0.0, sigma, size=count)):
            throughput = float(mean * np.exp(z))
            calls = 50
            seconds = calls * batch_size / throughput
            latency = 1000.0 * batch_size / throughput
            row = TrialRow(
                **common, trial=trial, items=calls * batch_size, seconds=seconds,
                throughput=throughput, calls=calls, latency_ms_mean=latency,
                latency_ms_median=latency, latency_ms_p90=1.1 * latency,
                latency_ms_p99=1.3 * latency,
            )  # fmt: skip
            rows.append(row.to_dict())
    return pd.DataFrame(rows)
