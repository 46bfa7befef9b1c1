"""The one interface every engine adapter implements, and the input and timing helpers they share.

An adapter owns one compiled model inside one worker process (see :mod:`study.engines.worker`). The
harness asks it for timed windows; the adapter reports what it did and the settings it actually ran
with, read back from the engine where the engine exposes them.
"""

from __future__ import annotations

import importlib.util
import platform
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "EngineAdapter",
    "EngineConfig",
    "EngineUnavailable",
    "InputSpec",
    "Window",
    "make_inputs",
    "module_available",
    "read_input_specs",
    "sync_window",
    "threaded_window",
    "window_from_completions",
]

# "f32": forced fp32 (the fair default); "default": the engine's own default (OpenVINO: bf16 on
# CPUs with AVX512-BF16/AMX); "f32-sparse": fp32 plus OpenVINO's sparse-weights decompression
# (CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE; OpenVINO only, see study.engines.openvino).
PRECISIONS = ("f32", "default", "f32-sparse")
SCENARIOS = ("sync", "async")

# ONNX TensorProto element types -> numpy dtypes (the ones image and language models use).
_ONNX_DTYPES = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
}


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (not installed, or not built for this platform)."""


@dataclass(frozen=True)
class EngineConfig:
    """What an adapter needs to build its engine; identical across engines of one comparison."""

    onnx_path: str  # the model file
    batch_size: int  # items per inference call
    threads: int  # CPU threads (cores) the engine may use
    precision: str = "f32"  # one of PRECISIONS the adapter supports (its `precisions`)
    scenario: str = (
        "sync"  # "sync" (one request at a time) or "async" (the engine's throughput mode)
    )
    input_shape: tuple[int, ...] | None = None  # per-item shape for inputs with dynamic dims
    torch_module_path: str | None = None  # whole torch module (torch.save) for the "torch" engine
    isa: str = "native"  # ISA cap (study.engines.isa.ISA_LEVELS), applied in the worker process


@dataclass(frozen=True)
class InputSpec:
    """One model input with the concrete shape it is fed."""

    name: str  # graph input name
    shape: tuple[int, ...]  # concrete shape, batch first
    dtype: str  # numpy dtype name


@dataclass(frozen=True)
class Window:
    """One timed window of inference: what was completed and how long it took."""

    items: int  # items completed (calls x batch size)
    seconds: float  # from the window's start to the last counted completion
    calls: int  # requests completed
    latencies_ms: tuple[float, ...]  # per-request latency (submit to completion)
    reported_ms: tuple[float, float, float, float] | None = (
        None  # (mean, median, p90, p99) from a tool
    )

    @property
    def throughput(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")


def read_input_specs(
    onnx_path: str, batch_size: int, input_shape: tuple[int, ...] | None = None
) -> list[InputSpec]:
    """Read the ONNX graph inputs and resolve them to concrete shapes.

    Args:
        onnx_path: the ONNX file.
        batch_size: the batch size to feed; the first dim of every input.
        input_shape: per-item shape (without batch) for a single input with dynamic dims.

    Returns:
        One :class:`InputSpec` per graph input (initializers excluded).

    Raises:
        ValueError: the file is missing or not ONNX, the batch size does not fit a fixed batch
            dim, or dims are dynamic and no ``input_shape`` was given.

    Example:
        >>> read_input_specs("resnet50.onnx", 1)  # doctest: +SKIP
        [InputSpec(name='input', shape=(1, 3, 224, 224), dtype='float32')]
    """
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise ValueError(
            f"`onnx_path` must be an existing ONNX file; got {onnx_path!r} (no such file)"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others; all mean "not an ONNX model"
        raise ValueError(f"`onnx_path` {onnx_path!r} is not a readable ONNX model: {exc}") from exc
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    if not graph_inputs:
        raise ValueError(f"`onnx_path` {onnx_path!r} has no graph inputs (corrupt or empty model)")
    if input_shape is not None and len(graph_inputs) != 1:
        raise ValueError(
            f"`input_shape` applies to single-input models; {onnx_path!r} has {len(graph_inputs)} inputs"
        )
    specs = []
    for inp in graph_inputs:
        ttype = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        if not dims:
            raise ValueError(f"input {inp.name!r} of {onnx_path!r} has no shape; cannot feed it")
        fixed_batch = dims[0]
        if fixed_batch is not None and fixed_batch != batch_size:
            raise ValueError(
                f"`batch_size` must be {fixed_batch} for {Path(onnx_path).name}: its input {inp.name!r} has a fixed "
                f"batch dimension of {fixed_batch}; got {batch_size} (re-export with a dynamic batch axis)"
            )
        rest = dims[1:]
        if input_shape is not None:
            if len(input_shape) != len(rest) or any(
                d is not None and d != s for d, s in zip(rest, input_shape)
            ):
                raise ValueError(
                    f"`input_shape` must match the model's per-item shape {_fmt(rest)}; got {tuple(input_shape)}"
                )
            rest = list(input_shape)
        if any(d is None for d in rest):
            raise ValueError(
                f"input {inp.name!r} of {Path(onnx_path).name} has dynamic dims {_fmt(rest)}: give `input_shape` "
                "(per item, without the batch dim, e.g. --input-shape 3,224,224)"
            )
        if ttype.elem_type not in _ONNX_DTYPES:
            raise ValueError(
                f"input {inp.name!r} has ONNX element type {ttype.elem_type}, which the harness cannot feed"
            )
        specs.append(
            InputSpec(inp.name, (batch_size, *rest), np.dtype(_ONNX_DTYPES[ttype.elem_type]).name)
        )
    return specs


def _fmt(dims: list[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def make_inputs(specs: list[InputSpec], seed: int) -> dict[str, np.ndarray]:
    """Make the seeded input tensors every engine is fed (standard normal for floats).

    Example:
        >>> x = make_inputs([InputSpec("x", (1, 3), "float32")], seed=0)
        >>> x["x"].shape
        (1, 3)
    """
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        dtype = np.dtype(s.dtype)
        if dtype.kind == "f":
            out[s.name] = rng.standard_normal(s.shape).astype(dtype)
        elif dtype.kind == "b":
            out[s.name] = rng.integers(0, 2, s.shape).astype(dtype)
        else:
            out[s.name] = rng.integers(0, 100, s.shape).astype(dtype)
    return out


def sync_window(call: Callable[[], Any], seconds: float, batch_size: int) -> Window:
    """Call ``call`` back to back until ``seconds`` have passed; time each call (perf_counter_ns)."""
    lat = []
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    now = start
    while now < deadline:
        t0 = time.perf_counter_ns()
        call()
        now = time.perf_counter_ns()
        lat.append((now - t0) / 1e6)
    return Window(len(lat) * batch_size, (now - start) / 1e9, len(lat), tuple(lat))


def threaded_window(
    call: Callable[[], Any], seconds: float, batch_size: int, n_requests: int
) -> Window:
    """Keep ``n_requests`` requests in flight from a thread pool until ``seconds`` have passed.

    Completions after the deadline are drained but not counted (unless none came before it), so the
    window only holds time during which every stream was busy. ``call`` must release the GIL while it computes (engine calls do).
    """
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    done: list[tuple[int, float]] = []  # (completion ns, latency ms)
    lock = threading.Lock()

    def loop() -> None:
        while True:
            t0 = time.perf_counter_ns()
            if t0 >= deadline:
                return
            call()
            t1 = time.perf_counter_ns()
            with lock:
                if t1 <= deadline or not done:  # a call longer than the window still counts once
                    done.append((t1, (t1 - t0) / 1e6))

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(n_requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return window_from_completions(done, start, batch_size)


def window_from_completions(
    done: list[tuple[int, float]], start_ns: int, batch_size: int
) -> Window:
    """Build a :class:`Window` from (completion ns, latency ms) pairs counted inside the window."""
    if not done:
        return Window(0, 0.0, 0, ())
    last = max(t for t, _ in done)
    return Window(
        len(done) * batch_size, (last - start_ns) / 1e9, len(done), tuple(lat for _, lat in done)
    )


def module_available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


class EngineAdapter(ABC):
    """One engine running one model. Subclasses set ``name`` and implement the abstract methods.

    Lifecycle (inside a worker process): ``check_available()`` -> ``__init__(config)`` -> ``load()``
    -> ``infer()`` once on the fixed input -> ``window()`` many times -> ``close()``.
    """

    name: ClassVar[str] = ""  # registry key, e.g. "onnxruntime"
    module: ClassVar[str] = ""  # Python module the engine needs
    linux_x86_only: ClassVar[bool] = False  # the engine ships Linux x86-64 builds only
    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS  # scenarios the adapter implements
    precisions: ClassVar[tuple[str, ...]] = ("f32", "default")  # precisions it implements
    self_warming: ClassVar[bool] = False  # each window warms up by itself (external tools)
    # Packages the engine's own package imports but its engine never uses. A worker marks them
    # absent (``sys.modules[name] = None``) before loading, so their import fails at once with
    # ImportError, which the engine package must catch (checked per engine in the tests).
    unused_imports: ClassVar[tuple[str, ...]] = ()
    # Workers fork from a server that imported their Python modules once per replicate
    # (study.engines.server); False: each worker is a spawned interpreter. For the engines that
    # run in the worker's own process (not the torch engine, nor one that runs a tool).
    fork_server: ClassVar[bool] = False

    def __init__(self, config: EngineConfig) -> None:
        if config.precision not in self.precisions:
            raise ValueError(
                f"engine {self.name!r} supports precision {list(self.precisions)}; "
                f"got {config.precision!r}"
            )
        self.config = config
        self.specs = read_input_specs(config.onnx_path, config.batch_size, config.input_shape)

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`EngineUnavailable` with the reason when the engine cannot run here."""
        if cls.linux_x86_only and (
            platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64")
        ):
            raise EngineUnavailable(
                f"engine {cls.name!r} exists only on Linux x86-64; this is {platform.system()} {platform.machine()}"
            )
        if cls.module and not module_available(cls.module):
            raise EngineUnavailable(
                f"engine {cls.name!r} needs the Python package {cls.module!r}, which is not installed"
            )

    @abstractmethod
    def load(self) -> None:
        """Build/compile the model with the configured settings."""

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one synchronous call and return the outputs (for the cross-check)."""

    @abstractmethod
    def window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        """Run the configured scenario for about ``seconds`` and return what completed."""

    @abstractmethod
    def version(self) -> str:
        """The engine's version string."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The settings actually in force, read back from the engine where possible."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine and its threads."""
