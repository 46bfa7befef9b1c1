"""Seeded synthetic TrialRow frames for the tests of study.stats and paper.

Each cell's trial throughputs are lognormal: ``base * effect(cell) * exp(N(0, sigma^2))``, so
``effect`` sets the true geometric-mean throughput of a cell and ratios of effects are the true
ratios the statistics should recover. Rows are built through :class:`study.records.schema.TrialRow`
(schema version 3), so they have exactly the columns of ``bench.jsonl``. As the harness measures
them, every cell of one architecture on one machine is in one block (named after the model) and
trial ``t`` is round ``t`` of it; ``drift(cell, round)`` multiplies a round's throughput (a drift
common to the cells of a round cancels in round-paired contrasts).

Example:
    >>> df = synth_trials(effect=lambda c: 1.1 if c["engine"] == "deepsparse" else 1.0)
    >>> drifting = synth_trials(drift=lambda c, r: 1.0 + 0.05 * r)  # every cell 5% faster per round
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from study.records.schema import TrialRow

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
    profiles: Sequence[str] | None = None,
    masks: Sequence[str] | None = None,
    quants: Sequence[str] = ("none",),
    sparsity: float = 0.9,
    scenario: str = "sync",
    batch_size: int = 1,
    threads: int = 2,
    n_trials: int | Callable[[Cell], int] = 8,
    sigma: float = 0.02,
    base: float = 100.0,
    effect: Callable[[Cell], float] | None = None,
    drift: Callable[[Cell, int], float] | None = None,
    fail: Callable[[Cell], str | None] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Build a TrialRow DataFrame over the full grid of the given factors.

    Args:
        machines, models, pruners, exporters, engines, precisions: the grid (every combination).
        profiles, masks: the variants of each pruned model (every combination; None: "uniform"
            and "unstructured"); a dense model (pruner "none") is always "dense" and "none".
        quants: who quantized the file ("none": fp32), for every model.
        sparsity: sparsity of every pruned variant (pruner "none" gets 0.0).
        scenario, batch_size, threads: settings of every cell.
        n_trials: trials per cell, or a function of the cell giving it.
        sigma: standard deviation of log throughput within a cell.
        base: geometric-mean throughput (items/s) when ``effect`` returns 1.
        effect: multiplier of the true throughput per cell (default 1 everywhere).
        drift: multiplier of the throughput of a cell's trial in a round (default 1 everywhere).
        fail: returns a reason for a cell that fails (one failure row, no trials), else None.
        seed: seed of the noise (the whole frame is reproducible).

    Returns:
        One row per trial (and per failed cell), columns of :class:`study.records.schema.TrialRow`.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    grid = itertools.product(machines, models, pruners, quants, exporters, engines, precisions)
    for machine, model, pruner, quant, exporter, engine, precision in grid:
        for profile, mask in _variants(pruner, profiles, masks):
            cell: Cell = dict(
                machine=machine, model=model, pruner=pruner, profile=profile, mask=mask,
                quant=quant, exporter=exporter,
                sparsity=0.0 if pruner == "none" else float(sparsity), engine=engine,
                precision=precision, scenario=scenario, batch_size=batch_size, threads=threads,
            )  # fmt: skip
            rows.extend(_cell_rows(cell, rng, n_trials, sigma, base, effect, drift, fail))
    return pd.DataFrame(rows)


def _variants(
    pruner: str, profiles: Sequence[str] | None, masks: Sequence[str] | None
) -> list[tuple[str, str]]:
    """(profile, mask) of each variant of a model pruned by ``pruner``."""
    if pruner == "none":
        return [("dense", "none")]
    return list(itertools.product(profiles or ("uniform",), masks or ("unstructured",)))


def _cell_rows(
    cell: Cell,
    rng: np.random.Generator,
    n_trials: int | Callable[[Cell], int],
    sigma: float,
    base: float,
    effect: Callable[[Cell], float] | None,
    drift: Callable[[Cell, int], float] | None,
    fail: Callable[[Cell], str | None] | None,
) -> list[dict]:
    """The rows of one cell: one per trial (trial t in round t of the model's block), or a failure."""
    stem = f"{cell['model']}-{cell['pruner']}-{cell['exporter']}"
    reference = (cell["profile"], cell["mask"]) in (("dense", "none"), ("uniform", "unstructured"))
    if not reference or cell["quant"] != "none":  # the reference variants keep their old names
        stem += f"-{cell['profile']}-{cell['mask']}-{cell['quant']}"
    batch_size = int(cell["batch_size"])
    common = dict(
        cell,
        run_id="synthetic",
        cell=cell_id(cell),
        onnx_path=f"models/{stem}.onnx",
        onnx_sha256=hashlib.sha256(stem.encode()).hexdigest(),
        block=str(cell["model"]),
    )
    reason = fail(cell) if fail is not None else None
    if reason is not None:
        failure = TrialRow(
            **common, trial=-1, items=0, seconds=0.0, throughput=float("nan"), calls=0,
            status="failed", error=reason, round=-1,
        )  # fmt: skip
        return [failure.to_dict()]
    mean = base * (effect(cell) if effect is not None else 1.0)
    count = n_trials(cell) if callable(n_trials) else n_trials
    rows = []
    for trial, z in enumerate(rng.normal(0.0, sigma, size=count)):
        throughput = float(mean * np.exp(z) * (drift(cell, trial) if drift is not None else 1.0))
        calls = 50
        seconds = calls * batch_size / throughput
        latency = 1000.0 * batch_size / throughput
        row = TrialRow(
            **common, trial=trial, round=trial, items=calls * batch_size, seconds=seconds,
            throughput=throughput, calls=calls, latency_ms_mean=latency,
            latency_ms_median=latency, latency_ms_p90=1.1 * latency,
            latency_ms_p99=1.3 * latency,
        )  # fmt: skip
        rows.append(row.to_dict())
    return rows
