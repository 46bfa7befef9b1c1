"""A small, deterministic synthetic results folder in the layout ``python -m study.compare`` writes.

Numbers are invented (seeded), shaped like a real run of the new design: two architectures of the
smoke preset's factors (every factor; int8 on ``small_cnn`` only), the variants
``study.design.variants`` makes, three engines measured round by round in one block per
architecture (OpenVINO also at its default precision on the dense and reference models and with
sparse weights on the int8 files), a manifest of schema version 3 (accuracy, the gate's
``trained``, mask diagnostics, content hashes; the SparseML-pruned reference is the A/A twin of
gmp's file), and a config.yaml that ``study.config.load_config`` reads.

Known truths a test can check: every channel's B is 1 except ``mask:block4``, where DeepSparse is
:data:`BLOCK4_BIAS` times faster on the block-masked file (B = 1.25 for deepsparse/openvino and
deepsparse/onnxruntime, 1 for openvino/onnxruntime); the A/A B is 1 (resnet18: the same file twice; small_cnn: its own file, same numbers); the
int8 files run int8 kernels in OpenVINO on torch.ao's file and in DeepSparse on SparseML's only;
``resnet18``'s block4 model is below the accuracy gate ("not trained"), and its vendor-profile
file is 3 points sparser than its reference (:data:`SPARSITY_MISMATCH`): both B's are set apart
from the pooled ones. Every other file holds the target overall sparsity. Every round multiplies all
cells of a block by a common drift, which round-paired contrasts cancel.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from study.bench.hardware import Hardware
from study.config import StudyConfig, load_config
from study.design import Variant, is_reference, variants
from study.records.schema import LayerZeros, ModelRecord, TrialRow

MACHINE = "m-epyc-test"
MODELS = {"small_cnn": 400.0, "resnet18": 60.0}  # dense onnxruntime img/s
INT8_MODEL = "small_cnn"
ENGINE_FACTOR = {"onnxruntime": 1.0, "openvino": 1.3, "deepsparse": 0.9}
BLOCK4_BIAS = 1.25  # invented: DeepSparse alone gains 25% on SparseML's 1x4 block masks
SWEEP = (0.5, 0.7, 0.9)
ROUNDS = 5
SIGMA = 0.02  # per-trial noise (sd of log throughput)
DATASET = "sklearn-digits (held-out 20%)"
SIGNED_ZEROS = {"small_cnn": 17, "resnet18": 0}  # SparseML's -0.0 where gmp has 0.0
LAYERS = (("conv1", (8, 3, 3, 3)), ("conv2", (16, 8, 3, 3)), ("fc", (10, 64)))
# Each profile's per-layer sparsity, relative; scaled so the file holds the target overall (the
# vendor profile leaves the stem dense).
PROFILE_SHAPE = {"uniform": (1.0, 1.0, 1.0), "vendor": (0.0, 0.95, 0.8), "global": (0.6, 0.95, 0.7)}
# The one deliberate mismatch: resnet18's vendor-profile file is 3 points sparser than its
# reference (as MobileNetV1's block4 file came out at 93.1% against 90%); its B is set apart.
SPARSITY_MISMATCH = {("resnet18", "vendor"): 0.03}
# int8 speed-up per engine and quantizer: each engine runs int8 kernels on one toolchain's file.
INT8_GAIN = {
    "torch": {"openvino": 2.0, "onnxruntime": 1.5, "deepsparse": 1.0},
    "sparseml": {"openvino": 1.0, "onnxruntime": 1.2, "deepsparse": 2.5},
}
BENCH = {"scenarios": ["sync"], "batch_size": 1, "threads": 2, "min_trials": 3}
BENCH |= {"max_trials": ROUNDS, "target_ci": 0.05, "max_cpu_steal": 0.05}


def study_config() -> StudyConfig:
    """The configuration the folder was "run" with: the smoke preset on two architectures."""
    overrides = {"models": list(MODELS), "int8_models": [INT8_MODEL], "sweep": list(SWEEP)}
    # the single-factor design only (the whole-toolchain variants are tested in tests/study), and
    # the quantizers torch.ao and SparseML (NNCF's quantizer is tested there too)
    factors = {f: list(v) for f, v in load_config("smoke").factors.items() if f != "toolchain"}
    factors["quantizer"] = [q for q in factors["quantizer"] if q in INT8_GAIN]
    return load_config("smoke", overrides | {"bench": BENCH, "factors": factors})


def _effect(v: Variant, engine: str, precision: str) -> float:
    """True throughput of a variant on an engine relative to its dense onnxruntime fp32 cell."""
    x = ENGINE_FACTOR[engine] * (1.6 if precision == "default" else 1.0)
    if v.pruner == "none":
        return x
    x *= 1.0 + 2.0 * v.sparsity**3 if engine == "deepsparse" else 1.0
    x *= 0.97 if v.exporter == "sparseml" else 1.0  # the same for every engine: B = 1
    x *= 0.95 if v.profile == "vendor" else 1.0
    x *= BLOCK4_BIAS if (v.mask == "block4" and engine == "deepsparse") else 1.0
    return x * (INT8_GAIN[v.quant][engine] if v.quant != "none" else 1.0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _path(v: Variant) -> str:
    reference = dataclasses.replace(v, pruner="gmp")  # a byte-identical A/A twin is gmp's file
    one_file = _is_twin(v) and not SIGNED_ZEROS[v.model]
    return f"models/{(reference if one_file else v).name}.onnx"


def _is_twin(v: Variant) -> bool:
    return v.pruner == "sparseml" and is_reference(dataclasses.replace(v, pruner="gmp"))


def _engine_settings(v: Variant, engine: str, precision: str) -> dict:
    if engine == "openvino":
        int8 = v.quant == "torch"  # OpenVINO runs torch.ao's QDQ graph in u8, SparseML's in f32
        kind = "u8" if int8 else ("bf16" if precision == "default" else "f32")
        out = {"runtime_precisions": {"Convolution": {kind: 2}, "FullyConnected": {kind: 1}}}
        if precision == "f32-sparse":
            out |= {"sparse_weights_took_effect": False, "sparse_weights_reason": (
                "the CPU has no AMX (amx_int8/amx_tile absent from /proc/cpuinfo flags); OpenVINO "
                "decompresses sparse weights only in AMX INT8 FullyConnected kernels"
            )}  # fmt: skip
        return out
    if engine == "deepsparse":
        frac = 0.0 if v.quant == "torch" else 1.0  # DeepSparse compiles SparseML's int8 form only
        return {"fraction_of_supported_ops": frac, "cpu_vnni": True}
    return {"providers": ["CPUExecutionProvider"]}


def _cells(cfg: StudyConfig, model: str, deepsparse: bool) -> list[tuple[Variant, str, str]]:
    """(variant, engine, precision) of every cell of ``model``'s block, as study.compare makes them."""
    engines = [e for e in cfg.engines if deepsparse or e != "deepsparse"]
    out = []
    for v in variants(cfg, model):
        out += [(v, e, "f32") for e in engines]
        if v.exporter == "torch" and v.quant == "none" and (v.pruner == "none" or is_reference(v)):
            out.append((v, "openvino", "default"))
        if v.quant != "none":
            out.append((v, "openvino", "f32-sparse"))
    return out


def _bench_rows(cfg: StudyConfig, rng: np.random.Generator, deepsparse: bool) -> list[dict]:
    rows = []
    for model, base in MODELS.items():
        block = f"{model}/sync"
        cells = _cells(cfg, model, deepsparse)
        order = np.arange(len(cells))
        for r in range(ROUNDS):
            drift = 1.0 + 0.2 * (r % 2) - 0.05 * r  # common to every cell of the round
            # A seeded random order; odd rounds the previous order reversed (counterbalanced).
            order = rng.permutation(len(cells)) if r % 2 == 0 else order[::-1]
            for i in order:
                v, engine, precision = cells[i]
                fields = dict(v.columns(), model=model, engine=engine, precision=precision)
                fields |= {"scenario": "sync", "batch_size": 1, "threads": 2, "machine": MACHINE}
                throughput = base * _effect(v, engine, precision) * drift
                throughput *= float(rng.lognormal(0.0, SIGMA))
                rows.append(
                    TrialRow(
                        run_id="run-0",
                        cell=_sha(json.dumps(fields, sort_keys=True))[:16],
                        trial=r,
                        onnx_path=_path(v),
                        onnx_sha256=_sha(_path(v)),
                        items=round(throughput * 2.0),
                        seconds=2.0,
                        throughput=throughput,
                        calls=round(throughput * 2.0),
                        latency_ms_mean=1000.0 / throughput,
                        cpu_steal=round(float(rng.uniform(0.0, 0.1)), 4),
                        engine_version={"onnxruntime": "1.26.0", "openvino": "2026.4.1"}.get(
                            engine, "1.8.0"
                        ),
                        engine_settings=_engine_settings(v, engine, precision),
                        output_max_abs_diff=0.0,
                        output_ok=True,
                        timestamp=f"2026-12-02T00:{r:02d}:00Z",
                        block=block,
                        round=r,
                        **fields,
                    ).to_dict()
                )
    failed = dict(rows[0], trial=-1, round=-1, throughput=float("nan"), status="failed")
    failed.update(engine="torch", cell=_sha("torch")[:16], engine_version="2.15.0", error="boom")
    rows.append(failed)
    # A trial rejected for CPU steal (and repeated): an outlier no statistic may include.
    rejected = dict(rows[0], trial=ROUNDS, throughput=rows[0]["throughput"] / 10, cpu_steal=0.4)
    rows.append(dict(rejected, status="rejected", error="CPU steal 40.0% > max_cpu_steal 5.0%"))
    return rows


def _accuracy(v: Variant) -> float:
    if v.pruner == "none":
        return 0.95
    if v.pruner == "oneshot":
        return round(0.95 - 0.5 * v.sparsity**2, 4)  # 0.825, 0.705, 0.545: two below the gate
    if v.mask == "block4":
        return 0.91 if v.model == "small_cnn" else 0.60  # resnet18's: "not trained"
    return {"none": 0.93, "torch": 0.925, "sparseml": 0.92}[v.quant]


def _layers(v: Variant) -> tuple[LayerZeros, ...]:
    """Zeros per layer: the profile's shape scaled so that the whole file holds the target share
    (as the study's profiles do), the same for every file of one trained model (its A/A twin,
    its other exporter's and its int8 files), plus :data:`SPARSITY_MISMATCH`."""
    numel = [int(np.prod(shape)) for _, shape in LAYERS]
    shape = PROFILE_SHAPE.get(v.profile, (0.0, 0.0, 0.0))
    target = v.sparsity + SPARSITY_MISMATCH.get((v.model, v.profile), 0.0)
    scale = target * sum(numel) / max(sum(p * n for p, n in zip(shape, numel)), 1e-12)
    trained = (v.model, v.profile, v.mask, v.sparsity, v.pruner == "oneshot")
    jitter = np.random.default_rng(int(_sha(repr(trained))[:8], 16)).uniform(-0.002, 0.002, 3)
    out = []
    for (name, dims), n, p, e in zip(LAYERS, numel, shape, jitter):
        level = 0.0 if p == 0 else min(max(p * scale + e, 0.0), 1.0)
        out.append(LayerZeros(name=name, shape=dims, numel=n, zeros=round(n * level)))
    return tuple(out)


def _diagnostics(v: Variant, layers: tuple[LayerZeros, ...]) -> dict:
    if v.pruner == "none":
        return {}
    per_layer = []
    for layer in layers:
        s = layer.zeros / layer.numel
        blocks = s if v.mask == "block4" else s**4
        per_layer.append({"name": layer.name, "shape": list(layer.shape), "numel": layer.numel,
                          "sparsity": s, "cv_nonzeros_per_out_channel": 0.1 + 0.2 * s,
                          "zero_filters": 0.0, "zero_input_channels": 0.0,
                          "zero_blocks_1x4": blocks})  # fmt: skip
    numel = sum(layer.numel for layer in layers)
    model = {"layers": len(layers), "numel": numel}
    for key in ("sparsity", "cv_nonzeros_per_out_channel", "zero_filters", "zero_input_channels"):
        model[key] = sum(d[key] * d["numel"] for d in per_layer) / numel
    model["zero_blocks_1x4"] = sum(d["zero_blocks_1x4"] * d["numel"] for d in per_layer) / numel
    return {"model": model, "layers": per_layer}


def _manifest(cfg: StudyConfig, rng: np.random.Generator) -> list[ModelRecord]:
    gate = cfg.train.accuracy_gate
    records = []
    for model in MODELS:
        for v in variants(cfg, model):
            layers = _layers(v)
            prunable = sum(layer.numel for layer in layers)
            zeros = sum(layer.zeros for layer in layers)
            raw = 100_000 // (4 if v.quant != "none" else 1) + (
                7 if v.exporter == "sparseml" else 0
            )
            payload = rng.integers(0, 255, size=raw).astype(np.uint8)
            payload[: int(raw * v.sparsity)] = 0
            content = _sha("content " + _path(v))
            extra: dict = {"recipe": "smoke"}
            if _is_twin(v) and SIGNED_ZEROS[model]:  # same numbers, zeros of other sign: own file
                gmp = dataclasses.replace(v, pruner="gmp")
                extra |= {"numerically_identical_to": _path(gmp)}
                extra["signed_zero_differences"] = SIGNED_ZEROS[model]
            elif _is_twin(v):  # the same bytes: measured as gmp's file
                extra |= {"identical_to": _path(v), "own_file_sha256": _sha(v.name)}
                extra["signed_zero_differences"] = 0
            accuracy = _accuracy(v)
            records.append(
                ModelRecord(
                    model=model,
                    pruner=v.pruner,
                    exporter=v.exporter,
                    sparsity=v.sparsity,
                    onnx_path=_path(v),
                    onnx_sha256=_sha(_path(v)),
                    input_shape=(1, 3, 32, 32),
                    opset=13 if v.quant != "none" else 14,
                    raw_bytes=raw,
                    gzip_bytes=len(gzip.compress(payload.tobytes(), compresslevel=9, mtime=0)),
                    prunable_params=prunable,
                    zeros=zeros,
                    measured_sparsity=zeros / prunable,
                    accuracy=accuracy,
                    accuracy_dataset=DATASET,
                    zero_check_ok=True,
                    layers=layers,
                    extra=extra,
                    profile=v.profile,
                    mask=v.mask,
                    quant=v.quant,
                    content_sha256=content,
                    diagnostics=_diagnostics(v, layers),
                    trained=accuracy >= gate,
                )  # fmt: skip
            )
    return records


def write_results(
    root: Path,
    *,
    sensitivity: bool = True,
    deepsparse: bool = True,
    layers: bool = True,
    optional_files: bool = True,
    config: bool = True,
) -> Path:
    """Write the synthetic results folder into ``root`` and return it.

    Args:
        root: target folder (created).
        sensitivity: write sensitivity.csv.
        deepsparse: include DeepSparse rows in bench.jsonl.
        layers: keep the per-layer zeros in the manifest.
        optional_files: write the manifest (with placeholder model files), config.yaml,
            environment.json, training.csv, timings.csv, failures.jsonl and opprofile.json;
            False leaves
            bench.jsonl alone.
        config: write config.yaml (with ``optional_files``).
    """
    cfg = study_config()
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = _bench_rows(cfg, rng, deepsparse)
    with (root / "bench.jsonl").open("w") as fh:
        fh.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    if not optional_files:
        return root
    (root / "models").mkdir(exist_ok=True)
    records = [r.to_dict() for r in _manifest(cfg, rng)]
    if not layers:
        records = [dict(r, layers=[]) for r in records]
    with (root / "models" / "manifest.jsonl").open("w") as fh:
        fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
    for path in sorted({r["onnx_path"] for r in records}):  # read_manifest keeps existing files
        (root / path).write_bytes(b"synthetic fixture: not an ONNX file\n")
    if config:
        (root / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    _write_environment(root)
    _write_csvs(root, sensitivity)
    failure = {"stage": "bench", "model": "resnet18", "pruner": "none", "exporter": "torch"}
    failure |= {"engine": "torch", "reason": "boom"}
    (root / "failures.jsonl").write_text(json.dumps(failure, sort_keys=True) + "\n")
    write_opprofile(root / "opprofile.json")
    return root


def write_opprofile(path: Path) -> None:
    """An opprofile.json (study.analysis.opprofile's layout) of four profiles, one an error."""
    from study.onnx.opclasses import CLASSES

    def row(model, engine, sparse, depthwise, bound):
        shares = dict.fromkeys(CLASSES, 0.0)
        shares.update(sparse=sparse, depthwise=depthwise, memory=1 - sparse - depthwise)
        return {
            "model": model,
            "label": "pruned90",
            "engine": engine,
            "shares": shares,
            "bound": bound,
            "sentence": f"{model} on {engine}",
        }

    profiles = [
        row("efficientnet_b0", "openvino", 0.55, 0.3, 2.2),
        row("efficientnet_b0", "deepsparse", 0.5, 0.2, 2.0),
        row("resnet50", "openvino", 0.97, 0.0, None),
        {"model": "resnet50", "label": "pruned90", "engine": "deepsparse", "error": "boom"},
    ]
    path.write_text(json.dumps({"profiles": profiles}))


def _write_environment(root: Path) -> None:
    hardware = Hardware(
        machine=MACHINE, cpu_model="AMD EPYC 9R14 (synthetic)", vendor="AuthenticAMD", family=25,
        model_number=17, microarchitecture="Zen 4",
        isa={"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_tile": False},
        l1d_bytes=32 << 10, l1i_bytes=32 << 10, l2_bytes=1 << 20, l3_bytes=32 << 20,
        physical_cores=2, logical_cpus=2, max_mhz=None, os="Linux-synthetic", kernel="6.0",
        python="3.11.9", git_commit="abc1234",
        packages={"onnxruntime": "1.26.0", "openvino": "2026.4.1", "deepsparse": "1.8.0"},
    )  # fmt: skip
    floor = {"workload": "numpy float32 matmul 384x384", "threads": 2, "trial_seconds": 0.3}
    floor |= {"trials": 16, "mean": 1000.0, "lag1": 0.1, "min_ratio": 0.8, "cpu_steal": 0.01}
    floors = [dict(floor, cv=0.042), dict(floor, cv=0.118)]
    environment = {MACHINE: {**hardware.to_dict(), "noise_floors": floors}}
    (root / "environment.json").write_text(json.dumps(environment, sort_keys=True, indent=1))


def _write_csvs(root: Path, sensitivity: bool) -> None:
    steps = [
        {"model": m, "pruner": p, "seed": 0, "step": s, "epoch": s // 5, "loss": 2.0 / (s + 1),
         "lr": 0.01, "zeros": s * 10, "sparsity": min(0.8, s / 10)}
        for m in MODELS
        for p in ("gmp", "sparseml")
        for s in range(10)
    ]  # fmt: skip
    pd.DataFrame(steps).to_csv(root / "training.csv", index=False)
    stages = [(m, stage, secs) for m in MODELS for stage, secs in
              (("train dense", 4.0), ("prune gmp uniform unstructured", 0.1),
               ("export torch", 0.2), ("benchmark", 60.0))]  # fmt: skip
    timings = pd.DataFrame(stages, columns=["model", "stage", "seconds"]).assign(reused=0)
    timings.to_csv(root / "timings.csv", index=False)
    if sensitivity:
        sens = [
            {"model": m, "layer": name, "numel": int(np.prod(shape)), "level": level,
             "method": "magnitude", "metric": round(0.95 - level**4 * (i + 1) / 4, 4)}
            for m in MODELS
            for i, (name, shape) in enumerate(LAYERS)
            for level in (0.0, 0.5, 0.9)
        ]  # fmt: skip
        pd.DataFrame(sens).to_csv(root / "sensitivity.csv", index=False)
