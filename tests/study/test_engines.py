"""Engine adapters, run in-process on tiny ONNX models built here with onnx.helper.

Each adapter's output is checked against NumPy computing the same Gemm + Relu from the same weights
(an outside reference), and the settings it reports are checked against what was asked for.
The int8 tests use real int8 files of the torch path (FX-quantized, exported and cleaned by
study.make.quantize), checked against ONNX Runtime under the worker's int8 rule.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from study.bench.hardware import capture_hardware
from study.engines import ENGINES, EngineConfig, EngineUnavailable, get_engine
from study.engines.base import Window, make_inputs, read_input_specs, sync_window
from study.engines.deepsparse_cli import deepsparse_benchmark_command, parse_deepsparse_json
from study.engines.onnxruntime import OnnxRuntimeEngine
from study.engines.worker import compare_outputs, is_steady

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 8)).astype(np.float32)  # Gemm weight, (out, in) as nn.Linear stores it
B = RNG.standard_normal(4).astype(np.float32)


def tiny_onnx(path, batch: int | str = 1, width: int | str = 8) -> str:
    """y = relu(x @ W.T + b), x: (batch, width); a str dim is dynamic."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["g"], transB=1),
        helper.make_node("Relu", ["g"], ["y"]),
    ]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def numpy_reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W.T + B, 0.0)


# Fake engines for tests/study/test_bench.py (defined here so spawned workers import a light module).
class GhostEngine(OnnxRuntimeEngine):
    """An engine whose package is not installed."""

    name, module = "ghost", "no_such_engine_package_xyz"


class CrashEngine(OnnxRuntimeEngine):
    """Dies like an engine whose native code aborts, on its first timed window: a line on stderr
    (as DeepSparse's "Assertion at ...") and an exit without a Python traceback."""

    name = "crash"

    def window(self, inputs, seconds):
        os.write(2, b"Assertion at ./src/kernel.hpp:43\nBacktrace:\n 0# 0x00007f31bcd5fc03: \n")
        os._exit(1)


class RaiseEngine(OnnxRuntimeEngine):
    """Raises inside the engine while loading."""

    name = "raise"

    def load(self):
        raise RuntimeError("engine exploded while compiling")


class WrongEngine(OnnxRuntimeEngine):
    """Fast and wrong: its output is off by 1."""

    name = "wrong"

    def infer(self, inputs):
        return [o + 1.0 for o in super().infer(inputs)]


class FixedEngine(OnnxRuntimeEngine):
    """Reports exactly 1000 items/s in every window (deterministic stopping)."""

    name = "fixed"

    def window(self, inputs, seconds):
        return Window(100, 0.1, 100, (1.0,) * 100)


class RendezvousEngine(OnnxRuntimeEngine):
    """Logs load and window intervals to ``$RENDEZVOUS_LOG``; ``load()`` waits until
    ``$RENDEZVOUS_PEERS`` workers have begun loading, so it fails unless they load concurrently."""

    name = "rendezvous"

    def _log(self, event: str) -> None:
        import time

        with open(os.environ["RENDEZVOUS_LOG"], "a") as f:
            f.write(f"{os.getpid()} {event} {time.time():.6f}\n")

    def load(self):
        import time

        self._log("load_start")
        peers, deadline = int(os.environ["RENDEZVOUS_PEERS"]), time.time() + 30
        while True:
            with open(os.environ["RENDEZVOUS_LOG"]) as f:
                started = sum(" load_start " in line for line in f)
            if started >= peers or time.time() > deadline:
                break
            time.sleep(0.02)
        if started < peers:
            raise RuntimeError(f"only {started} of {peers} workers loaded concurrently")
        super().load()
        self._log("load_end")

    def window(self, inputs, seconds):
        self._log("window_start")
        try:
            return super().window(inputs, seconds)
        finally:
            self._log("window_end")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return tiny_onnx(tmp_path_factory.mktemp("eng") / "tiny.onnx")


def test_fixed_batch_mismatch_is_named(model):
    with pytest.raises(ValueError, match=r"`batch_size` must be 1 for tiny.onnx.*got 4"):
        read_input_specs(model, 4)


def test_dynamic_dims_need_input_shape(tmp_path):
    path = tiny_onnx(tmp_path / "dyn.onnx", batch="N", width="W")
    with pytest.raises(ValueError, match=r"dynamic dims \(\?\).*input_shape"):
        read_input_specs(path, 2)
    (spec,) = read_input_specs(path, 2, (8,))
    assert spec.shape == (2, 8) and spec.dtype == "float32"


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_input_specs(str(tmp_path / "absent.onnx"), 1)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf at all\xff\xff")
    with pytest.raises(ValueError, match="not a readable ONNX model|no graph inputs"):
        read_input_specs(str(bad), 1)


def test_inputs_are_seeded(model):
    specs = read_input_specs(model, 1)
    a, b, c = make_inputs(specs, 0), make_inputs(specs, 0), make_inputs(specs, 1)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], c["x"])


def test_unknown_engine_lists_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"`engine` must be one of \['deepsparse', 'deepsparse-cli'.*got 'tensorrt'",
    ):
        get_engine("tensorrt")


def test_missing_package_is_unavailable():
    with pytest.raises(
        EngineUnavailable, match="needs the Python package 'no_such_engine_package_xyz'"
    ):
        GhostEngine.check_available()


def test_deepsparse_is_linux_x86_only(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    with pytest.raises(EngineUnavailable, match="only on Linux x86-64; this is Darwin"):
        ENGINES["deepsparse"].check_available()


def test_compare_outputs_values():
    ref = [np.array([[1.0, -2.0, 4.0]])]
    check = compare_outputs([np.array([[1.0, -2.0, 4.002]])], ref, rtol=1e-3)
    assert (
        check.max_abs_diff == pytest.approx(0.002)
        and check.rel_diff == pytest.approx(0.0005)
        and check.ok
    )
    wrong = compare_outputs([np.array([[1.0, -2.0, 5.0]])], ref, rtol=1e-3)
    assert wrong.ok is False and wrong.rel_diff == pytest.approx(0.25)
    assert compare_outputs([np.zeros((1, 2))], ref, 1e-3).ok is False  # shape mismatch


def test_is_steady():
    assert not is_steady([100.0, 100.0], k=3, tolerance=0.02)
    assert not is_steady([90.0, 100.0, 100.0], k=3, tolerance=0.02)
    assert is_steady([10.0, 99.5, 100.0, 100.5], k=3, tolerance=0.02)


def _run(engine: str, path: str, **kw) -> tuple[np.ndarray, dict, object]:
    adapter = ENGINES[engine](EngineConfig(path, 1, 1, **kw))
    adapter.load()
    try:
        x = make_inputs(adapter.specs, 0)
        (out,) = adapter.infer(x)
        window = adapter.window(x, 0.05)
        return out, adapter.settings() | {"_version": adapter.version()}, window, x
    finally:
        adapter.close()


def test_onnxruntime_output_and_settings(model):
    out, settings, window, x = _run("onnxruntime", model)
    np.testing.assert_allclose(out, numpy_reference(x["x"]), rtol=1e-5, atol=1e-6)
    assert settings["intra_op_num_threads"] == 1 and settings["inter_op_num_threads"] == 1
    assert settings["graph_optimization_level"].endswith("ORT_ENABLE_ALL")
    assert (
        window.calls > 0
        and window.items == window.calls
        and len(window.latencies_ms) == window.calls
    )


def test_openvino_f32_is_forced_and_read_back(model):
    out, settings, _, x = _run("openvino", model)
    np.testing.assert_allclose(out, numpy_reference(x["x"]), rtol=1e-5, atol=1e-6)
    assert settings["precision"] == "f32" and settings["INFERENCE_NUM_THREADS"] == 1
    assert settings["PERFORMANCE_HINT"] == "LATENCY"


def test_openvino_default_precision_is_recorded(model):
    _, settings, _, _ = _run("openvino", model, precision="default")
    # OpenVINO's CPU plugin defaults to bf16 where the CPU has AVX512-BF16 or AMX (ENVIRONMENT.md).
    isa = capture_hardware().isa
    assert settings["precision"] == ("bf16" if isa["avx512_bf16"] or isa["amx_bf16"] else "f32")


def test_openvino_async_queue(model):
    _, settings, window, _ = _run("openvino", model, scenario="async")
    assert settings["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert window.calls > 0 and window.calls == len(window.latencies_ms)


def test_deepsparse_output_and_settings(model):
    out, settings, window, x = _run("deepsparse", model)
    np.testing.assert_allclose(out, numpy_reference(x["x"]), rtol=1e-4, atol=1e-5)
    assert settings["num_cores"] == 1 and 0.0 <= settings["fraction_of_supported_ops"] <= 1.0
    assert settings["cpu_avx_type"] in ("avx2", "avx512") and window.calls > 0


def test_deepsparse_leaves_a_dynamic_batch_model_file_untouched(tmp_path):
    # deepsparse.compile_model with input shapes rewrites a dynamic-batch file in place
    # (override_onnx_input_shapes, inplace=True); the adapter must compile a private copy.
    path = tiny_onnx(tmp_path / "dyn.onnx", batch="N")
    before = Path(path).read_bytes()
    out, _, _, x = _run("deepsparse", path, input_shape=(8,))
    np.testing.assert_allclose(out, numpy_reference(x["x"]), rtol=1e-4, atol=1e-5)
    assert Path(path).read_bytes() == before


def test_torch_eager_from_convention_path(tmp_path):
    import torch  # here, not at the top: spawned test workers import this module

    path = tiny_onnx(tmp_path / "lin.onnx")
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W))
        net[0].bias.copy_(torch.from_numpy(B))
    torch.save(net, tmp_path / "lin.pt")
    out, settings, _, x = _run("torch", path)
    np.testing.assert_allclose(out, numpy_reference(x["x"]), rtol=1e-5, atol=1e-6)
    assert settings["num_threads"] == 1 and settings["module_path"].endswith("lin.pt")


def test_torch_without_module_says_where_it_looked(model):
    adapter = ENGINES["torch"](EngineConfig(model, 1, 1))
    with pytest.raises(FileNotFoundError, match=r"torch.save\(model\) at '.*tiny.pt'"):
        adapter.load()


def test_sync_window_counts_calls():
    window = sync_window(lambda: None, 0.02, batch_size=4)
    assert window.items == 4 * window.calls and window.seconds >= 0.02


# deepsparse.benchmark 1.8.0 output (-x) of `deepsparse.benchmark tiny.onnx -b 1 -ncores 1 -s sync -t 2`.
_DS_JSON = {
    "version": "1.8.0",
    "batch_size": 1,
    "num_cores": 1,
    "scenario": "singlestream",
    "num_streams": 1,
    "fraction_of_supported_ops": 1.0,
    "benchmark_result": {
        "scenario": "singlestream",
        "items_per_sec": 49330.525725869105,
        "seconds_ran": 1.9999989570000025,
        "iterations": 98661,
        "median": 0.014893000070514972,
        "mean": 0.016815707929183864,
        "90.0%": 0.018416999978398962,
        "99.0%": 0.05010859995309139,
    },
}


def test_parse_deepsparse_json_matches_tool_throughput():
    window = parse_deepsparse_json(json.loads(json.dumps(_DS_JSON)), batch_size=1)
    assert window.items == 98661 and window.throughput == pytest.approx(
        49330.525725869105, rel=1e-9
    )
    assert window.reported_ms == pytest.approx(
        (0.016815707929183864, 0.014893000070514972, 0.018416999978398962, 0.05010859995309139)
    )


def test_deepsparse_command_has_fair_settings():
    cmd = deepsparse_benchmark_command("m.onnx", 2, 3, "sync", 5, "o.json", "[2,8]")
    joined = " ".join(cmd)
    assert (
        "-b 2 -ncores 3 -s sync -t 5" in joined
        and "-x o.json" in joined
        and "-shapes [2,8]" in joined
    )


def test_without_banner_drops_only_the_banner(capfd):
    from study.engines.deepsparse import without_banner

    with without_banner():
        os.write(2, b"DeepSparse, Copyright 2021-present / Neuralmagic, Inc. version: 1.8.0\n")
        os.write(2, b"a real warning\n")
    os.write(2, b"after the block\n")
    err = capfd.readouterr().err
    assert err == "a real warning\nafter the block\n"


@pytest.mark.skipif(
    not (platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")),
    reason="DeepSparse exists only on Linux x86-64",
)
def test_deepsparse_adapter_prints_no_banner(tmp_path):
    # In fresh processes (the banner comes once per process): a plain compile prints it, the
    # adapter's load does not.
    import subprocess
    import sys

    path = tiny_onnx(tmp_path / "m.onnx")
    plain = f"import deepsparse; deepsparse.compile_model({path!r}, batch_size=1, num_cores=1)"
    ours = (
        "from study.engines.deepsparse import DeepSparseEngine; from study.engines import "
        f"EngineConfig; DeepSparseEngine(EngineConfig({path!r}, 1, 1)).load()"
    )
    errs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stderr
        for code in (plain, ours)
    ]
    assert "DeepSparse, Copyright" in errs[0]
    assert "DeepSparse, Copyright" not in errs[1]


# --- int8 files and precision "f32-sparse" ---------------------------------------------------


def _torch_int8_onnx(path, net, input_shape: tuple[int, ...]) -> str:
    """A real int8 file of the torch path: FX QAT observers calibrated on random batches, converted,
    exported and cleaned (study.make.quantize.export_int8_torch). No training: the weights are ``net``'s.
    """
    import torch  # here, not at the top: spawned test workers import this module
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    from study.make.quantize import export_int8_torch

    torch.manual_seed(0)
    example = torch.randn(*input_shape)
    prepared = prepare_qat_fx(net.train(), get_default_qat_qconfig_mapping("x86"), (example,))
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn(16, *input_shape[1:]))
    prepared.eval()
    return str(export_int8_torch(convert_fx(prepared), path, input_shape))


@pytest.fixture(scope="module")
def int8_cnn(tmp_path_factory) -> str:
    from study.make.models import build_model

    net = build_model("small_cnn", num_classes=10, seed=0)
    return _torch_int8_onnx(tmp_path_factory.mktemp("int8") / "cnn.onnx", net, (1, 3, 16, 16))


@pytest.fixture(scope="module")
def int8_sparse_fc(tmp_path_factory) -> str:
    """One 90%-sparse int8 FullyConnected 256 -> 128 (both multiples of 64, as OpenVINO's sparse
    kernel needs)."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 128))
    with torch.no_grad():
        w = net[0].weight
        w[w.abs() <= w.abs().flatten().kthvalue(int(0.9 * w.numel())).values] = 0.0
    return _torch_int8_onnx(tmp_path_factory.mktemp("int8") / "fc.onnx", net, (1, 256))


def _amx() -> bool:
    flags = next(
        (
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ),
        [],
    )
    return {"amx_int8", "amx_tile"} <= set(flags)


def test_precision_f32_sparse_is_openvino_only(model):
    for name in ("onnxruntime", "deepsparse", "torch"):
        with pytest.raises(
            ValueError,
            match=rf"engine '{name}' supports precision \['f32', 'default'\]; got 'f32-sparse'",
        ):
            ENGINES[name](EngineConfig(model, 1, 1, precision="f32-sparse"))
    with pytest.raises(ValueError, match=r"supports precision \['f32', 'default', 'f32-sparse'\]"):
        ENGINES["openvino"](EngineConfig(model, 1, 1, precision="bf16"))


def test_openvino_reports_int8_runtime_precisions(int8_cnn):
    _, settings, _, _ = _run("openvino", int8_cnn)
    precisions = settings["runtime_precisions"]
    # small_cnn's 3 convolutions and its classifier run in int8 (u8 activations, i8 weights).
    assert set(precisions["Convolution"]) <= {"u8", "i8"}
    assert sum(precisions["Convolution"].values()) == 3
    assert set(precisions["FullyConnected"]) <= {"u8", "i8"}
    assert any("I8" in kernel for kernel in settings["exec_types"])
    assert settings["sparse_weights_layers"] == 0 and "sparse_weights_took_effect" not in settings


def test_openvino_f32_sparse_says_whether_it_took_effect(int8_sparse_fc):
    out, settings, _, x = _run("openvino", int8_sparse_fc, precision="f32-sparse")
    assert settings["CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"] == pytest.approx(0.5)
    assert settings["precision"] == "f32"
    took = settings["sparse_weights_took_effect"]
    assert took == (settings["sparse_weights_layers"] > 0)
    assert (settings["sparse_weights_reason"] == "") == took
    if not _amx():  # read from this machine's /proc/cpuinfo, not assumed
        assert took is False and "the CPU has no AMX" in settings["sparse_weights_reason"]


def test_sparse_weights_reason_names_every_cause():
    from study.engines.openvino import sparse_weights_reason

    amx = {"amx_int8", "amx_tile", "avx512f"}
    assert sparse_weights_reason(amx, {"FullyConnected": {"u8": 1}}, 1) == ""
    no_amx = sparse_weights_reason({"avx512f"}, {"FullyConnected": {"u8": 1}}, 0)
    assert no_amx.startswith("the CPU has no AMX") and "FullyConnected layer runs" not in no_amx
    fp32_fc = sparse_weights_reason(amx, {"FullyConnected": {"f32": 2}}, 0)
    assert fp32_fc.startswith("no FullyConnected layer runs in INT8")
    assert "qualified" in sparse_weights_reason(amx, {"FullyConnected": {"u8": 1}}, 0)
    assert "unknown" in sparse_weights_reason(None, {"FullyConnected": {"u8": 1}}, 0)


def test_deepsparse_compiles_an_int8_file_and_reports_support(int8_cnn):
    _, settings, window, _ = _run("deepsparse", int8_cnn)
    # DeepSparse 1.8 runs the torch path's QDQ file but does not compile its QDQ ops itself
    # (fraction 0.0 here, recorded, never assumed); the range is what is checked.
    assert 0.0 <= settings["fraction_of_supported_ops"] <= 1.0
    assert isinstance(settings["cpu_vnni"], bool) and window.calls > 0


def test_output_tolerance_rules():
    from study.engines.worker import output_tolerance

    assert output_tolerance("f32", False, 1e-3) == (1e-3, "f32")
    assert output_tolerance("f32-sparse", False, 1e-3) == (1e-3, "f32")
    assert output_tolerance("default", False, 1e-3) == (5e-2, "bf16")
    assert output_tolerance("f32", True, 1e-3) == (0.1, "int8")
    assert output_tolerance("default", True, 1e-3) == (0.1, "int8")


@pytest.mark.parametrize("engine", ["openvino", "deepsparse"])
def test_int8_rule_accepts_engines_and_rejects_a_wrong_output(engine, int8_cnn):
    from study.engines.onnxruntime import ort_session
    from study.engines.worker import output_tolerance

    rtol, _ = output_tolerance("f32", True, 1e-3)
    for seed in range(3):
        adapter = ENGINES[engine](EngineConfig(int8_cnn, 1, 1))
        adapter.load()
        try:
            x = make_inputs(adapter.specs, seed)
            out = adapter.infer(x)
        finally:
            adapter.close()
        ref = ort_session(int8_cnn, 1).run(None, x)
        assert compare_outputs(out, ref, rtol).ok
        wrong = [o + 0.5 * np.abs(r).max() for o, r in zip(out, ref)]  # off by half the range
        assert compare_outputs(wrong, ref, rtol).ok is False


def test_worker_checks_an_int8_file_with_the_int8_rule(int8_cnn):
    from study.engines.worker import Worker

    worker = Worker(ENGINES["openvino"], EngineConfig(int8_cnn, 1, 1))
    try:
        check = worker.start(timeout=300)["check"]
    finally:
        worker.stop()
    assert check.rule == "int8" and check.rtol == pytest.approx(0.1) and check.ok
    assert check.detail.startswith("int8 rule") and "top-1 agrees on 1/1 rows" in check.detail


def _broken_qdq(path) -> str:
    """A QDQ conv whose per-channel weight scale has 3 entries for 16 output channels: valid for
    onnx.checker, impossible to run."""
    w = np.ones((16, 3, 3, 3), np.int8)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.full(3, 0.01, np.float32), "sw"),
        numpy_helper.from_array(np.zeros(3, np.int8), "zw"),
        numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
        numpy_helper.from_array(np.array(128, np.uint8), "zx"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
        helper.make_node("DequantizeLinear", ["W", "sw", "zw"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "broken", [x], [y], inits),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def test_a_qdq_file_an_engine_cannot_run_fails_with_its_reason(tmp_path):
    from study.engines.worker import Worker, WorkerError

    worker = Worker(ENGINES["openvino"], EngineConfig(_broken_qdq(tmp_path / "broken.onnx"), 1, 1))
    try:
        with pytest.raises(WorkerError, match=r"(?s)DequantizeLinear.*scale_dim"):
            worker.start(timeout=300)
    finally:
        worker.stop()


def test_spawned_workers_do_not_rerun_the_parents_main_module(monkeypatch):
    """Under `python -m study.compare` a spawned child would re-import the whole study (4.7 s)."""
    import sys
    import types
    from multiprocessing import spawn

    from study.engines.worker import main_module_hidden

    fake = types.ModuleType("__main__")
    fake.__spec__ = types.SimpleNamespace(name="study.compare")
    fake.__file__ = "/somewhere/study/compare.py"
    monkeypatch.setitem(sys.modules, "__main__", fake)
    assert spawn.get_preparation_data("w")["init_main_from_name"] == "study.compare"
    with main_module_hidden():
        data = spawn.get_preparation_data("w")
    assert "init_main_from_name" not in data and "init_main_from_path" not in data
    assert fake.__spec__.name == "study.compare" and fake.__file__ == "/somewhere/study/compare.py"


@pytest.mark.parametrize("name", sorted(n for n, c in ENGINES.items() if c.unused_imports))
def test_an_engine_imports_without_the_packages_it_marks_unused(name, model):
    """The worker marks ``unused_imports`` absent; the engine package must still import and run."""
    import subprocess
    import sys

    cls = ENGINES[name]
    try:
        cls.check_available()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    code = (
        "import sys\n"
        f"for n in {cls.unused_imports!r}: sys.modules[n] = None\n"
        "from study.engines import ENGINES, EngineConfig\n"
        f"e = ENGINES[{name!r}](EngineConfig({model!r}, 1, 1)); e.load()\n"
        "import numpy as np\n"
        "out = e.infer({'x': np.ones((1, 8), np.float32)}); e.close()\n"
        f"assert all(sys.modules.get(n) is None for n in {cls.unused_imports!r})\n"
        "print(float(out[0].sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = numpy_reference(np.ones((1, 8), np.float32)).sum()
    assert float(done.stdout.split()[-1]) == pytest.approx(expected, rel=1e-4)
