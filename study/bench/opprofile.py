"""Where an engine spends its time, by operator class, from the engine's own per-layer profiler.

The original study's question 3: why did EfficientNet-B0/B2 and MobileViT-xs gain no speed from
pruning, even at 85% and 99%? A sparse kernel can only shorten the time of the ops whose weights
are pruned (non-depthwise Conv, MatMul, Gemm: :mod:`study.onnx.opclasses`). If a share W of an
engine's time is in the other ops, no pruning can make it more than 1/W times faster (Amdahl's
law): this module measures W for one ONNX file on one engine.

The profilers:
* ONNX Runtime: ``SessionOptions.enable_profiling`` (a Chrome-trace JSON; one ``*_kernel_time``
  event per node and run). Its optimizer fuses (Conv+activation, NCHWc layouts): an event names the
  fused node or its output tensor; the walk from that tensor's producer up to the event's op type
  collects the ONNX nodes fused into it.
* OpenVINO: ``PERF_COUNT`` (``request.profiling_info``, summed over the runs) joined to the compiled
  model's runtime graph, whose rt_info ``originalLayersNames`` lists the ONNX nodes each executed
  layer holds (a Convolution that fused its bias, activation and residual Add lists them all).
  Layout reorders it inserts hold no ONNX node.
* DeepSparse: ``deepsparse.engine.DebugAnalysisEngine.analyze`` (what ``deepsparse.debug_analysis``
  prints): per-layer ``average_run_time_in_ms``; ``canonical_name`` lists the output tensors of
  the ONNX nodes a layer computes (a "pyramid" fuses several convolutions, with their
  activations, into one tensor-column kernel).

Fused time is attributed one way on every engine: a layer's time goes to the Conv/MatMul/Gemm
nodes it holds, split in proportion to their multiply-accumulates; the activations, adds and
normalisations fused into them are recorded in ``fused`` and add no time of their own. A layer
with no such node splits its time equally among its nodes; a layer mapped to no ONNX node (layout
reorders, DeepSparse's shuffles and fallback subgraphs) is classed by its engine type (reorders
and shuffles as ``memory``, the rest ``other``) and its share is reported as ``unmapped_share``.

Shares are ratios inside one profile: other processes on the machine slow every layer alike to
first order, so the shares hold where absolute times would not.

Usage (a study folder's files: :mod:`study.analysis.opprofile`):
    python -m study.bench.opprofile model.onnx --engine openvino
    python -m study.bench.opprofile a.onnx b.onnx --engine all --out runs/opprofile.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from study.onnx.opclasses import (
    CLASSES,
    MIN_SPARSITY,
    SPARSE_CLASSES,
    GraphClasses,
    classify_graph,
)
from study.records.manifest import OPPROFILE

__all__ = [
    "ENGINES",
    "Layer",
    "OpProfile",
    "amdahl_sentence",
    "summary_row",
    "profile_file",
    "profile_files",
    "write_rows",
    "main",
]

log = logging.getLogger(__name__)

ENGINES = ("onnxruntime", "openvino", "deepsparse")
_MEMORY_ENGINE_TYPES = ("reorder", "shuffle", "transpose", "reshape", "concat")
_COMPUTE = {"Conv", "MatMul", "Gemm", "ConvTranspose"}


@dataclass(frozen=True)
class Layer:
    """One layer as the engine ran it, and where its time went."""

    name: str  # the engine's layer name
    engine_type: str  # the engine's op or layer type
    ms: float  # mean time per inference
    nodes: tuple[str, ...]  # the ONNX nodes it computes (empty: unmapped)
    fused: tuple[str, ...]  # those that got none of its time (fused into the compute nodes)
    by_class: dict[str, float]  # class -> ms


@dataclass(frozen=True)
class OpProfile:
    """One file on one engine: time by operator class and the Amdahl bound it implies."""

    path: str
    engine: str
    threads: int
    iterations: int
    total_ms: float  # the sum of the layers' mean times
    shares: dict[str, float]  # class -> share of total_ms (sums to 1)
    sparse_share: float  # share in ops with pruned weights (a sparse kernel can use them)
    prunable_share: float  # share in ops with weights a sparse kernel could use once pruned
    unmapped_share: float  # share in layers with no ONNX node
    min_sparsity: float  # a weight counts as pruned from this zero fraction
    layers: tuple[Layer, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable_share(self) -> float:
        """The share a sparse kernel can shorten: the pruned ops' share, or in a file with no
        pruned weight (dense), the share of the ops it could use once pruned."""
        return self.sparse_share if self.sparse_share > 0 else self.prunable_share

    @property
    def bound(self) -> float:
        """The largest speed-up pruning can give: 1 / (share of time no sparse kernel can use)."""
        rest = 1.0 - self.usable_share
        return float("inf") if rest <= 0 else 1.0 / rest


# ------------------------------------------------------------------------------------------------
# Inputs and attribution
# ------------------------------------------------------------------------------------------------


def _inputs(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    rng = np.random.default_rng(seed)
    out = {}
    for inp in graph.input:
        if inp.name in weights:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
        out[inp.name] = rng.standard_normal(dims).astype(np.float32)
    return out


def _attribute(name: str, engine_type: str, ms: float, nodes: list[str], g: GraphClasses) -> Layer:
    nodes = [m for n in nodes if n in g.nodes for m in (g.bias_of.get(n), n) if m]
    nodes = list(dict.fromkeys(nodes))
    by_class: dict[str, float] = defaultdict(float)
    compute = [n for n in nodes if g.op_types[n] in _COMPUTE]
    if not nodes:
        kind = engine_type.lower()
        by_class["memory" if any(k in kind for k in _MEMORY_ENGINE_TYPES) else "other"] += ms
        return Layer(name, engine_type, ms, (), (), dict(by_class))
    macs = np.array([g.nodes[n].macs for n in compute], dtype=float)
    if compute and macs.sum() > 0:
        for n, m in zip(compute, macs):
            by_class[g.nodes[n].klass] += ms * m / macs.sum()
        fused = tuple(n for n in nodes if n not in compute)
    else:
        for n in nodes:
            by_class[g.nodes[n].klass] += ms / len(nodes)
        fused = ()
    return Layer(name, engine_type, ms, tuple(nodes), fused, dict(by_class))


def _walk_up(tensor: str, op_type: str, g: GraphClasses, steps: int = 6) -> list[str]:
    """The producer of ``tensor`` and its first-input ancestors up to a node of ``op_type``."""
    node = g.producer.get(tensor)
    path: list[str] = []
    while node is not None and len(path) <= steps:
        path.append(node)
        if g.op_types[node] == op_type:
            return path
        inputs = g.inputs[node]
        node = g.producer.get(inputs[0]) if inputs else None
    return path[:1]  # the op type was not found upstream: the producer alone


# ------------------------------------------------------------------------------------------------
# The three profilers: each returns (layers, extra)
# ------------------------------------------------------------------------------------------------


def _ort_nodes(name: str, op: str, g: GraphClasses) -> list[str]:
    """The ONNX nodes of an ONNX Runtime node: itself; for an NCHWc Conv (named after its output
    tensor, ``X_nchwc``) the walk from that tensor up to the Conv; for a fusion (named
    ``<first node>/<Fusion>/`` or ``fused <first node>``) the node it is named after."""
    name = name.removeprefix("fused ")
    if name in g.nodes:
        return [name]
    tensor = name.removesuffix("_nchwc")
    if tensor in g.producer:
        return _walk_up(tensor, op, g)
    while "/" in name and name not in g.nodes:
        name = name.rstrip("/").rpartition("/")[0]
    return [name] if name in g.nodes else []


def _onnxruntime(path, g, inputs, threads, iterations, warmup):
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            session.run(None, inputs)
        session.end_profiling()  # the warm-up's trace is dropped
        so.profile_file_prefix = str(Path(tmp) / "timed")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        session.run(None, inputs)  # first run after a fresh session: not timed
        for _ in range(iterations):
            session.run(None, inputs)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = (e["name"].removesuffix("_kernel_time"), e["args"].get("op_name", ""))
            times[key].append(e["dur"] / 1000.0)
    layers = []
    for (name, op), durations in times.items():
        ms = float(np.sum(durations[-iterations:]) / iterations)  # drop the untimed first run
        nodes = _ort_nodes(name, op, g)
        layers.append(_attribute(name, op, ms, nodes, g))
    return layers, {"engine_version": ort.__version__}


def _ov_names(original: str, g: GraphClasses) -> list[str]:
    found = []
    for raw in filter(None, original.split(",")):
        name = raw
        while name and name not in g.nodes and name not in g.producer:
            name = name.rpartition("/")[0]  # "/0/Conv/WithoutBiases" -> "/0/Conv"
        if name in g.nodes:
            found.append(name)
        elif name in g.producer:
            found.append(g.producer[name])
    return found


def _openvino(path, g, inputs, threads, iterations, warmup):
    import openvino as ov

    core = ov.Core()
    config = {
        "PERF_COUNT": True,
        "INFERENCE_PRECISION_HINT": "f32",  # the study's fair setting (study.engines.openvino)
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
    }
    compiled = core.compile_model(str(path), "CPU", config)
    runtime = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        runtime[op.get_friendly_name()] = (
            rt["layerType"].astype(str),
            rt["originalLayersNames"].astype(str) if "originalLayersNames" in rt else "",
        )
    request = compiled.create_infer_request()
    for _ in range(warmup):
        request.infer(inputs)
    total: dict[str, float] = defaultdict(float)
    kinds: dict[str, str] = {}
    for _ in range(iterations):
        request.infer(inputs)
        for info in request.profiling_info:
            if info.status == info.Status.EXECUTED:
                total[info.node_name] += info.real_time.total_seconds() * 1000.0
                kinds[info.node_name] = info.node_type
    layers = []
    for name, ms in total.items():
        layer_type, original = runtime.get(name, (kinds[name], ""))
        nodes = _ov_names(original, g)
        layers.append(_attribute(name, layer_type, ms / iterations, nodes, g))
    return layers, {"engine_version": ov.get_version()}


def _deepsparse(path, g, inputs, threads, iterations, warmup):
    os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")
    import deepsparse
    from deepsparse.engine import DebugAnalysisEngine

    from study.engines.deepsparse import without_banner

    with without_banner():
        engine = DebugAnalysisEngine(
            str(path),
            batch_size=1,
            num_cores=threads,
            num_iterations=iterations,
            num_warmup_iterations=warmup,
        )
        result = engine.analyze(list(inputs.values()))
    layers = []
    for li in result["layer_info"]:
        for sub in li["sub_layer_info"] or [li]:
            if "average_run_time_in_ms" not in sub:
                continue
            tensors = [t for t in str(sub.get("canonical_name", "")).split(",") if t != "<none>"]
            nodes = [g.producer[t] for t in tensors if t in g.producer]
            kind = re.sub(r"[_ ]\d+$", "", str(sub["name"]))  # "pyramid_0", "Naive Subgraph 1"
            layers.append(
                _attribute(sub["name"], kind, float(sub["average_run_time_in_ms"]), nodes, g)
            )
    extra = {
        "engine_version": deepsparse.__version__,
        "average_total_time_ms": float(result["average_total_time"]),
        "fraction_of_supported_ops": getattr(engine, "fraction_of_supported_ops", None),
    }
    return layers, extra


_PROFILERS = {"onnxruntime": _onnxruntime, "openvino": _openvino, "deepsparse": _deepsparse}


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def _check(engine: str, threads: int, iterations: int) -> None:
    if engine not in _PROFILERS:
        raise ValueError(f"`engine` must be one of {', '.join(ENGINES)}; got {engine!r}")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`threads` must be a positive integer; got {threads!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"`iterations` must be a positive integer; got {iterations!r}")


def profile_file(
    path: str | Path,
    engine: str,
    *,
    threads: int | None = None,
    iterations: int = 20,
    warmup: int = 5,
    min_sparsity: float = MIN_SPARSITY,
) -> OpProfile:
    """Profile one ONNX file on one engine and sum its time by operator class.

    Args:
        path: the ONNX file (fp32; batch 1, dynamic dimensions set to 1).
        engine: ``onnxruntime``, ``openvino`` or ``deepsparse``.
        threads: the engine's threads (default: the physical cores, as study.bench).
        iterations: timed inferences (the profile is their mean).
        warmup: untimed inferences first.
        min_sparsity: a weight with at least this zero fraction counts as pruned.

    Returns:
        The profile; its ``shares`` sum to 1.

    Raises:
        ValueError: an unknown engine, a non-positive count, a missing file.

    Example:
        >>> p = profile_file("efficientnet_b0-pruned90.onnx", "openvino")  # doctest: +SKIP
        >>> print(amdahl_sentence("EfficientNet-B0", p))  # doctest: +SKIP
    """
    from study.bench.hardware import physical_cores

    threads = physical_cores() if threads is None else threads
    _check(engine, threads, iterations)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no ONNX file at {str(path)!r}")
    graph = classify_graph(path, min_sparsity=min_sparsity)
    layers, extra = _PROFILERS[engine](path, graph, _inputs(path), threads, iterations, warmup)
    total = sum(layer.ms for layer in layers)
    if total <= 0:
        raise RuntimeError(f"{engine} reported no layer time for {str(path)!r}")
    by_class = dict.fromkeys(CLASSES, 0.0)
    prunable = unmapped = 0.0
    for layer in layers:
        for klass, ms in layer.by_class.items():
            by_class[klass] += ms
        if not layer.nodes:
            unmapped += layer.ms
        compute = [n for n in layer.nodes if graph.nodes[n].prunable]
        if compute:
            prunable += sum(layer.by_class.get(k, 0.0) for k in ("sparse", "dense_weights"))
    shares = {k: v / total for k, v in by_class.items()}
    return OpProfile(
        path=str(path),
        engine=engine,
        threads=threads,
        iterations=iterations,
        total_ms=total,
        shares=shares,
        sparse_share=sum(shares[k] for k in SPARSE_CLASSES),
        prunable_share=prunable / total,
        unmapped_share=unmapped / total,
        min_sparsity=min_sparsity,
        layers=tuple(layers),
        extra=extra,
    )


def amdahl_sentence(model: str, p: OpProfile) -> str:
    """The sentence of question 3 for one profile.

    A file with pruned weights: "pruning cannot speed X up by more than Y% on Z, because W% of its
    time is in ops that have no sparse kernel" (Y = 1/W - 1; beyond +100% the bound 1/W is
    written as a factor, "2.2x"). A dense file (no weight reaches
    ``min_sparsity``): the same bound if every prunable weight were pruned, from its dense time.
    """
    pruned = p.sparse_share > 0
    rest = 1.0 - p.usable_share
    top = sorted(
        ((k, v) for k, v in p.shares.items() if k not in SPARSE_CLASSES and k != "dense_weights"),
        key=lambda kv: -kv[1],
    )[:3]
    detail = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in top if v >= 0.005)
    if rest <= 0:
        return f"{model} on {p.engine}: every profiled op has a pruned weight; no Amdahl bound."
    # the bound in percent up to +100%, as a factor beyond (2.2x reads better than 120%)
    limit = f"{1.0 / rest - 1.0:.0%}" if rest > 0.5 else f"{1.0 / rest:.1f}x"
    share = f"{rest:.0%}" if rest >= 0.01 else "less than 1%"
    why = (
        f"ops that have no sparse kernel ({detail})" if detail else "ops that have no sparse kernel"
    )
    if pruned:
        unpruned = p.shares["dense_weights"]
        if unpruned >= 0.005:
            why = (
                why.rstrip(")")
                + (", " if detail else " (")
                + (f"weights below {p.min_sparsity:.0%} zeros {unpruned:.0%})")
            )
        return (
            f"Pruning cannot speed {model} up by more than {limit} on {p.engine}, because "
            f"{share} of its time is in {why}."
        )
    return (
        f"Even with every prunable weight pruned, pruning cannot speed {model} up by more than "
        f"{limit} on {p.engine}, because {share} of its dense time is in {why}."
    )


def summary_row(p: OpProfile, model: str, label: str, sparsity: float | None) -> dict[str, Any]:
    """The JSON row of one profile: its fields, the file's model, label and sparsity, the bound
    and the sentence (naming the label, e.g. "resnet50 (dense)", when it is not the model)."""
    row = asdict(p)
    row.update(model=model, label=label, sparsity=sparsity, bound=p.bound)
    row["sentence"] = amdahl_sentence(model if label == model else f"{model} ({label})", p)
    return row


def profile_files(files, engines, threads, iterations) -> list[dict[str, Any]]:
    """Profile ``files`` = [(model, label, sparsity, path)] on each engine; errors become rows."""
    rows = []
    for model, label, sparsity, path in files:
        for engine in engines:
            try:
                p = profile_file(path, engine, threads=threads, iterations=iterations)
            except Exception as err:  # one engine failing on one file must not stop the rest
                log.exception("%s on %s failed", engine, path)
                rows.append(
                    {
                        "model": model,
                        "label": label,
                        "sparsity": sparsity,
                        "path": str(path),
                        "engine": engine,
                        "error": f"{type(err).__name__}: {err}",
                    }
                )
                continue
            rows.append(summary_row(p, model, label, sparsity))
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Write profile rows as JSON (infinite bounds as null)."""
    clean = [
        {**r, "bound": None if r.get("bound") == float("inf") else r.get("bound")} for r in rows
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profiles": clean}, indent=1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m study.bench.opprofile",
        description="Per-operator time from each engine's own profiler, by operator class, and "
        "the Amdahl bound on pruning's speed-up.",
    )
    p.add_argument("paths", nargs="+", type=Path, help="ONNX files")
    p.add_argument("--engine", default="all", help=f"{', '.join(ENGINES)} or all (default)")
    p.add_argument("--threads", type=int, help="engine threads (default: physical cores)")
    p.add_argument("--iterations", type=int, default=20, help="timed inferences (default 20)")
    p.add_argument("--out", type=Path, default=Path(OPPROFILE), help="JSON to write")
    args = p.parse_args(argv)
    engines = list(ENGINES) if args.engine == "all" else args.engine.split(",")
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        p.error(f"--engine must be from {', '.join(ENGINES)} or all; got {bad}")
    missing = [str(x) for x in args.paths if not x.is_file()]
    if missing:
        p.error(f"no such ONNX file(s): {', '.join(missing)}")
    rows = profile_files(
        [(x.stem, x.stem, None, x) for x in args.paths], engines, args.threads, args.iterations
    )
    write_rows(rows, args.out)
    for row in rows:
        print(row.get("sentence") or f"{row['engine']} on {row['path']}: {row['error']}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
