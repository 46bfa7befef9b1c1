"""Where worker processes start: a fork server that has imported the workers' Python modules once.

A worker is a fresh process whose engine loads and compiles its file anew (issue 18's process
level), but most of its start-up was Python imports the engine's package pulls in and never uses
in a benchmark: ``import deepsparse`` imports SparseZoo's analysis tools and Matplotlib (3-4 s of a
DeepSparse worker's ~4.3 s load), and every worker imports NumPy, ONNX and ONNX Runtime (its
reference run). With 66 DeepSparse workers in a quick run, that was ~200 s of CPU.

So the workers of the in-process engines (``EngineAdapter.fork_server``) are forked from a
multiprocessing fork server that has imported :data:`PRELOAD`: modules that start no threads and
hold no engine state at import (ONNX Runtime's among them: its thread pools start with a session);
DeepSparse's and OpenVINO's own packages are not, so each worker imports its engine, reads the
CPU and compiles its model itself. The server is started anew for every set of workers
(:func:`fresh_server`, called once per replicate), so each replicate has its own server process
(its own address-space layout and import state) and no two replicates share one.

The environment reaches a forked worker by two paths, each for what the other cannot do: the
worker sets the parent's environment as it was when the worker started (``WorkerOptions.environ``)
before it imports its engine, which covers every variable read after the fork (the engines'
thread and ISA settings); and a server started under another environment is replaced before the
next worker forks (:func:`process_context`), because a variable that a preloaded module read at
its import in the server (NumPy's OpenBLAS reads ``OPENBLAS_NUM_THREADS`` there) cannot be changed
afterwards from the worker.

Spawned instead (a fresh interpreter, as before): workers at a capped ISA level (the cap's
environment variables must be set before anything reads the CPU's features,
:func:`study.engines.isa.apply_cap`), engines that need torch or run a tool in a subprocess, and
any engine that does not declare ``fork_server``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.forkserver as _mp_forkserver
import os
import weakref
from typing import Any

__all__ = [
    "PRELOAD",
    "SERVER_MODULE",
    "fresh_server",
    "process_context",
    "started_from",
    "uses_server",
]

log = logging.getLogger(__name__)

SERVER_MODULE = "study.engines.server_preload"  # the one module the server imports: PRELOAD
# Imported once by the server, in this order; a module that fails to import is skipped (the
# workers then import it themselves). Pure Python and extension modules that start no threads
# and touch no engine: the worker's own imports, and what `import deepsparse` pulls in unused.
PRELOAD = (
    "numpy",
    "onnx",
    "onnxruntime",  # the reference run of every worker; its thread pools start with a session
    "study.engines.worker",
    "sparsezoo",
    "sparsezoo.analyze_v1",  # imported by deepsparse.analyze, with matplotlib.pyplot
    "matplotlib.pyplot",
)

_environment: dict[str, str] | None = None  # os.environ when the running server was started
# The workers forked from the running server. The parent reads a forked worker's exit code through
# the server, so the server is never stopped while one of them lives.
_children: weakref.WeakSet = weakref.WeakSet()


def uses_server(cls: Any, isa: str) -> bool:
    """Whether a worker of engine class ``cls`` at ISA level ``isa`` forks from the server."""
    return bool(getattr(cls, "fork_server", False)) and isa == "native" and _available()


def process_context(cls: Any, isa: str) -> Any:
    """The multiprocessing context a worker of ``cls`` at ``isa`` starts from.

    The fork server's context (started on first use, restarted when the parent's environment
    changed since it started, so a worker never inherits stale variables), else "spawn".
    """
    global _environment
    if not uses_server(cls, isa):
        return mp.get_context("spawn")
    if _environment is not None and _environment != dict(os.environ) and not _alive():
        fresh_server()  # a live worker keeps its server; a new one applies the parent's variables
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([SERVER_MODULE])
    if _environment is None:
        _environment = dict(os.environ)
    return ctx


def started_from(ctx: Any, process: Any) -> None:
    """Note a started worker process: the server is kept while it lives (see :func:`fresh_server`)."""
    if ctx.get_start_method() == "forkserver":
        _children.add(process)


def fresh_server() -> bool:
    """Stop the running fork server, if any, so the next worker starts a new one; return whether
    it was stopped.

    Called at the start of every replicate's loading (:func:`study.bench.workers.load_workers`),
    after the previous replicate's workers were stopped, so replicates never share a server. A
    server some worker of which still lives is kept (the parent would lose that worker's exit
    code), with a warning.
    """
    global _environment
    if _alive():
        log.warning("fork server kept: %d worker(s) forked from it still run", len(_alive()))
        return False
    _environment = None
    server = getattr(_mp_forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        stop()
    return True


def _alive() -> list:
    return [p for p in list(_children) if p.is_alive()]


def _available() -> bool:
    """The fork server exists on this platform and can be restarted (CPython's private `_stop`)."""
    return "forkserver" in mp.get_all_start_methods() and hasattr(
        getattr(_mp_forkserver, "_forkserver", None), "_stop"
    )
