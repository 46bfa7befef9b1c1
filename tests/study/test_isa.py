"""The ISA paths: levels, caps and what the engines report, with every CPU branch forced.

The CPU flags of the three kinds of machine seen (AVX2-only Zen 3; AVX-512 with VNNI and bf16, no
AMX, Zen 5; Sapphire Rapids with AMX) are simulated, so each branch is tested on every machine.
The capped workers at the end run the real engines: an AVX2 cap is valid on every x86 CPU these
tests run on (on an AVX2-only CPU it equals native, and the engines still say AVX2).
"""

from __future__ import annotations

import platform
from types import SimpleNamespace

import pytest

from study.compare import bench_cells
from study.config import load_config
from study.engines.deepsparse import banner_isa, int8_label
from study.engines.isa import (
    apply_cap,
    bf16_capable,
    check_isa_levels,
    kernel_isa,
    kernels_by_isa,
    level_skip_reason,
    native_level,
)
from study.engines.openvino import isa_path

_NONE = dict.fromkeys(
    ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"),
    False,
)
ZEN3 = {**_NONE, "avx2": True}  # AVX2 only: no AVX-512, no VNNI, no bf16
ICELAKE = {**ZEN3, "avx512f": True, "avx512_vnni": True}  # VNNI without bf16
ZEN5 = {**ICELAKE, "avx512_bf16": True}  # AVX-512, VNNI, bf16, no AMX
SAPPHIRE = {**ZEN5, "amx_tile": True, "amx_bf16": True, "amx_int8": True}
X86 = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


@pytest.mark.parametrize(
    ("isa", "native", "avx2_skipped", "avx512_skipped"),
    [
        (ZEN3, "avx2", True, True),
        (ICELAKE, "avx512", False, True),
        (ZEN5, "avx512", False, True),
        (SAPPHIRE, "amx", False, False),
    ],
)
def test_a_level_is_measured_only_below_the_cpus_own(isa, native, avx2_skipped, avx512_skipped):
    assert native_level(isa) == native
    assert level_skip_reason("native", isa) is None
    assert (level_skip_reason("avx2", isa) is not None) == avx2_skipped
    assert (level_skip_reason("avx512", isa) is not None) == avx512_skipped
    if avx2_skipped:
        assert "no AVX-512" in level_skip_reason("avx2", isa)


def test_unknown_or_misordered_isa_levels_name_the_allowed_ones():
    with pytest.raises(ValueError, match=r"one of \['native', 'avx512', 'avx2'\]; got 'avx3'"):
        check_isa_levels(["native", "avx3"])
    with pytest.raises(ValueError, match="must start with 'native'"):
        check_isa_levels(["avx2", "native"])
    with pytest.raises(ValueError, match="must not repeat"):
        check_isa_levels(["native", "avx2", "avx2"])
    with pytest.raises(ValueError, match="avx3"):
        load_config("smoke", {"isa": ["avx3"]})
    assert load_config("smoke", {"isa": ["avx2"]}).isa == ("native", "avx2")  # native implied


def _records():
    """A dense, a reference and an int8 file of one architecture (what bench_cells reads)."""
    common = dict(model="m", exporter="torch", onnx_path="models/x.onnx", extra={})
    return [
        SimpleNamespace(**common, pruner="none", profile="dense", mask="none", quant="none", sparsity=0.0),
        SimpleNamespace(**common, pruner="gmp", profile="global", mask="unstructured", quant="none", sparsity=0.8),
        SimpleNamespace(**common, pruner="gmp", profile="global", mask="unstructured", quant="torch", sparsity=0.8),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("isa", "default", "sparse"),
    [(ZEN3, False, False), (ICELAKE, False, False), (ZEN5, True, False), (SAPPHIRE, True, True)],
)
def test_openvino_extra_precisions_only_where_they_can_differ(tmp_path, isa, default, sparse):
    cfg = load_config("smoke")
    cells, skips = bench_cells(cfg, _records(), tmp_path, isa, "m1")
    ov = {c.precision for c in cells if c.engine == "openvino"}
    assert ("default" in ov) == default and ("f32-sparse" in ov) == sparse
    skipped = {s.what: s.reason for s in skips}
    assert ("openvino precision=default" in skipped) == (not default)
    assert ("openvino precision=f32-sparse" in skipped) == (not sparse)
    if not default:
        assert "neither AVX512-BF16 nor AMX-BF16" in skipped["openvino precision=default"]
    # The int8 file is measured on all three engines whatever the CPU (emulated is labelled).
    int8 = {c.engine for c in cells if c.quant == "torch"}
    assert int8 == {"onnxruntime", "openvino", "deepsparse"}
    assert all(s.machine == "m1" for s in skips)


@pytest.mark.parametrize(("isa", "measured"), [(ZEN3, False), (ZEN5, True), (SAPPHIRE, True)])
def test_an_isa_level_adds_a_block_of_plain_cells_or_is_skipped(tmp_path, isa, measured):
    cfg = load_config("smoke", {"isa": ["native", "avx2"]})
    cells, skips = bench_cells(cfg, _records(), tmp_path, isa)
    capped = [c for c in cells if c.isa == "avx2"]
    native = [c for c in cells if c.isa == "native"]
    assert native and {c.block for c in native} == {"m/sync"}
    if measured:
        assert {c.block for c in capped} == {"m/sync/avx2"}
        assert {c.precision for c in capped} == {"f32"}  # no ablation cells at a capped level
        assert len(capped) == len([c for c in native if c.precision == "f32"])
        assert not any(s.what == "isa=avx2" for s in skips)
    else:
        assert not capped
        assert [s.reason for s in skips if s.what == "isa=avx2"][0].startswith("the CPU has no")


def test_capped_cells_get_their_own_ids_and_native_ids_are_unchanged():
    from study.bench.cells import CellSpec, cell_key

    native = CellSpec("m.onnx", "openvino", threads=2)
    assert cell_key(native, "ab") == cell_key(
        CellSpec("m.onnx", "openvino", threads=2, isa="native"), "ab"
    )
    assert cell_key(CellSpec("m.onnx", "openvino", threads=2, isa="avx2"), "ab") != cell_key(
        native, "ab"
    )


def test_caps_set_the_engines_own_variables_and_nothing_for_onnxruntime():
    env: dict[str, str] = {}
    assert apply_cap("deepsparse", "avx2", env) == {"NM_ARCH": "avx2"}
    assert apply_cap("openvino", "avx2", env) == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert apply_cap("onnxruntime", "avx2", env) == {}
    assert apply_cap("openvino", "native", env) == {}
    assert env == {"NM_ARCH": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    with pytest.raises(ValueError, match="avx3"):
        apply_cap("openvino", "avx3", {})


def test_kernel_names_are_read_for_the_isa_they_state():
    assert kernel_isa("brgconv_avx512_1x1_f32") == "avx512"
    assert kernel_isa("brgemm_avx512_amx_sparse_I8") == "amx"
    assert kernel_isa("jit_avx2_f32") == "avx2"
    assert kernel_isa("gemm_mlas_f32") == "mlas"
    assert kernel_isa("jit_uni_f32") == kernel_isa("unknown_f32") == "unstated"
    by = kernels_by_isa([("Convolution", "brgconv_avx2_f32"), ("Reduce", "jit_avx512_f32")])
    assert by == {"avx2": {"Convolution": 1}, "avx512": {"Reduce": 1}}


def test_an_openvino_cap_took_effect_only_when_its_heavy_layers_obey_it():
    # What OpenVINO 2026.4 ran for ResNet-18 under ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU: the
    # convolutions moved to AVX2, its own Reduce kernel stayed AVX-512 (no cap reaches it).
    capped = {"avx2": {"Convolution": 20, "Pooling": 1}, "avx512": {"Reduce": 1}}
    text, took = isa_path(capped, "avx2")
    assert took is True and "above the avx2 cap: Reduce (avx512)" in text
    not_capped = {"avx512": {"Convolution": 20}}
    assert isa_path(not_capped, "avx2")[1] is False
    assert isa_path(capped, "native")[1] is None


def test_deepsparse_labels_int8_from_its_own_vnni_and_binary():
    assert int8_label(cpu_vnni=False, engine_binary="avx2") == "int8 emulated (no VNNI)"
    assert int8_label(cpu_vnni=False, engine_binary="avx512") == "int8 emulated (no VNNI)"
    assert int8_label(cpu_vnni=True, engine_binary="avx2") == "int8 emulated (AVX2 engine binary)"
    assert int8_label(cpu_vnni=True, engine_binary="avx512") == ""
    line = "DeepSparse, Copyright ... (release) (optimized) (system=avx512_vnni, binary=avx2)"
    assert banner_isa(line) == {"system_isa": "avx512_vnni", "engine_binary": "avx2"}
    assert banner_isa("no banner") == {}


def test_bf16_needs_avx512_bf16_or_amx_bf16():
    assert not bf16_capable(ZEN3) and not bf16_capable(ICELAKE)
    assert bf16_capable(ZEN5) and bf16_capable({"amx_bf16": True})


# --- the real engines under an AVX2 cap ---------------------------------------------------------


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory) -> str:
    import torch

    from study.make.export import export_torch
    from study.make.models import build_model

    net = build_model("small_cnn", num_classes=10, seed=0).eval()
    path = tmp_path_factory.mktemp("isa") / "cnn.onnx"
    export_torch(net, path, (1, 3, 16, 16), opset=14)
    assert torch.is_tensor(next(net.parameters()))
    return str(path)


def _settings(engine: str, path: str, isa: str) -> dict:
    from study.engines import ENGINES, EngineConfig
    from study.engines.worker import Worker

    worker = Worker(ENGINES[engine], EngineConfig(path, 1, 1, isa=isa))
    try:
        info = worker.start(timeout=300)
    finally:
        worker.stop()
    assert info["check"].ok, info["check"]  # a capped engine still computes the same outputs
    return info["settings"]


@pytest.mark.skipif(not X86, reason="the ISA caps are x86 instruction sets")
def test_an_avx2_cap_is_confirmed_by_each_engines_own_report(conv_onnx):
    ds = _settings("deepsparse", conv_onnx, "avx2")
    assert ds["engine_binary"] == "avx2" and ds["cpu_avx_type"] == "avx2"
    assert ds["isa_cap"] == {
        "level": "avx2",
        "variables": {"NM_ARCH": "avx2"},
        "capped": True,
        "took_effect": True,
        "evidence": "engine binary avx2",
        "not_capped": "",
    }
    ov = _settings("openvino", conv_onnx, "avx2")
    assert ov["isa_cap"]["took_effect"] is True, ov["kernels_by_isa"]
    assert "Convolution" in ov["kernels_by_isa"]["avx2"]
    assert not any(f in ov["kernels_by_isa"] for f in ("amx",))
    ort = _settings("onnxruntime", conv_onnx, "avx2")
    assert (
        ort["isa_cap"]["took_effect"] is False
        and "no runtime ISA cap" in ort["isa_cap"]["not_capped"]
    )


@pytest.mark.skipif(not X86, reason="the ISA caps are x86 instruction sets")
def test_native_engines_report_the_cpus_own_path(conv_onnx):
    from study.bench.hardware import capture_hardware

    isa = capture_hardware().isa
    ds = _settings("deepsparse", conv_onnx, "native")
    assert ds["engine_binary"] == ("avx512" if isa["avx512f"] else "avx2")
    assert ds["cpu_vnni"] == bool(isa["avx512_vnni"] or isa["avx_vnni"])
    ov = _settings("openvino", conv_onnx, "native")
    conv = {f for f, layers in ov["kernels_by_isa"].items() if "Convolution" in layers}
    assert ("avx512" if isa["avx512f"] else "avx2") in conv, ov["kernels_by_isa"]  # f32 convs
    assert ov["isa_path"].startswith("OpenVINO ran kernels by stated ISA")
