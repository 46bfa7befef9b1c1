"""OpenVINO CPU plugin.

Fair default: ``INFERENCE_PRECISION_HINT=f32`` (the plugin otherwise runs fp32 models in bf16 on
CPUs with AVX512-BF16/AMX). ``precision="default"`` leaves the hint unset and records what ran.
Sync: ``PERFORMANCE_HINT=LATENCY``, one infer request. Async: ``PERFORMANCE_HINT=THROUGHPUT`` with the
plugin's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests kept in flight, each driven by its own thread
(``infer()`` releases the GIL). ``AsyncInferQueue`` was tried first: with a Python callback it
intermittently deadlocked in the compiled model's destructor (OpenVINO 2026.4.1), so it is not used.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from study.engines.base import EngineAdapter, Window, sync_window, threaded_window

__all__ = ["OpenVinoEngine"]

_READ_BACK = (
    "INFERENCE_PRECISION_HINT",
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "ENABLE_HYPER_THREADING",
    "ENABLE_CPU_PINNING",
    "EXECUTION_MODE_HINT",
)


class OpenVinoEngine(EngineAdapter):
    """OpenVINO on the CPU device."""

    name = "openvino"
    module = "openvino"

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
        if c.precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
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
        if self.config.scenario == "sync":
            return sync_window(lambda: self.request.infer(inputs), seconds, self.config.batch_size)
        return self._async_window(inputs, seconds)

    def _async_window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        it = iter(self.requests)
        local = threading.local()

        def call() -> None:  # each thread owns one infer request; infer() releases the GIL
            if not hasattr(local, "request"):
                local.request = next(it)
            local.request.infer(inputs)

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
        return out

    def close(self) -> None:
        self.requests = []
        self.request = None
        self.compiled = None


def _type_name(value: str) -> str:
    """``"<Type: 'bfloat16'>"`` -> ``"bfloat16"``."""
    return value.split("'")[1] if "'" in value else value
