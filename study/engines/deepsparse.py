"""DeepSparse through its Python API (``deepsparse.compile_model``).

Threads are pinned to cores (``NM_BIND_THREADS_TO_CORES=1``, the default of ``deepsparse.benchmark``).
Sync: the default single-stream scheduler, one request at a time. Async: ``scheduler="multi_stream"``
driven by ``num_streams`` concurrent requests from a thread pool (as ``deepsparse.benchmark -s async``).
DeepSparse computes in fp32; ``precision="default"`` is the same engine and is recorded as f32.
An int8 file runs its quantized ops in int8 only where DeepSparse compiles them itself (1.8: the
``ConvInteger``/``QLinearConv`` form of SparseML's export, per-tensor weights; plain QDQ
``DequantizeLinear -> Conv`` is not compiled): ``fraction_of_supported_ops`` in the settings says
how much it compiled (0.0: all of it fell back to its bundled ONNX Runtime), with ``cpu_vnni``.

DeepSparse compiles a private copy of the ONNX file: with ``input_shapes`` (or a batch size) on a
model with dynamic dimensions, ``deepsparse.utils.override_onnx_input_shapes`` rewrites the model file
*in place* (its ``inplace=True`` default), which would silently change the file every other engine
then reads (and its hash, the cell's identity).

DeepSparse's native library prints its copyright banner to file descriptor 2 on the first compile of
every process, i.e. once per benchmark worker, into the progress bar. :func:`without_banner` drops
that one line from stderr (keeping it for the record) and passes everything else through as it
comes. The banner is DeepSparse's own word on its instruction-set path: ``(system=avx512_vnni,
binary=avx2)`` names the CPU it detected and the engine binary it loaded; the settings record both
(``system_isa``, ``engine_binary``), with ``cpu_avx_type`` and ``cpu_vnni`` read from the engine.

int8 (DeepSparse's hardware table, ``user-guide/hardware-support.md`` in its repository): sparse
quantization is optimized only on AVX-512 VNNI CPUs and emulated on AVX2 and on AVX-512 without VNNI.
An int8 file's settings carry ``int8_kernels``: ``"optimized (AVX-512 VNNI)"``, or the label
:func:`int8_label` gives (``"int8 emulated (no VNNI)"``; ``"int8 emulated (AVX2 engine binary)"``
under an ``avx2`` cap on a VNNI CPU).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from study.engines.base import EngineAdapter, Window, sync_window, threaded_window
from study.engines.isa import cap_record

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

__all__ = [
    "BANNER",
    "DeepSparseEngine",
    "banner_isa",
    "deepsparse_settings",
    "int8_label",
    "without_banner",
]

BANNER = b"DeepSparse, Copyright"  # how DeepSparse 1.8's banner line starts


@contextlib.contextmanager
def without_banner(kept: list[str] | None = None) -> Iterator[None]:
    """Filter DeepSparse's banner out of what this process writes to fd 2 inside the block.

    fd 2 is pointed at a pipe whose reader thread copies every line but the banner to the real
    stderr as it arrives, so an engine that dies inside the block still leaves its last words.
    The banner lines are appended to ``kept`` when given (once the block has exited).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not line.startswith(BANNER):
                    os.write(saved, line)
                elif kept is not None:
                    kept.append(line.decode(errors="replace").strip())

    thread = threading.Thread(target=pump, name="deepsparse-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees EOF
        thread.join(10)
        os.close(saved)


def banner_isa(banner: str) -> dict[str, str]:
    """The CPU DeepSparse detected and the engine binary it loaded, from its banner line.

    Example:
        >>> banner_isa("DeepSparse, Copyright ... (optimized) (system=avx512_vnni, binary=avx2)")
        {'system_isa': 'avx512_vnni', 'engine_binary': 'avx2'}
    """
    m = re.search(r"system=([\w.-]+),\s*binary=([\w.-]+)", banner)
    return {"system_isa": m.group(1), "engine_binary": m.group(2)} if m else {}


def int8_label(cpu_vnni: bool, engine_binary: str) -> str:
    """How DeepSparse runs int8 here, by its own hardware table: ``""`` when optimized.

    Example:
        >>> int8_label(False, "avx2"), int8_label(True, "avx2"), int8_label(True, "avx512")
        ('int8 emulated (no VNNI)', 'int8 emulated (AVX2 engine binary)', '')
    """
    if not cpu_vnni:
        return "int8 emulated (no VNNI)"
    if engine_binary != "avx512":
        return f"int8 emulated ({engine_binary.upper()} engine binary)"
    return ""


def deepsparse_settings(engine: Any) -> dict[str, Any]:
    """Settings of a compiled ``deepsparse.Engine``, read back from its attributes."""
    return {
        "precision": "f32",
        "num_cores": engine.num_cores,
        "num_streams": engine.num_streams,
        "scheduler": str(engine.scheduler),
        "fraction_of_supported_ops": float(engine.fraction_of_supported_ops),
        "cpu_avx_type": engine.cpu_avx_type,
        "cpu_vnni": bool(engine.cpu_vnni),
        "NM_BIND_THREADS_TO_CORES": os.environ.get("NM_BIND_THREADS_TO_CORES", ""),
    }


class DeepSparseEngine(EngineAdapter):
    """DeepSparse, Python API."""

    name = "deepsparse"
    module = "deepsparse"
    linux_x86_only = True
    # `import deepsparse` imports torch (4 of its 7 s) only for its TorchScript benchmarking
    # engine (deepsparse/benchmark/torchscript_engine.py, inside try/except): the ONNX engine
    # never touches it, and a quick run starts ~60 DeepSparse workers.
    unused_imports = ("torch",)
    fork_server = True

    def load(self) -> None:
        # Pin engine threads to cores, as `deepsparse.benchmark` does by default (`-pin core`); the
        # Python API leaves them unpinned, which ran ResNet-50 about 3x slower and far noisier on a
        # shared 2-core VM. Set before the import: the engine reads it when it starts.
        os.environ.setdefault("NM_BIND_THREADS_TO_CORES", "1")
        import deepsparse

        c = self.config
        self._tmp = tempfile.mkdtemp(prefix="deepsparse-model-")
        self.private_path = str(Path(self._tmp) / Path(c.onnx_path).name)
        shutil.copyfile(
            c.onnx_path, self.private_path
        )  # DeepSparse may rewrite it (see module doc)
        self.banner: list[str] = []
        with without_banner(self.banner):
            self.engine = deepsparse.compile_model(
                self.private_path,
                batch_size=c.batch_size,
                num_cores=c.threads,
                scheduler="multi_stream" if c.scenario == "async" else "single_stream",
                input_shapes=[list(s.shape) for s in self.specs],
            )
        self._order = list(self.engine.input_names)

    def _list(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [inputs[n] for n in self._order]

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.engine.run(self._list(inputs), val_inp=False))

    def window(self, inputs: dict[str, np.ndarray], seconds: float) -> Window:
        xs = self._list(inputs)

        def call() -> None:
            self.engine.run(xs, val_inp=False)

        if self.config.scenario == "async":
            return threaded_window(
                call, seconds, self.config.batch_size, max(1, int(self.engine.num_streams))
            )
        return sync_window(call, seconds, self.config.batch_size)

    def version(self) -> str:
        import deepsparse

        return deepsparse.__version__

    def settings(self) -> dict[str, Any]:
        from study.onnx.int8 import is_quantized

        out = deepsparse_settings(self.engine)
        reported = banner_isa(" ".join(self.banner))
        binary = reported.get("engine_binary") or str(out["cpu_avx_type"])
        out.update(reported, engine_binary=binary)
        level = self.config.isa
        vnni = "with" if out["cpu_vnni"] else "without"
        out["isa_path"] = (
            f"DeepSparse ran its {binary} engine binary (detected CPU: "
            f"{reported.get('system_isa', 'not reported')}; cpu_avx_type {out['cpu_avx_type']}, "
            f"{vnni} VNNI)"
        )
        took = None if level == "native" else out["cpu_avx_type"] == level == binary
        out["isa_cap"] = cap_record(self.name, level, took, f"engine binary {binary}")
        if is_quantized(self.config.onnx_path):
            label = int8_label(bool(out["cpu_vnni"]), binary)
            out["int8_kernels"] = label or "optimized (AVX-512 VNNI)"
            out["int8_label"] = label
        return out

    def close(self) -> None:
        self.engine = None
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)
