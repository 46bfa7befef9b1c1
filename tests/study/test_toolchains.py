"""Whole-toolchain variants (study.toolchains): each differs from its reference in its named choices."""

from __future__ import annotations

import dataclasses

import pytest

from study.config import load_config
from study.design import channels, reference, toolchain_of, toolchain_variants, variants

COLUMNS = ("pruner", "profile", "mask", "quant", "exporter", "sparsity")
# What each vendor's whole toolchain is, written out here (not read from study.toolchains):
# Neural Magic: SparseZoo-style profile, 1x4 blocks, SparseML's exporter (+ SparseML int8);
# Intel: NNCF's pruning and NNCF's int8 in NNCF's own file form.
EXPECTED = {
    "toolchain:neuralmagic": {"profile": "vendor", "mask": "block4", "exporter": "sparseml"},
    "toolchain:neuralmagic:int8": {
        "profile": "vendor", "mask": "block4", "quant": "sparseml", "exporter": "sparseml"
    },
    "toolchain:intel": {"pruner": "nncf"},
    "toolchain:intel:int8": {"pruner": "nncf", "quant": "nncf", "exporter": "nncf"},
}  # fmt: skip
NEUTRAL = {"pruner": "gmp", "profile": "global", "mask": "unstructured", "exporter": "torch"}


def _diff(a, b) -> dict:
    return {c: getattr(a, c) for c in COLUMNS if getattr(a, c) != getattr(b, c)}


def test_each_whole_toolchain_differs_from_its_reference_in_exactly_its_choices():
    cfg = load_config("smoke")
    found = toolchain_variants(cfg, "small_cnn")
    assert [name for name, _, _ in found] == list(EXPECTED)
    for name, variant, ref in found:
        assert _diff(variant, ref) == EXPECTED[name], name
        # the reference is the neutral one: fp32 or torch.ao int8, at the recipe's target
        quant = "torch" if name.endswith(":int8") else "none"
        assert ref == dataclasses.replace(reference(cfg, "small_cnn"), quant=quant)
        assert {c: getattr(ref, c) for c in NEUTRAL} == NEUTRAL
        assert toolchain_of(variant) == name.split(":")[1]
        assert toolchain_of(ref) is None


def test_whole_toolchain_variants_are_made_and_measured_as_channels():
    cfg = load_config("smoke")
    names = {v.name for v in variants(cfg, "small_cnn")}
    by_name = {c.name: c for c in channels(cfg, "small_cnn")}
    for name, variant, ref in toolchain_variants(cfg, "small_cnn"):
        assert variant.name in names and ref.name in names
        # every column but sparsity, each architecture's own (model_sparsity): a held column
        columns = {k: v for k, v in variant.columns().items() if k != "sparsity"}
        assert by_name[name].level_a == columns
        assert by_name[name].level_b == {k: v for k, v in ref.columns().items() if k != "sparsity"}


def test_without_int8_only_the_fp32_toolchains_are_made():
    cfg = load_config("smoke", {"factors": {"toolchain": ["neutral", "intel"]}})
    assert [n for n, _, _ in toolchain_variants(cfg, "small_cnn")] == ["toolchain:intel"]


def test_the_toolchain_factor_must_keep_its_neutral_reference():
    with pytest.raises(
        ValueError, match=r"`factors.toolchain` must include its reference level 'neutral'"
    ):
        load_config("smoke", {"factors": {"toolchain": ["intel"]}})


def test_each_whole_toolchain_names_the_single_factors_it_is_checked_against():
    from study.design import whole_toolchains

    found = {w.name: w for w in whole_toolchains(load_config("smoke"))}
    assert set(found) == {"neuralmagic", "neuralmagic:int8", "intel", "intel:int8"}
    assert found["neuralmagic"].single_names == ("profile:vendor", "mask:block4", "exporter")
    assert found["neuralmagic:int8"].single_names == ("profile:vendor", "mask:block4", "quantizer")
    # Intel's int8 chain: NNCF's pruning (its fp32 whole, one choice) and NNCF's quantizer
    assert found["intel:int8"].single_names == ("toolchain:intel", "quantizer:nncf")
    assert found["intel"].single_names == ()  # one choice: nothing to add up
    # the product of the singles' columns changes exactly what the whole changes
    whole = found["intel:int8"]
    changed = {k for k, v in whole.variant.items() if whole.reference.get(k) != v}
    singles = set()
    for a, b in whole.singles:
        singles |= {k for k, v in a.items() if b.get(k) != v}
    assert changed == singles == {"pruner", "quant", "exporter"}
