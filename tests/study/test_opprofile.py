"""study.onnx.opclasses and study.bench.opprofile: operator classes of a hand-made graph, each
engine's profiler parsed on it, and the Amdahl sentence."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from study.bench.opprofile import OpProfile, amdahl_sentence, profile_file
from study.onnx.opclasses import classify_graph

ENGINES = ("onnxruntime", "openvino", "deepsparse")


def _weight(name: str, shape: tuple[int, ...], sparsity: float, rng) -> onnx.TensorProto:
    w = rng.standard_normal(shape).astype(np.float32)
    flat = w.reshape(-1)
    flat[rng.permutation(flat.size)[: round(sparsity * flat.size)]] = 0.0
    return numpy_helper.from_array(w, name)


def _graph(path) -> None:
    """input 1x8x16x16 -> depthwise 3x3 -> Relu -> pruned 3x3 conv (90% zeros) -> Relu ->
    unpruned 1x1 conv -> squeeze-excite (pool, 1x1 conv, Sigmoid, Mul) -> SiLU (Sigmoid, Mul) ->
    global pool -> Flatten -> pruned MatMul (80% zeros) -> Softmax."""
    rng = np.random.default_rng(0)
    inits = [
        _weight("w_dw", (8, 1, 3, 3), 0.0, rng),
        _weight("w_pruned", (16, 8, 3, 3), 0.9, rng),
        _weight("w_dense", (16, 16, 1, 1), 0.0, rng),
        _weight("w_se", (16, 16, 1, 1), 0.0, rng),
        _weight("w_fc", (16, 10), 0.8, rng),
        numpy_helper.from_array(np.array([1, 16], dtype=np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_dw"], ["dw"], "dw_conv", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["dw"], ["dw_r"], "dw_relu"),
        helper.make_node("Conv", ["dw_r", "w_pruned"], ["pc"], "pruned_conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["pc"], ["pc_r"], "pruned_relu"),
        helper.make_node("Conv", ["pc_r", "w_dense"], ["dc"], "dense_conv"),
        helper.make_node("GlobalAveragePool", ["dc"], ["se_p"], "se_pool"),
        helper.make_node("Conv", ["se_p", "w_se"], ["se_c"], "se_conv"),
        helper.make_node("Sigmoid", ["se_c"], ["se_s"], "se_sigmoid"),
        helper.make_node("Mul", ["dc", "se_s"], ["se_out"], "se_mul"),
        helper.make_node("Sigmoid", ["se_out"], ["silu_s"], "silu_sigmoid"),
        helper.make_node("Mul", ["se_out", "silu_s"], ["silu"], "silu_mul"),
        helper.make_node("GlobalAveragePool", ["silu"], ["gp"], "head_pool"),
        helper.make_node("Reshape", ["gp", "shape"], ["flat"], "flatten"),
        helper.make_node("MatMul", ["flat", "w_fc"], ["logits"], "fc"),
        helper.make_node("Softmax", ["logits"], ["y"], "softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "opclasses",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnx 1.14 and every engine here read
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("opprofile") / "graph.onnx"
    _graph(path)
    return path


def test_nodes_are_classified(onnx_file):
    g = classify_graph(onnx_file)
    got = {name: node.klass for name, node in g.nodes.items()}
    assert got == {
        "dw_conv": "depthwise",
        "dw_relu": "activation",
        "pruned_conv": "sparse",
        "pruned_relu": "activation",
        "dense_conv": "dense_weights",
        "se_pool": "squeeze_excite",
        "se_conv": "squeeze_excite",
        "se_sigmoid": "squeeze_excite",
        "se_mul": "squeeze_excite",
        "silu_sigmoid": "activation",
        "silu_mul": "activation",
        "head_pool": "pooling",
        "flatten": "memory",
        "fc": "sparse",
        "softmax": "attention",
    }
    # MACs: 16x16x16 outputs x (8 x 3 x 3) inputs each; the MatMul 10 outputs x 16 inputs
    assert g.nodes["pruned_conv"].macs == 16 * 16 * 16 * 8 * 9
    assert g.nodes["dw_conv"].macs == 8 * 16 * 16 * 9
    assert g.nodes["fc"].macs == 10 * 16
    assert g.nodes["pruned_conv"].weight_sparsity == pytest.approx(0.9, abs=0.01)
    assert g.nodes["dense_conv"].prunable and not g.nodes["dw_conv"].prunable


def test_min_sparsity_moves_the_matmul(onnx_file):
    # The MatMul's weight is 80% zeros: pruned at the default 0.5, dense weights at 0.85.
    assert classify_graph(onnx_file, min_sparsity=0.85).nodes["fc"].klass == "dense_weights"
    with pytest.raises(ValueError, match="`min_sparsity` must be in"):
        classify_graph(onnx_file, min_sparsity=0.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_profile_is_parsed(onnx_file, engine):
    p = profile_file(onnx_file, engine, threads=1, iterations=3, warmup=1)
    assert p.total_ms > 0
    assert sum(p.shares.values()) == pytest.approx(1.0, abs=0.01)
    assert 0 < p.sparse_share < 1
    assert sum(layer.ms for layer in p.layers) == pytest.approx(p.total_ms)
    mapped = {n for layer in p.layers for n in layer.nodes}
    # every weighted node's layer is found by name (DeepSparse's fallback subgraphs, which copy
    # inputs and outputs, hold no node: on a graph this small they are most of its time)
    assert {"dw_conv", "pruned_conv", "dense_conv", "fc"} <= mapped
    if engine != "deepsparse":
        assert p.unmapped_share < 0.5


def test_fused_activation_gets_no_time_of_its_own(onnx_file):
    # OpenVINO fuses the Relu into the pruned conv: the layer's time is all the conv's class.
    p = profile_file(onnx_file, "openvino", threads=1, iterations=2, warmup=1)
    layer = next(layer for layer in p.layers if "pruned_conv" in layer.nodes)
    assert "pruned_relu" in layer.fused
    assert set(layer.by_class) == {"sparse"}


def test_amdahl_sentence():
    shares = dict.fromkeys(
        [
            "sparse",
            "dense_weights",
            "depthwise",
            "squeeze_excite",
            "attention",
            "activation",
            "normalization",
            "pooling",
            "memory",
            "other",
        ],
        0.0,
    )
    shares.update(sparse=0.4, depthwise=0.35, activation=0.25)
    p = OpProfile("f.onnx", "openvino", 2, 10, 5.0, shares, 0.4, 0.4, 0.0, 0.5)
    assert p.bound == pytest.approx(1 / 0.6)
    text = amdahl_sentence("EfficientNet-B0", p)
    assert "more than 67% on openvino" in text  # 1 / 0.6 - 1
    assert "because 60% of its time" in text
    assert "depthwise 35%" in text
    slow = {**shares, "sparse": 0.55, "depthwise": 0.45, "activation": 0.0}
    assert "more than 2.2x on deepsparse, because 45% of its time" in amdahl_sentence(
        "MobileNetV1", OpProfile("f.onnx", "deepsparse", 2, 10, 5.0, slow, 0.55, 0.55, 0.0, 0.5)
    )
    full = OpProfile("f.onnx", "openvino", 2, 10, 5.0, {**shares, "sparse": 1.0}, 1.0, 1.0, 0, 0.5)
    assert math.isinf(full.bound)
    dense = OpProfile("f.onnx", "openvino", 2, 10, 5.0, shares, 0.0, 0.75, 0.0, 0.5)
    assert dense.bound == pytest.approx(4.0)  # no pruned weight: the prunable share's bound


def test_bad_input_is_refused(onnx_file, tmp_path):
    with pytest.raises(ValueError, match="`engine` must be one of onnxruntime, openvino"):
        profile_file(onnx_file, "tensorrt")
    with pytest.raises(ValueError, match="`iterations` must be a positive integer"):
        profile_file(onnx_file, "openvino", iterations=0)
    with pytest.raises(ValueError, match="no ONNX file at"):
        profile_file(tmp_path / "missing.onnx", "openvino")


def test_a_study_folder_profiles_its_fp32_dense_reference_and_sweep_files(onnx_file, tmp_path):
    import json
    import shutil

    from study.analysis.opprofile import profile_run
    from study.records.jsonl import append_jsonl
    from study.records.manifest import MANIFEST, OPPROFILE
    from study.records.schema import ModelRecord

    (tmp_path / "models").mkdir()
    shutil.copy(onnx_file, tmp_path / "models" / "g.onnx")

    def record(pruner, profile, quant="none", sparsity=0.9, path="models/g.onnx"):
        return ModelRecord(
            model="toy",
            pruner=pruner,
            exporter="torch",
            sparsity=sparsity,
            onnx_path=path,
            onnx_sha256="",
            input_shape=(1, 8, 16, 16),
            opset=13,
            raw_bytes=1,
            gzip_bytes=1,
            prunable_params=1,
            zeros=0,
            measured_sparsity=0.0,
            accuracy=None,
            accuracy_dataset="",
            zero_check_ok=True,
            profile=profile,
            mask="none" if pruner == "none" else "unstructured",
            quant=quant,
        ).to_dict()

    append_jsonl(
        tmp_path / MANIFEST,
        [
            record("none", "dense", sparsity=0.0, path="models/dense.onnx"),
            record("gmp", "global"),
            record("gmp", "vendor", path="models/vendor.onnx"),  # a factor level: not profiled
            record("gmp", "global", quant="torch", path="models/int8.onnx"),  # int8: not profiled
            record("oneshot", "uniform", sparsity=0.99, path="models/s99.onnx"),
        ],
    )
    shutil.copy(onnx_file, tmp_path / "models" / "dense.onnx")
    (tmp_path / "models" / "s99.onnx").write_bytes(b"not an onnx file")
    rows = profile_run(tmp_path, ("onnxruntime", "torch"), threads=1, iterations=2)
    # torch has no profiler here and is left out; the broken sweep file gives an error row
    assert [(r["label"], r["engine"]) for r in rows] == [
        ("dense", "onnxruntime"),
        ("reference s0.90", "onnxruntime"),
        ("one-shot s0.99", "onnxruntime"),
    ]
    assert "error" in rows[2] and "error" not in rows[1]
    written = json.loads((tmp_path / OPPROFILE).read_text())["profiles"]
    assert written[0]["sentence"].startswith("Pruning cannot speed toy (dense) up")  # same graph
    assert written[1]["sentence"].startswith(
        "Pruning cannot speed toy (reference s0.90) up by more than"
    )


def test_onnxruntime_names_of_fused_nodes_map_back(onnx_file):
    # the three ways ONNX Runtime 1.26 names an optimized node (seen on EfficientNet, MobileViT
    # and VGG19): an NCHWc conv after its output tensor, a fusion after its first node
    from study.bench.opprofile import _ort_nodes

    g = classify_graph(onnx_file)
    assert _ort_nodes("pc_r_nchwc", "Conv", g) == ["pruned_relu", "pruned_conv"]
    assert _ort_nodes("silu_mul/QuickGeluFusion/", "QuickGelu", g) == ["silu_mul"]
    assert _ort_nodes("fused fc", "FusedMatMul", g) == ["fc"]
    assert _ort_nodes("ReorderOutput_token_7", "ReorderOutput", g) == []


def test_matmul_after_a_computed_reshape_of_a_dynamic_batch_gets_its_macs(tmp_path):
    """MobileViT's attention as torch exports it with a dynamic batch: Shape -> Gather (a Constant
    index) -> Unsqueeze -> Concat (with Constants) -> Reshape, then MatMul. ONNX's plain shape
    inference leaves the Reshape's output without a shape (the seven_hour run's MobileViT-xs
    profiles failed on it); at batch 1 with constant propagation it has one."""
    rng = np.random.default_rng(0)

    def const(name, values):
        value = numpy_helper.from_array(np.array(values, dtype=np.int64), name)
        return helper.make_node("Constant", [], [name], f"{name}_node", value=value)

    nodes = [
        const("index", 0),  # a scalar, as torch exports x.shape[0]
        const("axes", [0]),
        const("tail", [2, 12]),
        helper.make_node("Shape", ["x"], ["s"], "shape"),
        helper.make_node("Gather", ["s", "index"], ["b"], "batch", axis=0),
        helper.make_node("Unsqueeze", ["b", "axes"], ["b1"], "unsqueeze"),
        helper.make_node("Concat", ["b1", "tail"], ["target"], "target", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"], "unfold"),
        helper.make_node("MatMul", ["r", "w"], ["y"], "mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "computed_reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 5])],
        [_weight("w", (12, 5), 0.5, rng)],
    )
    # Opset 14, as the study exports (ONNX 1.14 propagates a Reshape's computed shape from 14 on).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "computed_reshape.onnx"
    onnx.save(model, str(path))
    assert classify_graph(path).nodes["mm"].macs == 1 * 2 * 5 * 12  # batch 1, out 2x5, k 12
