"""Workers forked from a fork server per replicate (study.engines.server): which workers use it,
that each replicate gets a server of its own, that a worker sees the parent's environment, and
that a forked worker computes what a spawned one does."""

from __future__ import annotations

import multiprocessing.forkserver as mp_forkserver

import numpy as np
import pytest

from study.engines import ENGINES, EngineConfig
from study.engines.server import PRELOAD, fresh_server, process_context, uses_server
from study.engines.worker import Worker, WorkerOptions
from tests.study.test_engines import tiny_onnx


def test_only_in_process_engines_at_the_native_level_fork_from_the_server():
    for name in ("onnxruntime", "openvino", "deepsparse"):
        assert uses_server(ENGINES[name], "native"), name
        # a capped level sets the engine's variables before anything reads the CPU: spawned
        assert not uses_server(ENGINES[name], "avx2"), name
        assert process_context(ENGINES[name], "avx2").get_start_method() == "spawn"
    for name in ("torch", "deepsparse-cli"):  # needs torch / runs a tool: spawned
        assert not uses_server(ENGINES[name], "native"), name
        assert process_context(ENGINES[name], "native").get_start_method() == "spawn"
    assert "torch" not in PRELOAD


def _worker(path: str, engine: str = "onnxruntime", isa: str = "native") -> tuple[Worker, dict]:
    worker = Worker(ENGINES[engine], EngineConfig(path, 1, 1, isa=isa), WorkerOptions(0, 1e-3))
    return worker, worker.start(timeout=300)


def _server_pid() -> int | None:
    return getattr(mp_forkserver._forkserver, "_forkserver_pid", None)


def test_every_replicate_forks_from_a_server_of_its_own(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx")
    pids = []
    for _ in range(2):  # two replicates: load_workers calls fresh_server() first
        fresh_server()
        workers = [_worker(path) for _ in range(2)]
        try:
            assert all(w.process._start_method == "forkserver" for w, _ in workers)
            assert all(info["check"].ok for _, info in workers)
            pids.append(_server_pid())
        finally:
            for w, _ in workers:
                w.stop()
    assert pids[0] is not None and pids[1] is not None and pids[0] != pids[1]


def test_a_forked_worker_sees_the_environment_the_parent_has_when_it_starts(tmp_path, monkeypatch):
    path = tiny_onnx(tmp_path / "m.onnx")
    fresh_server()
    first, _ = _worker(path, "deepsparse")
    first.stop()
    before = _server_pid()
    # DeepSparse reports the variable it binds threads by, read in the worker
    monkeypatch.setenv("NM_BIND_THREADS_TO_CORES", "0")
    worker, info = _worker(path, "deepsparse")
    worker.stop()
    assert info["settings"]["NM_BIND_THREADS_TO_CORES"] == "0"
    assert _server_pid() != before  # the server started with the old environment was replaced


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "deepsparse"])
def test_a_forked_worker_measures_like_a_spawned_one(engine, tmp_path, monkeypatch):
    """The same file on a worker forked from the server and on a spawned one (the server turned
    off): both load, pass the output check and time windows."""
    path = tiny_onnx(tmp_path / "m.onnx")
    fresh_server()
    forked = _load_and_time(path, engine)
    monkeypatch.setattr("study.engines.server._available", lambda: False)
    spawned = _load_and_time(path, engine)
    assert [r["start method"] for r in (forked, spawned)] == ["forkserver", "spawn"]
    assert forked["check"].ok and spawned["check"].ok
    assert forked["version"] == spawned["version"]
    assert all(np.isfinite(r["throughput"]) and r["throughput"] > 0 for r in (forked, spawned))


def _load_and_time(path: str, engine: str) -> dict:
    """A worker's info, its start method and the throughput of one short window."""
    worker, info = _worker(path, engine)
    try:
        window = worker.request("window", 0.05, 60)
    finally:
        worker.stop()
    return {**info, "start method": worker.process._start_method, "throughput": window.throughput}


def test_a_dead_workers_error_quotes_the_informative_tail_of_its_stderr(tmp_path):
    from study.engines.worker import stderr_tail

    # DeepSparse 1.8 aborting on a file (the seven_ci MobileNetV1 SparseML int8 file, abridged)
    text = """DeepSparse, Copyright 2021-present / Neuralmagic, Inc. version: 1.8.0 COMMUNITY
Date: 12-04-2026 @ 15:10:41 UTC
CPU: AuthenticAMD
Cores/sockets/threads: [2, 1, 2]
Available cores/sockets/threads: [2, 1, 2]
L1 cache size data/instruction: 32k/32k
L3 cache size: 32Mb
Total memory: 23.5402G
Thread: 0x7f31b73536c0

Assertion at ./src/include/wand/jit/function/fusors/scalar_elementwise.hpp:43

Backtrace:
 0# 0x00007f31bcd5fc03:
    [10488b45004889efff50084883c40831c05d415cc34989c4e9c0ffffffcccccc]
17# clone3 at ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81

Please email a copy of this stack trace and any additional information to: support@neuralmagic.com
"""
    path = tmp_path / "w.stderr"
    path.write_text(text)
    assert stderr_tail(str(path)) == (
        "Assertion at ./src/include/wand/jit/function/fusors/scalar_elementwise.hpp:43 | "
        "Please email a copy of this stack trace and any additional information to: "
        "support@neuralmagic.com"
    )
    assert stderr_tail(str(tmp_path / "missing")) == "" and stderr_tail(None) == ""


def test_a_server_is_kept_while_a_worker_forked_from_it_lives(tmp_path, monkeypatch):
    """The parent reads a forked worker's exit code through the server: stopping the server under
    a live worker would make the worker look dead. An environment change meanwhile still reaches
    the next worker (it takes on the parent's variables itself)."""
    path = tiny_onnx(tmp_path / "m.onnx")
    fresh_server()
    live, _ = _worker(path, "deepsparse")
    try:
        pid = _server_pid()
        monkeypatch.setenv("NM_BIND_THREADS_TO_CORES", "0")
        second, info = _worker(path, "deepsparse")
        second.stop()
        assert _server_pid() == pid  # kept: `live` still runs
        assert info["settings"]["NM_BIND_THREADS_TO_CORES"] == "0"
        assert fresh_server() is False and _server_pid() == pid
        assert live.process.is_alive()
        window = live.request("window", 0.02, 60)
        assert window.throughput > 0
    finally:
        live.stop()
    assert fresh_server() is True
