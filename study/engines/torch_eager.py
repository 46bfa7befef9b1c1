"""PyTorch eager mode: the reference the ONNX files were exported from.

Needs the torch module itself: by convention a whole module saved with ``torch.save(model)`` at
``<onnx path without .onnx>.pt`` beside the ONNX file, or ``torch_module_path``. Sync only: eager
PyTorch has no asynchronous throughput mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from study.engines.base import EngineAdapter, Window, sync_window
from study.engines.isa import cap_record

__all__ = ["TorchEagerEngine", "default_module_path"]


def default_module_path(onnx_path: str) -> str:
    """``models/resnet50.onnx`` -> ``models/resnet50.pt`` (the convention for the torch module)."""
    p = Path(onnx_path)
    return str(p.with_suffix(".pt") if p.suffix == ".onnx" else p.with_name(p.name + ".pt"))


class TorchEagerEngine(EngineAdapter):
    """A torch module run eagerly under ``torch.inference_mode``."""

    name = "torch"
    module = "torch"
    scenarios = ("sync",)

    def load(self) -> None:
        c = self.config
        path = c.torch_module_path or default_module_path(c.onnx_path)
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"engine 'torch' needs the torch module saved with torch.save(model) at {path!r} "
                "(or pass `torch_module_path`); no such file"
            )
        import torch

        torch.set_num_threads(c.threads)
        self.model = torch.load(path, weights_only=False, map_location="cpu")
        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(
                f"{path!r} holds a {type(self.model).__name__}, not a torch.nn.Module saved whole"
            )
        self.model.eval()
        self.path = path

    def _run(self, inputs: dict[str, np.ndarray]) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(*[torch.from_numpy(inputs[s.name]) for s in self.specs])

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self._run(inputs)
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().numpy() for o in outs]

    def window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        return sync_window(lambda: self._run(inputs), seconds, self.config.batch_size)

    def version(self) -> str:
        import torch

        return torch.__version__

    def settings(self) -> dict[str, Any]:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
        level = self.config.isa
        took = None if level == "native" else capability.lower().startswith(level)
        return {
            "precision": "f32",
            "num_threads": torch.get_num_threads(),
            "module_path": self.path,
            "mode": "eager",
            "cpu_capability": capability,
            "isa_path": f"torch {torch.__version__} dispatched its {capability} CPU kernels",
            "isa_cap": cap_record(self.name, level, took, f"cpu capability {capability}"),
        }

    def close(self) -> None:
        self.model = None
