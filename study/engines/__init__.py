"""Engine adapters: one module per engine, one interface (:class:`~study.engines.base.EngineAdapter`).

``ENGINES`` is the registry, a plain dict from engine name to adapter class. Adapter modules import
their engine lazily (in ``load``), so importing this package never imports an engine.
"""

from __future__ import annotations

from study.engines.base import EngineAdapter, EngineConfig, EngineUnavailable, InputSpec, Window
from study.engines.deepsparse import DeepSparseEngine
from study.engines.deepsparse_cli import DeepSparseCliEngine
from study.engines.onnxruntime import OnnxRuntimeEngine
from study.engines.openvino import OpenVinoEngine
from study.engines.torch_eager import TorchEagerEngine

__all__ = [
    "ENGINES",
    "EngineAdapter",
    "EngineConfig",
    "EngineUnavailable",
    "InputSpec",
    "Window",
    "get_engine",
]

# name -> adapter class; the order is the order of `--engine all`.
ENGINES: dict[str, type[EngineAdapter]] = {
    cls.name: cls
    for cls in (
        OnnxRuntimeEngine,
        OpenVinoEngine,
        DeepSparseEngine,
        DeepSparseCliEngine,
        TorchEagerEngine,
    )
}


def get_engine(name: str) -> type[EngineAdapter]:
    """Look up an adapter class by name.

    Raises:
        ValueError: unknown name (the message lists the valid ones).

    Example:
        >>> get_engine("onnxruntime").__name__
        'OnnxRuntimeEngine'
    """
    if name not in ENGINES:
        raise ValueError(f"`engine` must be one of {sorted(ENGINES)}; got {name!r}")
    return ENGINES[name]
