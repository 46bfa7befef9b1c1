"""A small, deterministic synthetic results folder in the layout ``python -m study.compare`` writes.

Numbers are invented (seeded), shaped like a real run: two architectures, dense / gmp / sparseml at
90% plus a one-shot sweep, three engines, OpenVINO also at its default precision, one failure.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import yaml

from study.hardware import Hardware
from study.schema import LayerZeros, ModelRecord, TrialRow

MACHINE = "m-epyc-test"
MODELS = {"resnet50": 30.0, "mobilenetv1_100": 120.0}  # dense onnxruntime img/s
ENGINE_FACTOR = {"onnxruntime": 1.0, "openvino": 1.3, "deepsparse": 0.9}
SWEEP = (0.5, 0.7, 0.9)
TRIALS = 5
LAYERS = (("conv1", (8, 3, 3, 3)), ("conv2", (16, 8, 3, 3)), ("fc", (10, 64)))

# (pruner, exporter, sparsity) of every ONNX file.
VARIANTS = (
    [("none", "torch", 0.0), ("none", "sparseml", 0.0)]
    + [("gmp", "torch", 0.9), ("sparseml", "torch", 0.9), ("sparseml", "sparseml", 0.9)]
    + [("oneshot", "torch", s) for s in SWEEP]
)


def _speedup(engine: str, sparsity: float, pruner: str) -> float:
    if engine != "deepsparse":
        return 1.0
    bias = 1.03 if pruner == "sparseml" else 1.0  # a small, invented toolchain effect
    return (1.0 + 2.0 * sparsity**3) * bias


def _cell_id(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _manifest(rng: np.random.Generator) -> list[ModelRecord]:
    records = []
    for model in MODELS:
        for pruner, exporter, sparsity in VARIANTS:
            layers = []
            for name, shape in LAYERS:
                numel = int(np.prod(shape))
                jitter = 0.0 if sparsity == 0 else float(rng.uniform(-0.05, 0.05))
                zeros = round(numel * min(max(sparsity + jitter, 0.0), 1.0))
                layers.append(LayerZeros(name=name, shape=shape, numel=numel, zeros=zeros))
            prunable = sum(layer.numel for layer in layers)
            zeros = sum(layer.zeros for layer in layers)
            raw = 100_000 + (7 if exporter == "sparseml" else 0)
            payload = rng.integers(0, 255, size=raw).astype(np.uint8)
            payload[: int(raw * sparsity)] = 0
            accuracy = 0.95 - 0.02 * sparsity - (0.01 if pruner == "oneshot" else 0.0)
            path = f"models/{model}-{pruner}-{exporter}-{sparsity}.onnx"
            records.append(
                ModelRecord(
                    model=model,
                    pruner=pruner,
                    exporter=exporter,
                    sparsity=sparsity,
                    onnx_path=path,
                    onnx_sha256=hashlib.sha256(path.encode()).hexdigest(),
                    input_shape=(1, 3, 32, 32),
                    opset=14 if exporter == "sparseml" else 13,
                    raw_bytes=raw,
                    gzip_bytes=len(gzip.compress(payload.tobytes(), compresslevel=9, mtime=0)),
                    prunable_params=prunable,
                    zeros=zeros,
                    measured_sparsity=zeros / prunable,
                    accuracy=round(accuracy, 4),
                    accuracy_dataset="sklearn-digits",
                    zero_check_ok=True,
                    layers=tuple(layers),
                )
            )
    return records


def _bench_rows(rng: np.random.Generator, deepsparse: bool) -> list[dict]:
    engines = [e for e in ENGINE_FACTOR if deepsparse or e != "deepsparse"]
    rows = []
    for model, base in MODELS.items():
        for pruner, exporter, sparsity in VARIANTS:
            for engine in engines:
                precisions = ["f32", "default"] if engine == "openvino" else ["f32"]
                for precision in precisions:
                    fields = dict(
                        model=model,
                        pruner=pruner,
                        exporter=exporter,
                        sparsity=sparsity,
                        engine=engine,
                        precision=precision,
                        scenario="sync",
                        batch_size=1,
                        threads=2,
                        machine=MACHINE,
                    )
                    mean = base * ENGINE_FACTOR[engine] * _speedup(engine, sparsity, pruner)
                    mean *= 1.6 if precision == "default" else 1.0
                    for trial in range(TRIALS):
                        throughput = float(mean * rng.lognormal(0.0, 0.03))
                        seconds = 2.0
                        rows.append(
                            TrialRow(
                                run_id="run-0",
                                cell=_cell_id(fields),
                                trial=trial,
                                onnx_path=f"models/{model}-{pruner}-{exporter}-{sparsity}.onnx",
                                onnx_sha256="0" * 64,
                                items=round(throughput * seconds),
                                seconds=seconds,
                                throughput=throughput,
                                calls=round(throughput * seconds),
                                latency_ms_mean=1000.0 / throughput,
                                cpu_steal=round(float(rng.uniform(0.0, 0.1)), 4),
                                engine_version={
                                    "onnxruntime": "1.26.0",
                                    "openvino": "2026.4.1",
                                }.get(engine, "1.8.0"),
                                timestamp=f"2026-11-23T00:00:{trial:02d}Z",
                                **fields,
                            ).to_dict()
                        )
    failed = dict(rows[0], trial=-1, throughput=float("nan"), status="failed", error="boom")
    failed.update(engine="torch", cell=_cell_id({"engine": "torch"}), engine_version="2.15.0")
    rows.append(failed)
    # A trial rejected for CPU steal (and repeated): an outlier no statistic may include.
    rejected = dict(rows[0], trial=TRIALS, throughput=rows[0]["throughput"] / 10, cpu_steal=0.4)
    rows.append(dict(rejected, status="rejected", error="CPU steal 40.0% > max_cpu_steal 5.0%"))
    return rows


def write_results(
    root: Path,
    *,
    sensitivity: bool = True,
    deepsparse: bool = True,
    layers: bool = True,
    optional_files: bool = True,
) -> Path:
    """Write the synthetic results folder into ``root`` and return it.

    Args:
        root: target folder (created).
        sensitivity: write sensitivity.csv.
        deepsparse: include DeepSparse rows in bench.jsonl.
        layers: keep the per-layer zeros in the manifest.
        optional_files: write config.yaml, environment.json, training.csv, failures.jsonl and the
            manifest; False leaves bench.jsonl alone.
    """
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = _bench_rows(rng, deepsparse)
    with (root / "bench.jsonl").open("w") as fh:
        fh.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    if not optional_files:
        return root
    (root / "models").mkdir(exist_ok=True)
    records = [r.to_dict() for r in _manifest(rng)]
    if not layers:
        records = [dict(r, layers=[]) for r in records]
    with (root / "models" / "manifest.jsonl").open("w") as fh:
        fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
    config = {
        "name": "quick",
        "models": list(MODELS),
        "weights": "random",
        "data": "digits",
        "bench": {
            "min_trials": 3,
            "max_trials": TRIALS,
            "target_rel_ci": 0.05,
            "warmup_s": 1.0,
            "max_cpu_steal": 0.05,
        },
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    hardware = Hardware(
        machine=MACHINE,
        cpu_model="AMD EPYC 9R14 (synthetic)",
        vendor="AuthenticAMD",
        family=25,
        model_number=17,
        microarchitecture="Zen 4",
        isa={"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_tile": False},
        l1d_bytes=32 << 10,
        l1i_bytes=32 << 10,
        l2_bytes=1 << 20,
        l3_bytes=32 << 20,
        physical_cores=2,
        logical_cpus=2,
        max_mhz=None,
        os="Linux-synthetic",
        kernel="6.0",
        python="3.11.9",
        packages={"onnxruntime": "1.26.0", "openvino": "2026.4.1", "deepsparse": "1.8.0"},
        git_commit="abc1234",
    )
    floor = {"workload": "numpy float32 matmul 384x384", "threads": 2, "trial_seconds": 0.3}
    floor |= {"trials": 16, "mean": 1000.0, "lag1": 0.1, "min_ratio": 0.8, "cpu_steal": 0.01}
    floors = [dict(floor, cv=0.042), dict(floor, cv=0.118)]
    environment = {MACHINE: {**hardware.to_dict(), "noise_floors": floors}}
    (root / "environment.json").write_text(json.dumps(environment, sort_keys=True, indent=1))
    steps = [
        {
            "model": m,
            "pruner": p,
            "seed": 0,
            "step": s,
            "epoch": s // 5,
            "loss": 2.0 / (s + 1),
            "lr": 0.01,
            "zeros": s * 10,
            "sparsity": min(0.9, s / 10),
        }
        for m in MODELS
        for p in ("gmp", "sparseml")
        for s in range(10)
    ]
    _write_csv(root / "training.csv", steps)
    if sensitivity:
        sens = [
            {
                "model": m,
                "layer": name,
                "numel": int(np.prod(shape)),
                "level": level,
                "method": "magnitude",
                "metric": round(0.95 - level**4 * (i + 1) / 4, 4),
            }
            for m in MODELS
            for i, (name, shape) in enumerate(LAYERS)
            for level in (0.0, 0.5, 0.9)
        ]
        _write_csv(root / "sensitivity.csv", sens)
    failure = {
        "stage": "bench",
        "model": "resnet50",
        "pruner": "none",
        "exporter": "torch",
        "engine": "torch",
        "reason": "boom",
    }
    (root / "failures.jsonl").write_text(json.dumps(failure, sort_keys=True) + "\n")
    return root


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
