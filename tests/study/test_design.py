"""The study's design: variants one factor at a time around the reference, one channel per level."""

from __future__ import annotations

import dataclasses

import pytest

from study.config import FACTORS, load_config
from study.design import channels, dense, reference, target_sparsity, toolchain_of, variants


def test_every_variant_differs_from_the_reference_in_one_factor():
    cfg = load_config("smoke")
    ref = reference(cfg, "small_cnn")
    columns = ("pruner", "profile", "mask", "quant", "exporter")
    for v in variants(cfg, "small_cnn"):
        if v.pruner in ("none", "oneshot") or toolchain_of(v):  # whole toolchains: test_toolchains
            continue
        differ = [c for c in columns if getattr(v, c) != getattr(ref, c)]
        # the SparseML quantizer comes with SparseML's exporter: one toolchain, two columns
        assert len(differ) <= 1 or differ == ["quant", "exporter"], (v, differ)


def test_each_level_of_each_factor_gives_one_channel():
    cfg = load_config("smoke")
    names = [c.name for c in channels(cfg, "small_cnn")]
    assert names == [
        "pruner",
        "exporter",
        "profile:uniform",
        "profile:vendor",
        "mask:block4",
        "precision",
        "quantizer",
        "quantizer:nncf",
        "quantizer:nncf_ptq",
        "toolchain:neuralmagic",
        "toolchain:neuralmagic:int8",
        "toolchain:intel",
        "toolchain:intel:int8",
    ]
    quantizer = channels(cfg, "small_cnn")[6]
    assert quantizer.level_a["quant"] == "sparseml" and quantizer.level_b["quant"] == "torch"
    nncf = channels(cfg, "small_cnn")[7]  # NNCF's quantizer and export on the reference weights
    assert nncf.level_a == {**quantizer.level_b, "quant": "nncf", "exporter": "nncf"}
    ptq = channels(cfg, "small_cnn")[8]  # NNCF's default flow, nncf.quantize alone
    assert ptq.level_a == {**quantizer.level_b, "quant": "nncf_ptq", "exporter": "nncf"}


def test_variant_names_are_distinct_files():
    cfg = load_config("smoke")
    found = variants(cfg, "small_cnn")
    assert len({v.name for v in found}) == len(found)
    assert dense("small_cnn") in found and found[0] == dense("small_cnn")
    assert reference(cfg, "small_cnn").name == (
        "small_cnn-gmp-global-unstructured-fp32-torch-s0.80"
    )


def test_factors_left_out_run_at_their_reference_only():
    cfg = load_config("smoke", {"factor_names": ["mask"]})
    assert set(cfg.factors) == {"mask"}
    assert [c.name for c in channels(cfg, "small_cnn")] == ["mask:block4"]
    assert {v.profile for v in variants(cfg, "small_cnn")} == {"dense", "global", "uniform"}


def test_int8_only_for_the_declared_architectures():
    cfg = load_config("quick")
    assert cfg.int8_for("resnet18") and not cfg.int8_for("mobilenetv1")
    assert not any(v.quant != "none" for v in variants(cfg, "mobilenetv1"))
    assert {v.quant for v in variants(cfg, "resnet18")} == {
        "none",
        "torch",
        "sparseml",
        "nncf",
        "nncf_ptq",
    }


def test_target_sparsity_reads_the_recipe():
    assert target_sparsity(load_config("quick").recipe) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("factors", "match"),
    [
        ({"profile": ["global", "zoo"]}, r"`factors.profile` must be .*global, uniform, vendor"),
        ({"colour": ["red"]}, r"unknown factor 'colour'.*allowed: pruner, exporter"),
        ({"mask": ["block4"]}, r"must include its reference level 'unstructured'"),
        ({"precision": ["fp32", "int4"]}, r"`factors.precision` must be .*fp32, int8"),
        ({"quantizer": ["torch", "sparseml"]}, r"needs `factors.precision` to include 'int8'"),
    ],
)
def test_bad_factors_name_the_allowed_values(factors, match):
    with pytest.raises(ValueError, match=match):
        load_config("smoke", {"factors": factors})


def test_unknown_factor_flag_lists_the_factors():
    with pytest.raises(ValueError, match=r"unknown factor\(s\) \['speed'\] in --factors"):
        load_config("smoke", {"factor_names": ["speed"]})


def test_reference_levels_come_first():
    assert {f: levels[0] for f, levels in FACTORS.items()} == {
        "pruner": "gmp",
        "exporter": "torch",
        "profile": "global",
        "mask": "unstructured",
        "precision": "fp32",
        "quantizer": "torch",
        "toolchain": "neutral",
    }
    assert dataclasses.replace(reference(load_config("smoke"), "m"), model="x").quant == "none"


def test_a_channel_is_one_contrast_for_architectures_at_their_own_sparsity():
    """quick prunes MobileNetV1 to 80% and ResNet-18 to 90%: a channel's levels, taken from the
    first architecture, held sparsity 0.9 and matched no MobileNetV1 row (every B had k = 1)."""
    cfg = load_config("quick")
    assert cfg.model_sparsity == {"mobilenetv1": 0.8}
    resnet = {c.name: c for c in channels(cfg, "resnet18")}
    mobile = {c.name: c for c in channels(cfg, "mobilenetv1")}
    assert set(mobile) <= set(resnet) and "profile:vendor" in mobile
    for name, ch in mobile.items():
        assert "sparsity" not in ch.level_a and "sparsity" not in ch.level_b, name
        assert (ch.level_a, ch.level_b) == (resnet[name].level_a, resnet[name].level_b), name
