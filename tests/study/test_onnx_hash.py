"""Tests of study.onnx.content_hash: an order-free content hash of ONNX graphs."""

from __future__ import annotations

import copy
import hashlib
import random

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.nn.utils import prune

from study.make.export import export_torch
from study.onnx.content_hash import content_sha256, signed_zero_differences


def _file_sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    export_torch(_net(), path, (1, 3, 8, 8))
    return path


def _save(model: onnx.ModelProto, path):
    onnx.save(model, str(path))
    return path


def test_shuffled_initializers_and_nodes_hash_equal(exported, tmp_path):
    model = onnx.load(str(exported))
    shuffled = copy.deepcopy(model)
    rng = random.Random(0)
    for field in (shuffled.graph.initializer, shuffled.graph.node):
        items = [copy.deepcopy(x) for x in field]
        while [x.name for x in items] == [x.name for x in field]:
            rng.shuffle(items)
        del field[:]
        field.extend(items)
    path = _save(shuffled, tmp_path / "shuffled.onnx")
    assert _file_sha(path) != _file_sha(exported)
    assert content_sha256(path) == content_sha256(exported) == content_sha256(model)


def test_one_changed_weight_value_changes_the_hash(exported):
    model = onnx.load(str(exported))
    tensor = model.graph.initializer[0]
    array = numpy_helper.to_array(tensor).copy()
    array.flat[3] += 1e-3
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    assert content_sha256(model) != content_sha256(exported)


def test_signed_zeros_are_equal_numbers_and_counted(exported, tmp_path):
    model = onnx.load(str(exported))
    tensor = model.graph.initializer[0]
    array = numpy_helper.to_array(tensor).copy()
    array.flat[:5] = 0.0
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    plus = _save(model, tmp_path / "plus.onnx")
    array.flat[:2] = -0.0  # what masking a negative weight by multiplication leaves
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    minus = _save(model, tmp_path / "minus.onnx")
    assert _file_sha(plus) != _file_sha(minus)
    assert content_sha256(plus) == content_sha256(minus)
    assert signed_zero_differences(plus, minus) == 2
    assert signed_zero_differences(plus, plus) == 0


def test_a_renamed_initializer_changes_the_hash(exported):
    model = onnx.load(str(exported))
    old = model.graph.initializer[0].name
    model.graph.initializer[0].name = "renamed"
    for node in model.graph.node:  # keep the graph valid: its users read the new name
        node.input[:] = ["renamed" if name == old else name for name in node.input]
    onnx.checker.check_model(model)
    assert content_sha256(model) != content_sha256(exported)


def test_labels_and_producer_do_not_change_the_hash(exported):
    model = onnx.load(str(exported))
    model.producer_name, model.producer_version, model.doc_string = "other", "9.9", "notes"
    model.graph.name = "renamed_graph"
    for i, node in enumerate(model.graph.node):
        node.name, node.doc_string = f"n{i}", "generated"
    assert content_sha256(model) == content_sha256(exported)


def test_float_data_and_raw_data_storage_hash_alike():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)

    def model(raw: bool) -> onnx.ModelProto:
        w = helper.make_tensor(
            "w", TensorProto.FLOAT, [2, 3], values.tobytes() if raw else values.ravel(), raw=raw
        )
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
            initializer=[w],
        )
        return helper.make_model(graph)

    raw, packed = model(True), model(False)
    assert raw.graph.initializer[0].raw_data and not packed.graph.initializer[0].raw_data
    assert content_sha256(raw) == content_sha256(packed)


def _conv(model: onnx.ModelProto) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == "Conv")


def test_attributes_are_a_mapping_and_part_of_the_content(exported):
    model = onnx.load(str(exported))
    reordered = copy.deepcopy(model)
    attributes = [copy.deepcopy(a) for a in reversed(_conv(reordered).attribute)]
    assert len(attributes) > 1
    del _conv(reordered).attribute[:]
    _conv(reordered).attribute.extend(attributes)
    assert content_sha256(reordered) == content_sha256(model)
    strided = copy.deepcopy(model)
    strides = next(a for a in _conv(strided).attribute if a.name == "strides")
    strides.ints[:] = [2, 2]
    assert content_sha256(strided) != content_sha256(model)


def test_opset_is_part_of_the_content(exported):
    model = onnx.load(str(exported))
    newer = copy.deepcopy(model)
    newer.opset_import[0].version += 1
    assert content_sha256(newer) != content_sha256(model)


def test_prune_remove_reordering_gives_equal_content(tmp_path):
    """``prune.remove`` re-registers ``weight`` after ``bias``: the exporter writes the
    initializers in another order, the network is the same."""
    model = _net()
    removed = copy.deepcopy(model)
    for layer in (removed[0], removed[3]):
        prune.l1_unstructured(layer, "weight", amount=0.5)
        prune.remove(layer, "weight")
    with torch.no_grad():  # the same zeros, written in place: registration order unchanged
        model[0].weight.copy_(removed[0].weight)
        model[3].weight.copy_(removed[3].weight)
    assert [n for n, _ in removed.named_parameters()][:2] == ["0.bias", "0.weight"]
    assert [n for n, _ in model.named_parameters()][:2] == ["0.weight", "0.bias"]
    a = export_torch(removed, tmp_path / "removed.onnx", (1, 3, 8, 8))
    b = export_torch(model, tmp_path / "in_place.onnx", (1, 3, 8, 8))
    assert _file_sha(a) != _file_sha(b)
    assert content_sha256(a) == content_sha256(b)


def test_rejects_what_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        content_sha256(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="`path_or_model` must be a path.*got int"):
        content_sha256(3)
