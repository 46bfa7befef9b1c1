"""A channel's B on a file below the accuracy gate is shown apart and left out of the pooled B
(issue 18, item 6)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace as R

from study.analysis.summary import channel_results, set_apart
from study.config import load_config
from study.records.manifest import read_manifest
from study.records.results import load_results
from study.stats import Channel, channel_bias

from ..paper.fixture import write_results

BLOCK4 = Channel("mask:block4", {"mask": "block4"}, {"mask": "unstructured"})


def test_a_file_below_the_gate_sets_its_architecture_apart():
    records = [
        R(model="a", mask="block4", trained=True), R(model="a", mask="unstructured", trained=True),
        R(model="b", mask="block4", trained=False), R(model="b", mask="unstructured", trained=True),
        R(model="c", mask="block4", trained=True), R(model="c", mask="unstructured", trained=False),
        R(model="d", mask="block4", trained=None), R(model="d", mask="unstructured", trained=True),
    ]  # fmt: skip
    apart = set_apart(records, BLOCK4, ["a", "b", "c", "d", "e"], 0.9)
    assert set(apart) == {"b", "c"}  # d was never gated; e has no files in the manifest
    assert "below the accuracy gate of 90%" in apart["b"]


def test_the_pooled_b_rests_on_the_other_architectures_only(tmp_path):
    out = write_results(tmp_path / "run")
    cfg = load_config(out / "config.yaml")
    df = load_results(out / "bench.jsonl")
    records = read_manifest(out, require_files=False)
    block4 = next(c for c, _ in __import__("study.analysis.summary", fromlist=["_channels"])._channels(cfg)
                  if c.name == "mask:block4")  # fmt: skip
    bad = "small_cnn"  # gate small_cnn's block4 file, pass resnet18's (the fixture gates it)
    marked = [
        dataclasses.replace(r, trained=r.model != bad)
        if r.mask == "block4" and r.quant == "none"
        else r
        for r in records
    ]
    found = [
        r for r in channel_results(df, cfg, marked)
        if r.channel == "mask:block4" and (r.numerator, r.denominator) == ("deepsparse", "openvino")
    ]  # fmt: skip
    pooled = next(r for r in found if r.model == "pooled")
    alone = next(
        r
        for r in channel_bias(df[df["model"] != bad], block4, "deepsparse", "openvino")
        if r.model == "pooled"
    )
    assert pooled.k == 1 and pooled.estimate == alone.estimate and pooled.ci_low == alone.ci_low
    own = next(r for r in found if r.model == bad)
    assert own.note.startswith("set apart, not in the pooled B: a file is below the accuracy gate")
    # As written, the fixture gates resnet18's block4 file only: small_cnn alone is pooled.
    unmarked = [r for r in channel_results(df, cfg, records) if r.channel == "mask:block4"]
    assert next(r for r in unmarked if r.model == "pooled").k == 1
    assert next(r for r in channel_results(df, cfg, []) if r.channel == "mask:block4"
                and r.model == "pooled").k == 2  # fmt: skip


def test_a_variant_more_than_one_point_of_sparsity_from_its_reference_is_set_apart():
    records = [
        R(model="a", mask="block4", measured_sparsity=0.931), R(model="a", mask="unstructured", measured_sparsity=0.90),
        R(model="b", mask="block4", measured_sparsity=0.909), R(model="b", mask="unstructured", measured_sparsity=0.90),
        R(model="c", mask="block4", measured_sparsity=None), R(model="c", mask="unstructured", measured_sparsity=0.90),
        R(model="d", mask="block4", measured_sparsity=0.95, trained=False), R(model="d", mask="unstructured", measured_sparsity=0.9),
    ]  # fmt: skip
    apart = set_apart(records, BLOCK4, ["a", "b", "c", "d"], 0.9)
    assert set(apart) == {"a", "d"}  # b is within 1 point; c's variant has no measured sparsity
    assert (
        apart["a"] == "its files differ by more than 1 point of overall sparsity (93.1% vs 90.0%)"
    )
    assert apart["d"].startswith("a file is below the accuracy gate of 90%")
    assert apart["d"].endswith(
        "; its files differ by more than 1 point of overall sparsity (95.0% vs 90.0%)"
    )


def test_the_fixtures_sparsity_mismatch_is_set_apart_everywhere(tmp_path):
    # The fixture's files hold the reference's sparsity, except resnet18's vendor-profile file
    # (3 points sparser): its B is shown apart in stats.json and summary.md, and the pool is small_cnn's.
    from study.analysis.markdown import write_stats

    out = write_results(tmp_path / "run")
    stats = write_stats(out)
    vendor = [r for r in stats["analysis"]["channels"] if r["channel"] == "profile:vendor"]
    assert {r["k"] for r in vendor if r["model"] == "pooled"} == {1}
    why = "its files differ by more than 1 point of overall sparsity (83.0% vs 79.9%)"
    assert stats["analysis"]["apart"] == {
        "profile:vendor": {"resnet18": why},
        "mask:block4": {
            "resnet18": "a file is below the accuracy gate of 80% (labelled 'not trained')"
        },
    }
    own = [r for r in vendor if r["model"] == "resnet18"]
    assert len(own) == 3 and all(
        r["note"].startswith(f"set apart, not in the pooled B: {why}") for r in own
    )
    for name in ("pruner", "exporter", "profile:uniform", "precision", "quantizer"):
        pooled = [
            r
            for r in stats["analysis"]["channels"]
            if r["channel"] == name and r["model"] == "pooled"
        ]
        assert pooled and all(
            r["k"] == (1 if name in ("precision", "quantizer") else 2) for r in pooled
        ), name
    assert (
        f"- resnet18: shown apart, not in the pooled B: {why}." in (out / "summary.md").read_text()
    )
