"""OpenVINO CPU plugin.

Fair default: ``INFERENCE_PRECISION_HINT=f32`` (the plugin otherwise runs fp32 models in bf16 on
CPUs with AVX512-BF16/AMX). ``precision="default"`` leaves the hint unset and records what ran.
Sync: ``PERFORMANCE_HINT=LATENCY``, one infer request. Async: ``PERFORMANCE_HINT=THROUGHPUT`` with the
plugin's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests kept in flight, each driven by its own thread
(``infer()`` releases the GIL). A timed window binds the input to each request once (shared, not
copied) and then calls ``infer()`` with no arguments, as ``benchmark_app`` does with static shapes
(its "inference only" mode): ``infer(inputs)`` copies the input on every call, which cost 0.12 ms
per call on a 32-px CNN (a third of its inference time) and is no part of the engine. ``AsyncInferQueue`` was tried first: with a Python callback it
intermittently deadlocked in the compiled model's destructor (OpenVINO 2026.4.1), so it is not used.

What ran is read back from the compiled model's runtime graph (``get_runtime_model()``): every
op's rt_info ``layerType``, ``runtimePrecision`` and ``primitiveType`` (the kernel, e.g.
``brgconv_avx512_I8``), summarised in the settings as ``runtime_precisions`` (layer type ->
precision -> count) and ``exec_types`` (kernel -> count). An int8 file whose convolutions run
``u8`` shows it there; one whose quantized ops were turned back into fp32 shows ``f32``.

``precision="f32-sparse"``: ``f32`` plus ``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE`` =
:data:`SPARSE_WEIGHTS_RATE` (layers whose weights are at least that sparse qualify; OpenVINO's
default 1.0 disables it). The plugin applies it only to INT8 FullyConnected/MatMul layers on CPUs
with AMX (both dimensions multiples of 64; kernel ``brgemm_avx512_amx_sparse_I8``), so the
settings record whether it took effect (``sparse_weights_layers``: kernels naming ``sparse``)
and, when it did not, why (no AMX in ``/proc/cpuinfo``, no INT8 FullyConnected layer, or none
qualified).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from study.engines.base import PRECISIONS, EngineAdapter, Window, sync_window, threaded_window
from study.engines.isa import above, cap_record, kernels_by_isa

__all__ = [
    "SPARSE_WEIGHTS_RATE",
    "OpenVinoEngine",
    "isa_path",
    "runtime_summary",
    "sparse_weights_reason",
]

# CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE of precision "f32-sparse": a layer qualifies when at least
# this fraction of its weights are zero (OpenVINO CPU plugin property; 1.0, its default, is off).
SPARSE_WEIGHTS_RATE = 0.5

_READ_BACK = (
    "INFERENCE_PRECISION_HINT",
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "ENABLE_HYPER_THREADING",
    "ENABLE_CPU_PINNING",
    "EXECUTION_MODE_HINT",
    "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE",
)
_INT8 = ("u8", "i8")  # runtime precisions of int8 layers


def _cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags of the first processor in ``/proc/cpuinfo``; None if unreadable."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def _rt(info: Any, key: str) -> str:
    """One string entry of an op's rt_info ("unknown" when absent)."""
    return info[key].astype(str) if key in info else "unknown"


def runtime_summary(
    compiled: Any,
) -> tuple[dict[str, dict[str, int]], dict[str, int], dict[str, dict[str, int]]]:
    """What the compiled model runs: layer type -> runtime precision -> count, kernel -> count,
    and the ISA family each kernel name states -> layer type -> count
    (:func:`study.engines.isa.kernels_by_isa`).

    Read from ``compiled.get_runtime_model()``: each op's rt_info ``layerType``,
    ``runtimePrecision`` and ``primitiveType``.

    Example:
        >>> runtime_summary(core.compile_model(model, "CPU"))  # doctest: +SKIP
        ({'Convolution': {'u8': 3}, ...}, {'brgconv_avx512_I8': 3, ...}, {'avx512': {...}})
    """
    precisions: dict[str, Counter] = defaultdict(Counter)
    kernels: Counter = Counter()
    layers = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer, kernel = _rt(info, "layerType"), _rt(info, "primitiveType")
        precisions[layer][_rt(info, "runtimePrecision")] += 1
        kernels[kernel] += 1
        layers.append((layer, kernel))
    return {k: dict(v) for k, v in precisions.items()}, dict(kernels), kernels_by_isa(layers)


def isa_path(by_isa: dict[str, dict[str, int]], level: str) -> tuple[str, bool | None]:
    """One sentence on the ISA of OpenVINO's executed kernels, and whether a cap took effect.

    A cap at ``level`` took effect when some kernel names the capped ISA and no oneDNN-class
    layer (Convolution, FullyConnected, MatMul) runs a kernel above it; OpenVINO's own JIT
    kernels and MLAS are named in the sentence, since no cap reaches them.

    Example:
        >>> isa_path({"avx2": {"Convolution": 20}, "avx512": {"Reduce": 1}}, "avx2")[1]
        True
    """
    counts = ", ".join(
        f"{family} {sum(v.values())} ({', '.join(f'{k} {n}' for k, n in sorted(v.items()))})"
        for family, v in by_isa.items()
    )
    text = f"OpenVINO ran kernels by stated ISA: {counts or 'none reported'}"
    if level == "native":
        return text, None
    heavy = ("Convolution", "FullyConnected", "MatMul")
    above_cap = [
        f"{layer} ({family})" for family, v in by_isa.items() if above(level, family) for layer in v
    ]
    took = level in by_isa and not any(
        above(level, family) and any(layer in heavy for layer in v) for family, v in by_isa.items()
    )
    if above_cap:
        text += f"; above the {level} cap: {', '.join(sorted(above_cap))}"
    return text, took


def sparse_weights_reason(
    cpu_flags: set[str] | None, runtime_precisions: dict[str, dict[str, int]], sparse_layers: int
) -> str:
    """Why OpenVINO's sparse-weights decompression did not take effect ("" when it did).

    Args:
        cpu_flags: The CPU's flags (``/proc/cpuinfo``), None when unknown.
        runtime_precisions: Layer type -> runtime precision -> count (:func:`runtime_summary`).
        sparse_layers: Layers whose kernel names a sparse implementation.

    Example:
        >>> sparse_weights_reason({"avx512f"}, {"FullyConnected": {"u8": 1}}, 0)[:26]
        'the CPU has no AMX (amx_in'
    """
    if sparse_layers > 0:
        return ""
    reasons = []
    if cpu_flags is None:
        reasons.append("the CPU flags are unknown (/proc/cpuinfo unreadable)")
    elif not {"amx_int8", "amx_tile"} <= cpu_flags:
        reasons.append(
            "the CPU has no AMX (amx_int8/amx_tile absent from /proc/cpuinfo flags); OpenVINO "
            "decompresses sparse weights only in AMX INT8 FullyConnected kernels"
        )
    fc = runtime_precisions.get("FullyConnected", {})
    if not any(fc.get(p, 0) for p in _INT8):
        reasons.append(
            f"no FullyConnected layer runs in INT8 (FullyConnected precisions: {fc or 'none'}); "
            "the option applies only to INT8 FullyConnected/MatMul"
        )
    if not reasons:
        reasons.append(
            f"no INT8 FullyConnected layer qualified (weight sparsity below {SPARSE_WEIGHTS_RATE} "
            "or a dimension not a multiple of 64)"
        )
    return "; ".join(reasons)


class OpenVinoEngine(EngineAdapter):
    """OpenVINO on the CPU device."""

    name = "openvino"
    module = "openvino"
    fork_server = True
    precisions = PRECISIONS

    def load(self) -> None:
        import openvino as ov

        c = self.config
        core = ov.Core()
        model = core.read_model(c.onnx_path)
        model.reshape({s.name: ov.PartialShape(list(s.shape)) for s in self.specs})
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "THROUGHPUT" if c.scenario == "async" else "LATENCY",
            "INFERENCE_NUM_THREADS": c.threads,
        }
        if c.precision in ("f32", "f32-sparse"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if c.precision == "f32-sparse":
            config["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] = SPARSE_WEIGHTS_RATE
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        # Throughput mode: the plugin's optimal number of requests kept in flight, one thread each.
        # (AsyncInferQueue with a Python callback intermittently deadlocked in CompiledModel's
        # destructor on OpenVINO 2026.4.1, so completions are timed from Python threads instead.)
        jobs = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.requests = (
            [self.compiled.create_infer_request() for _ in range(jobs)]
            if c.scenario == "async"
            else []
        )

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self.request.infer(inputs)
        return [np.array(res[o]) for o in self.compiled.outputs]

    def window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        import openvino as ov

        requests = [self.request] if self.config.scenario == "sync" else self.requests
        bound = {name: np.ascontiguousarray(a) for name, a in inputs.items()}  # alive until return
        for request in requests:  # bound once per window, shared with the array (see module doc)
            for name, array in bound.items():
                request.set_tensor(name, ov.Tensor(array, shared_memory=True))
        if self.config.scenario == "sync":
            return sync_window(self.request.infer, seconds, self.config.batch_size)
        return self._async_window(seconds)

    def _async_window(self, seconds: float) -> Window:
        it = iter(self.requests)
        local = threading.local()

        def call() -> None:  # each thread owns one infer request; infer() releases the GIL
            if not hasattr(local, "request"):
                local.request = next(it)
            local.request.infer()

        return threaded_window(call, seconds, self.config.batch_size, len(self.requests))

    def version(self) -> str:
        import openvino as ov

        return ov.get_version()

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in _READ_BACK:
            value = self.compiled.get_property(key)
            out[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
        # Normalise the precision that actually ran to the study's vocabulary.
        out["precision"] = {
            "float32": "f32",
            "f32": "f32",
            "bfloat16": "bf16",
            "bf16": "bf16",
            "f16": "f16",
        }.get(
            _type_name(out["INFERENCE_PRECISION_HINT"]), _type_name(out["INFERENCE_PRECISION_HINT"])
        )
        out["runtime_precisions"], out["exec_types"], by_isa = runtime_summary(self.compiled)
        out["kernels_by_isa"] = by_isa
        out["isa_path"], took = isa_path(by_isa, self.config.isa)
        evidence = ", ".join(f"{f}: {sum(v.values())} layers" for f, v in by_isa.items())
        out["isa_cap"] = cap_record(self.name, self.config.isa, took, evidence)
        sparse = sum(n for kernel, n in out["exec_types"].items() if "sparse" in kernel.lower())
        out["sparse_weights_layers"] = sparse
        if self.config.precision == "f32-sparse":
            out["sparse_weights_took_effect"] = sparse > 0
            out["sparse_weights_reason"] = sparse_weights_reason(
                _cpu_flags(), out["runtime_precisions"], sparse
            )
        return out

    def close(self) -> None:
        self.requests = []
        self.request = None
        self.compiled = None


def _type_name(value: str) -> str:
    """``"<Type: 'bfloat16'>"`` -> ``"bfloat16"``."""
    return value.split("'")[1] if "'" in value else value
