"""ONNX Runtime (CPU execution provider): the reference engine of the output cross-check.

Sync: one session with ``intra_op_num_threads = threads``, sequential execution. Async: ONNX Runtime
has no asynchronous throughput mode of its own, so the adapter runs ``threads`` parallel requests
on one session with ``intra_op_num_threads = 1`` (the same total thread count, one per request).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from study.engines.base import EngineAdapter, Window, sync_window, threaded_window
from study.engines.isa import cap_record

__all__ = ["OnnxRuntimeEngine", "ort_session"]


def ort_session(onnx_path: str, intra_threads: int):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime CPU session with all graph optimizations and a fixed thread count."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])


class OnnxRuntimeEngine(EngineAdapter):
    """ONNX Runtime on the CPU execution provider."""

    name = "onnxruntime"
    module = "onnxruntime"
    fork_server = True

    def load(self) -> None:
        c = self.config
        self._requests = c.threads if c.scenario == "async" else 1
        self.session = ort_session(c.onnx_path, 1 if c.scenario == "async" else c.threads)

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, inputs))

    def window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        def call() -> None:
            self.session.run(None, inputs)

        if self.config.scenario == "async":
            return threaded_window(call, seconds, self.config.batch_size, self._requests)
        return sync_window(call, seconds, self.config.batch_size)

    def version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def settings(self) -> dict[str, Any]:
        import onnxruntime as ort

        so = self.session.get_session_options()
        capped = self.config.isa != "native"
        return {
            "precision": "f32",  # the CPU provider computes fp32 models in fp32
            "providers": self.session.get_providers(),
            "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": so.inter_op_num_threads,
            "execution_mode": str(so.execution_mode),
            "graph_optimization_level": str(so.graph_optimization_level),
            "parallel_requests": self._requests,
            "isa_path": (
                f"ONNX Runtime {ort.__version__} on {', '.join(self.session.get_providers())} "
                "(MLAS picks its kernels from the CPU's flags; it does not report which)"
            ),
            "isa_cap": cap_record(self.name, self.config.isa, False if capped else None, ""),
        }

    def close(self) -> None:
        self.session = None
