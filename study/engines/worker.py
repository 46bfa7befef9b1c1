"""Worker processes: each benchmark cell's engine lives in its own process (:mod:`study.engines.server`).

The child loads the model once, cross-checks its output against a fresh ONNX Runtime session on the
same fixed input, then serves requests ("warmup", "window", "stop") from the parent over a pipe. If
the child dies (segfault, OOM kill, ``os._exit``) the parent sees it and raises :class:`WorkerError`
with the reason; nothing else is affected.

The cross-check's rule (:func:`output_tolerance`): the max absolute difference from ONNX Runtime,
relative to the reference's max absolute value, must be at most

- ``f32``: ``WorkerOptions.output_rtol`` (1e-3) for precision "f32" and "f32-sparse" (the sparse
  weights are decompressed exactly);
- ``bf16``: ``BF16_RTOL`` (5e-2) for precision "default" (OpenVINO computes fp32 models in bf16);
- ``int8``: ``INT8_RTOL`` (0.1) for a quantized file (:func:`study.onnx.int8.is_quantized`), at any
  precision: engines round int8 differently (an output one quantization step away from ONNX
  Runtime's is a few percent of the range; OpenVINO on a small CNN: 1.8%), while a wrong graph is
  off by far more. The detail also records on how many rows of the first output the top-1 class
  agrees (information, not part of the rule).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from study.engines.base import EngineAdapter, EngineConfig, make_inputs
from study.engines.isa import apply_cap
from study.engines.server import process_context, started_from
from study.onnx.int8 import is_quantized

__all__ = [
    "BF16_RTOL",
    "INT8_RTOL",
    "OutputCheck",
    "Worker",
    "WorkerError",
    "WorkerOptions",
    "compare_outputs",
    "is_steady",
    "main_module_hidden",
    "output_tolerance",
    "stderr_tail",
]

BF16_RTOL = 5e-2  # tolerance of the cross-check for precision="default" (bf16 on OpenVINO)
INT8_RTOL = 0.1  # tolerance of the cross-check for a quantized (int8) file, at any precision


class WorkerError(RuntimeError):
    """The worker failed: an error inside the engine, or the process died."""


@dataclass(frozen=True)
class WorkerOptions:
    """What the child needs besides the engine config."""

    seed: int = 0  # seed of the fixed input tensor
    output_rtol: float = 1e-3  # relative tolerance of the cross-check for f32
    quiet: bool = True  # send the child's stdout (engine banners) to /dev/null
    stderr_path: str | None = None  # the child's stderr goes here (the parent quotes its tail)
    # The parent's environment when the worker started; a forked worker takes it on first (its
    # fork server may have started under another), so it reads what a spawned one would.
    environ: dict[str, str] | None = None


@dataclass(frozen=True)
class OutputCheck:
    """An engine's output on the fixed input against ONNX Runtime's."""

    max_abs_diff: float | None  # max |engine - reference| over all outputs; None if not comparable
    rel_diff: float | None  # max_abs_diff / max |reference|
    rtol: float  # the tolerance applied
    ok: bool | None  # rel_diff <= rtol; None when there was no reference
    detail: str = ""  # why it failed or could not be compared (int8: also the top-1 agreement)
    rule: str = "f32"  # which tolerance applied: "f32", "bf16" or "int8" (see output_tolerance)


def output_tolerance(precision: str, quantized: bool, f32_rtol: float) -> tuple[float, str]:
    """The cross-check's tolerance and the name of its rule (see the module docstring).

    Example:
        >>> output_tolerance("f32", False, 1e-3), output_tolerance("f32", True, 1e-3)
        ((0.001, 'f32'), (0.1, 'int8'))
    """
    if quantized:
        return max(f32_rtol, INT8_RTOL), "int8"
    if precision == "default":
        return max(f32_rtol, BF16_RTOL), "bf16"
    return f32_rtol, "f32"


def _top1_detail(outputs: list[np.ndarray], reference: list[np.ndarray]) -> str:
    out, ref = np.asarray(outputs[0]), np.asarray(reference[0])
    if ref.ndim < 1 or ref.size == 0 or out.size != ref.size:
        return ""
    ref2 = ref.reshape(ref.shape[0], -1) if ref.ndim > 1 else ref.reshape(1, -1)
    out2 = out.reshape(ref2.shape)
    agree = int(np.sum(out2.argmax(axis=1) == ref2.argmax(axis=1)))
    return f"top-1 agrees on {agree}/{ref2.shape[0]} rows"


def compare_outputs(
    outputs: list[np.ndarray], reference: list[np.ndarray], rtol: float
) -> OutputCheck:
    """Compare outputs with the reference: max abs difference, relative to the reference's max abs.

    Example:
        >>> compare_outputs([np.array([1.0, 2.0])], [np.array([1.0, 2.002])], 1e-3).ok
        True
    """
    if len(outputs) != len(reference):
        return OutputCheck(
            None, None, rtol, False, f"{len(outputs)} outputs, reference has {len(reference)}"
        )
    diff, scale = 0.0, 0.0
    for i, (out, ref) in enumerate(zip(outputs, reference)):
        out, ref = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        if out.size != ref.size:
            return OutputCheck(
                None, None, rtol, False, f"output {i} has shape {out.shape}, reference {ref.shape}"
            )
        delta = np.abs(out.reshape(ref.shape) - ref)
        diff = max(diff, float(np.max(delta)) if delta.size else 0.0)
        scale = max(scale, float(np.max(np.abs(ref))) if ref.size else 0.0)
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    ok = bool(np.isfinite(rel) and rel <= rtol)
    return OutputCheck(
        diff, rel, rtol, ok, "" if ok else f"relative diff {rel:.3g} > tolerance {rtol:g}"
    )


def is_steady(throughputs: list[float], k: int, tolerance: float) -> bool:
    """Whether the last ``k`` window throughputs agree within ``tolerance`` ((max-min)/mean).

    Example:
        >>> is_steady([50.0, 100.0, 101.0, 100.5], k=3, tolerance=0.02)
        True
    """
    if len(throughputs) < k:
        return False
    last = np.asarray(throughputs[-k:], dtype=float)
    return bool(
        np.all(np.isfinite(last))
        and last.mean() > 0
        and (last.max() - last.min()) / last.mean() <= tolerance
    )


def _reference(config: EngineConfig, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    from study.engines.onnxruntime import ort_session

    session = ort_session(config.onnx_path, config.threads)
    out = list(session.run(None, inputs))
    del session  # release its thread pool before anything is timed
    return out


def _load(
    cls: type[EngineAdapter], config: EngineConfig, opts: WorkerOptions
) -> tuple[EngineAdapter, Any]:
    t0 = time.perf_counter()
    cls.check_available()
    if config.scenario not in cls.scenarios:
        raise ValueError(
            f"engine {cls.name!r} supports scenario {list(cls.scenarios)}; got {config.scenario!r}"
        )
    adapter = cls(config)
    inputs = make_inputs(adapter.specs, opts.seed)
    rtol, rule = output_tolerance(
        config.precision, is_quantized(config.onnx_path), opts.output_rtol
    )
    try:
        reference = _reference(config, inputs)
    except Exception as exc:  # the check is then unknown, not failed; the engine may still run
        reference, ref_error = None, f"no ONNX Runtime reference: {type(exc).__name__}: {exc}"
    adapter.load()
    outputs = adapter.infer(inputs)
    if reference is None:
        check = OutputCheck(None, None, rtol, None, ref_error, rule)
    else:
        check = compare_outputs(outputs, reference, rtol)
        detail = check.detail
        if rule == "int8":
            parts = ("int8 rule", detail, _top1_detail(outputs, reference))
            detail = "; ".join(d for d in parts if d)
        check = dataclasses.replace(check, detail=detail, rule=rule)
    info = {
        "version": adapter.version(),
        "settings": adapter.settings(),
        "check": check,
        "load_seconds": time.perf_counter() - t0,
    }
    return adapter, (inputs, info)


def _warmup(
    adapter: EngineAdapter, inputs: dict[str, np.ndarray], arg: dict[str, float]
) -> dict[str, Any]:
    t0 = time.perf_counter()
    if adapter.self_warming:
        return {"seconds": 0.0, "windows": 0, "steady": True, "throughputs": []}
    tps: list[float] = []
    steady = False
    length = arg["window_seconds"]
    while time.perf_counter() - t0 < arg["max_seconds"]:
        window = adapter.window(inputs, length)
        tps.append(window.throughput)
        # A window must hold several calls, or its throughput is quantised and never steady.
        length = max(length, 5 * window.seconds / max(window.calls, 1))
        if is_steady(tps, int(arg["k"]), arg["tolerance"]):
            steady = True
            break
    return {
        "seconds": time.perf_counter() - t0,
        "windows": len(tps),
        "steady": steady,
        "throughputs": tps,
        "window_seconds": length,
    }


def _child(conn: Any, cls: type[EngineAdapter], config: EngineConfig, opts: WorkerOptions) -> None:
    if opts.quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
    if opts.environ is not None:
        os.environ.clear()
        os.environ.update(opts.environ)
    if opts.stderr_path:  # an engine that aborts says why on stderr (DeepSparse: "Assertion at")
        os.dup2(os.open(opts.stderr_path, os.O_WRONLY | os.O_APPEND), 2)
    for name in cls.unused_imports:
        sys.modules.setdefault(name, None)  # type: ignore[assignment]  # see EngineAdapter
    try:
        apply_cap(cls.name, config.isa)  # before the engine is imported (study.engines.isa)
        adapter, (inputs, info) = _load(cls, config, opts)
    except BaseException as exc:
        conn.send(("error", _describe(exc)))
        return
    conn.send(("ok", info))
    while True:
        cmd, arg = conn.recv()
        if cmd == "stop":
            adapter.close()
            return
        try:
            if cmd == "warmup":
                result: Any = _warmup(adapter, inputs, arg)
            elif cmd == "window":
                result = adapter.window(inputs, arg)
            else:
                raise ValueError(f"unknown worker command {cmd!r}")
            result = ("ok", result)
        except Exception as exc:
            result = ("error", _describe(exc))
        conn.send(result)


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start processes inside this block without re-running the parent's main module in them.

    A spawned child first re-imports the parent's ``__main__`` (as ``__mp_main__``) so that
    objects defined there unpickle; a worker needs none (its target and arguments live in
    ``study.engines``), and under ``python -m study.compare`` that import (pandas, scipy, the
    whole study: 4.7 s) was paid by every worker, about a third of a quick run's benchmark.
    ``multiprocessing.spawn.get_preparation_data`` reads the main module's ``__spec__`` and
    ``__file__`` when a process starts; both are hidden for that moment and restored.
    """
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _describe(exc: BaseException) -> str:
    if (
        isinstance(exc, (ValueError, FileNotFoundError, TypeError))
        or type(exc).__name__ == "EngineUnavailable"
    ):
        return f"{type(exc).__name__}: {exc}"
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n{''.join(tb[-3:])}".strip()


def _death(exitcode: int | None, stderr: str = "") -> str:
    if exitcode is None:
        why = "worker process stopped answering"
    elif exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        why = f"worker process died: killed by {name}{hint}"
    else:
        why = f"worker process died with exit code {exitcode}"
    return f"{why}; its stderr ended: {stderr}" if stderr else why


STDERR_TAIL_LINES = 4  # lines of a dead worker's stderr quoted in its error
_STDERR_NOISE = re.compile(  # DeepSparse's backtrace frames and hex dumps, banner, machine lines
    r"^(\d+#|\[[0-9a-f]+\]|Backtrace:|DeepSparse, Copyright|(Date|OS|Arch|CPU|Vendor|"
    r"Cores/sockets/threads|Available cores/sockets/threads|L[123] cache size[^:]*|"
    r"Total memory|Free memory|Thread):)"
)


def stderr_tail(path: str | None, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` informative lines a worker wrote to stderr, joined by " | ".

    Left out: blank lines, DeepSparse's backtrace frames (``12# 0x...``) and raw hex dumps, and
    its banner and machine description, which say nothing about the failure.
    """
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        text = f.read()[-20000:]
    keep = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join([line for line in keep if not _STDERR_NOISE.match(line)][-lines:])


class Worker:
    """Parent-side handle of one worker process (its own process, so engines never share one;
    forked from the replicate's fork server or spawned, :func:`study.engines.server.process_context`).

    Example:
        >>> w = Worker(OnnxRuntimeEngine, EngineConfig("m.onnx", 1, 2))  # doctest: +SKIP
        >>> info = w.start(); win = w.request("window", 1.0); w.stop()  # doctest: +SKIP
    """

    def __init__(
        self, cls: type[EngineAdapter], config: EngineConfig, opts: WorkerOptions = WorkerOptions()
    ) -> None:
        ctx = process_context(cls, config.isa)
        self._conn, child_conn = ctx.Pipe()
        fd, self._stderr = tempfile.mkstemp(prefix=f"worker-{cls.name}-", suffix=".stderr")
        os.close(fd)
        opts = dataclasses.replace(opts, stderr_path=self._stderr, environ=dict(os.environ))
        self.process = ctx.Process(target=_child, args=(child_conn, cls, config, opts), daemon=True)
        with main_module_hidden():
            self.process.start()
        started_from(ctx, self.process)
        child_conn.close()

    @property
    def connection(self) -> Any:
        """The parent's end of the pipe (readable once the worker has loaded, or died)."""
        return self._conn

    def start(self, timeout: float = 900.0) -> dict[str, Any]:
        """Wait for the model to load; return version, settings, output check and load time."""
        return self._recv(timeout)

    def request(self, cmd: str, arg: Any, timeout: float) -> Any:
        """Send one command and wait for its answer (raises :class:`WorkerError` on failure)."""
        try:
            self._conn.send((cmd, arg))
        except (BrokenPipeError, OSError) as exc:
            self.process.join(5)
            why = self._death()
            self.kill()
            raise WorkerError(why) from exc
        return self._recv(timeout)

    def _recv(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._conn.poll(1.0):  # returns at once on data or EOF (a dead child)
                try:
                    status, payload = self._conn.recv()
                except (EOFError, OSError) as exc:
                    self.process.join(5)
                    raise WorkerError(self._death()) from exc
                if status == "error":
                    self.kill()
                    raise WorkerError(payload)
                return payload
            if not self.process.is_alive():
                raise WorkerError(self._death())
        self.kill()
        raise WorkerError(f"worker did not answer within {timeout:.0f} s; killed")

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        if self.process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("stop", None))
            self.process.join(10)
        self.kill()

    def kill(self) -> None:
        """Kill the worker process (no-op when it has exited) and remove its stderr file."""
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._conn.close()
        with contextlib.suppress(OSError):
            os.remove(self._stderr)

    def _death(self) -> str:
        """Why the process ended, with the tail of its stderr."""
        return _death(self.process.exitcode, stderr_tail(self._stderr))
