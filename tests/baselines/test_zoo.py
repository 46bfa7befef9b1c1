"""Tests of baselines.zoo: stubs fail fast and clearly offline; local folders resolve."""

from __future__ import annotations

import socket
import time

import pytest

from baselines import zoo
from baselines.zoo import ZOO_STUBS, ZooModel, ZooUnavailableError, resolve

STUB = ZOO_STUBS["resnet50"]


def _api_reachable() -> bool:
    host, port = zoo._api_host()
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_real_offline_resolve_fails_fast_naming_the_stub():
    if _api_reachable():
        pytest.skip("api.neuralmagic.com is reachable here; the offline path cannot be observed")
    start = time.perf_counter()
    with pytest.raises(
        ZooUnavailableError, match="resnet_v1-50/pytorch/sparseml/imagenet/pruned95-none"
    ) as info:
        resolve("resnet50", timeout=2.0)
    assert time.perf_counter() - start < 5.0
    assert "no network" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_unresponsive_host_times_out_quickly(monkeypatch):
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so a connect either hangs or fails.
    monkeypatch.setattr(zoo, "_api_host", lambda: ("192.0.2.1", 443))
    start = time.perf_counter()
    with pytest.raises(ZooUnavailableError, match="no network reaches 192.0.2.1:443"):
        resolve(STUB, timeout=0.5)
    assert time.perf_counter() - start < 3.0


def test_local_folder_with_recipe_file(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "recipe.md").write_text("---\nmodifiers: []\n---\n")
    assert resolve(tmp_path) == ZooModel(
        tmp_path / "model.onnx", tmp_path / "recipe.md", str(tmp_path)
    )


def test_local_folder_with_recipe_folder_and_deployment(tmp_path):
    (tmp_path / "deployment").mkdir()
    (tmp_path / "deployment" / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "recipe_transfer_learn.md").write_text("x")
    (tmp_path / "recipe" / "recipe_original.md").write_text("x")
    model = resolve(str(tmp_path))
    assert model.onnx_path == tmp_path / "deployment" / "model.onnx"
    assert model.recipe_path == tmp_path / "recipe" / "recipe_original.md"


def test_local_folder_without_recipe(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    assert resolve(tmp_path).recipe_path is None


def test_local_folder_without_model_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no model.onnx"):
        resolve(tmp_path)


def test_unknown_stub_is_a_value_error():
    with pytest.raises(ValueError, match="`stub` must be a 'zoo:' stub"):
        resolve("resnet-9000")


def test_stubs_cover_the_original_study():
    assert set(ZOO_STUBS) == {"resnet50", "mobilenetv1", "vgg19", "inception_v3"}
    assert all(s.startswith("zoo:cv/classification/") for s in ZOO_STUBS.values())
