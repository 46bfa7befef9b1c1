"""Seeded TrialRow frames with variance at every level: round, replicate (process), run.

For cells c with true mean log throughput ``mu_c``, experiment e, run u, replicate k, round r:

    log x = mu_c + drift[e, u, k, r] + run[e, c, u] + process[e, c, u, k] + noise[e, c, u, k, r]

``drift`` is common to every cell of a round (it cancels in a round-paired contrast); ``run`` and
``process`` are per cell (they do not cancel, and a round-only SE cannot see them); ``noise`` is
per trial. Every cell is measured once per round in block ``b0``. Experiment e is machine
``e<e>``, so one frame holds many independent experiments (analyse them one machine at a time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.records.schema import CELL_FIELDS, TrialRow

__all__ = ["B_WEIGHTS", "nested_trials"]

B_WEIGHTS = {"c0": 1.0, "c1": -1.0, "c2": -1.0, "c3": 1.0}  # a channel's B over four cells

_TEMPLATE = {
    k: v
    for k, v in TrialRow(
        run_id="",
        machine="",
        cell="",
        trial=0,
        model="resnet50",
        pruner="gmp",
        exporter="torch",
        sparsity=0.9,
        onnx_path="models/x.onnx",
        onnx_sha256="0" * 64,
        engine="openvino",
        precision="f32",
        scenario="sync",
        batch_size=1,
        threads=2,
        items=1,
        seconds=1.0,
        throughput=1.0,
        calls=1,
        profile="uniform",
        mask="unstructured",
    )
    .to_dict()
    .items()  # fmt: skip
    if k in (*CELL_FIELDS, "onnx_sha256", "status")
}


def _labels(prefix: str, codes: np.ndarray) -> np.ndarray:
    names = np.array([f"{prefix}{i}" for i in range(int(codes.max()) + 1)], dtype=object)
    return names[codes]


def nested_trials(
    log_means,
    *,
    experiments: int = 1,
    runs: int = 1,
    replicates: int = 1,
    rounds: int = 10,
    sd_drift: float = 0.1,
    sd_noise: float = 0.02,
    sd_process: float = 0.0,
    sd_run: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """TrialRow-shaped ok rows of cells ``c0, c1, ...`` (see the module docstring).

    Args:
        log_means: mu_c, one per cell.
        experiments, runs, replicates, rounds: the nested design's sizes.
        sd_drift, sd_noise, sd_process, sd_run: standard deviations of the four terms.
        seed: seed of every draw.

    Returns:
        One row per trial: ``machine`` (``e<i>``), ``run_id`` (``run<u>``), ``replicate``,
        ``block`` ("b0"), ``round``, ``cell`` (``c<i>``), ``trial`` and ``throughput``.
    """
    rng = np.random.default_rng(seed)
    mu = np.asarray(log_means, dtype=float)
    e_, c_, u_, k_, r_ = experiments, mu.size, runs, replicates, rounds
    log_x = (
        mu[None, :, None, None, None]
        + rng.normal(0.0, sd_drift, (e_, 1, u_, k_, r_))
        + rng.normal(0.0, sd_run, (e_, c_, u_, 1, 1))
        + rng.normal(0.0, sd_process, (e_, c_, u_, k_, 1))
        + rng.normal(0.0, sd_noise, (e_, c_, u_, k_, r_))
    )  # (experiments, cells, runs, replicates, rounds)
    e, c, u, k, r = np.indices(log_x.shape).reshape(5, -1)
    df = pd.DataFrame({k: np.repeat(np.array([v], dtype=object), e.size) for k, v in
                       _TEMPLATE.items()})  # fmt: skip
    df["machine"], df["cell"], df["run_id"] = _labels("e", e), _labels("c", c), _labels("run", u)
    df["replicate"], df["round"], df["block"] = k, r, "b0"
    df["trial"] = (u * k_ + k) * r_ + r
    df["throughput"] = np.exp(log_x.ravel())
    return df
